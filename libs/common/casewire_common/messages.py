"""The canonical message (`casewire.messages.v1`), as DESIGN.md defines it."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Platform = Literal["x", "facebook", "instagram", "whatsapp", "other"]
Channel = Literal["dm", "mention", "reply", "comment"]
Visibility = Literal["public", "private"]
Direction = Literal["inbound", "outbound"]
MessageEvent = Literal["message", "edit", "delete"]
AttachmentType = Literal["image", "video", "audio", "file", "sticker", "location", "other"]

# The namespace of canonical message ids: uuid5(NAMESPACE_URL, "platform:platform_message_id").
MESSAGE_ID_NAMESPACE = uuid.NAMESPACE_URL


_NAMESPACE_BYTES = MESSAGE_ID_NAMESPACE.bytes


def message_id(platform: str, platform_message_id: str) -> str:
    """The stable id of a platform message: the same platform message always gets the same id.

    `str(uuid.uuid5(MESSAGE_ID_NAMESPACE, "platform:platform_message_id"))`, computed as
    uuid5 does (RFC 4122: SHA-1, version and variant bits) without building a UUID object:
    every message is checked against it, and the object cost four times the hash.
    """
    name = f"{platform}:{platform_message_id}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    hex_digits = digest[:16].hex()
    return (
        f"{hex_digits[:8]}-{hex_digits[8:12]}-{hex_digits[12:16]}"
        f"-{hex_digits[16:20]}-{hex_digits[20:]}"
    )


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# An event time: refused unless timezone-aware (a naive time is a ValueError, not a guess at the
# machine's zone), kept and written in UTC (`...Z`), so every consumer compares like with like.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(utc)]


class Author(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=256)
    handle: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=512)
    followers: int | None = Field(default=None, ge=0)
    verified: bool | None = None


class Attachment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: AttachmentType
    url: str | None = Field(default=None, max_length=4096)


class CanonicalMessage(BaseModel):
    """One message from or to a customer, on any platform, in one shape."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    platform: Platform
    channel: Channel
    visibility: Visibility
    direction: Direction
    event: MessageEvent = "message"
    account_id: str = Field(min_length=1, max_length=256)
    platform_message_id: str = Field(min_length=1, max_length=512)
    conversation_id: str = Field(min_length=1, max_length=1024)
    in_reply_to: str | None = Field(default=None, max_length=512)
    author: Author
    text: str = Field(default="", max_length=65536)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}$")
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    sent_at: UtcDatetime
    received_at: UtcDatetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        expected_visibility = "private" if self.channel == "dm" else "public"
        if self.visibility != expected_visibility:
            raise ValueError(
                f"visibility must be {expected_visibility!r} for channel {self.channel!r}"
            )
        expected_id = message_id(self.platform, self.platform_message_id)
        if self.id != expected_id:
            raise ValueError(
                f"id must be uuid5 of '{self.platform}:{self.platform_message_id}' ({expected_id})"
            )
        return self

    @property
    def delivery_key(self) -> str:
        """What makes two deliveries 'the same' for deduplication: the message itself, one
        particular edit of it, or its deletion."""
        if self.event == "message":
            return self.id
        if self.event == "edit":
            return f"{self.id}:edit:{self.sent_at.isoformat()}"
        return f"{self.id}:delete"

    @property
    def customer_id(self) -> str:
        """The customer's id: derived from the conversation key, the same for both directions."""
        parts = self.conversation_id.split(":")
        return parts[-1] if len(parts) >= 3 else self.author.id
