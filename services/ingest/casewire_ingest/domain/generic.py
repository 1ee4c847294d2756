"""The generic channel: canonical-shaped JSON from any source that can speak it."""

from __future__ import annotations

from datetime import datetime

from casewire_common.messages import (
    Attachment,
    Author,
    CanonicalMessage,
    Channel,
    Direction,
    MessageEvent,
    Platform,
    Visibility,
    message_id,
)
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from casewire_ingest.domain.normalized import NormalizationError, Normalized


class GenericMessage(BaseModel):
    """A canonical message whose `id` and `visibility` ingest may derive.

    `received_at` is accepted (canonical messages carry it) but always set by ingest.
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    platform: Platform = "other"
    channel: Channel
    visibility: Visibility | None = None
    direction: Direction
    event: MessageEvent = "message"
    account_id: str
    platform_message_id: str
    conversation_id: str
    in_reply_to: str | None = None
    author: Author
    text: str = ""
    language: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    sent_at: AwareDatetime
    received_at: AwareDatetime | None = None


def to_canonical(body: GenericMessage, received_at: datetime) -> CanonicalMessage:
    """Fill in what the sender may leave out; the canonical model then checks consistency."""
    fields = body.model_dump(exclude_none=False)
    fields["id"] = body.id or message_id(body.platform, body.platform_message_id)
    fields["visibility"] = body.visibility or ("private" if body.channel == "dm" else "public")
    fields["received_at"] = received_at
    return CanonicalMessage.model_validate(fields)


def normalize_generic(document: object, received_at: datetime) -> Normalized:
    """The generic channel's body: exactly one canonical-shaped message."""
    if not isinstance(document, dict):
        raise NormalizationError("not_an_object", "the body must be a JSON object (one message)")
    try:
        message = to_canonical(GenericMessage.model_validate(document), received_at)
    except ValidationError as error:
        # Field locations and messages only: never echo submitted values back.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(body)'}: {item['msg']}"
            for item in error.errors()[:10]
        )
        raise NormalizationError("invalid_message", problems) from error
    return Normalized(messages=[message])
