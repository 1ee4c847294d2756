"""What every platform normalizer produces, and the pieces they share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from casewire_common.messages import (
    Attachment,
    AttachmentType,
    Author,
    CanonicalMessage,
    Channel,
    Direction,
    MessageEvent,
    Platform,
    message_id,
)
from casewire_common.thread_control import ThreadControl
from pydantic import ValidationError


class NormalizationError(ValueError):
    """A body that cannot be turned into canonical messages; `reason` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ItemRejection:
    """One item of a batched body that could not be read: its place in the body (`where`),
    the reason code and the detail of its NormalizationError."""

    where: str
    reason: str
    detail: str


@dataclass
class Normalized:
    """The canonical messages in one webhook body, its thread-control events (Meta's handover
    protocol), what was acknowledged but not a message (reactions, receipts, typing,
    statuses...) counted by kind, and the items that could not be read."""

    messages: list[CanonicalMessage] = field(default_factory=list)
    thread_controls: list[ThreadControl] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    rejected: list[ItemRejection] = field(default_factory=list)
    # Delivery keys of the messages whose platform time was implausible and replaced by the
    # receipt time (`event_time.py`): published with the header `casewire-time-adjusted`.
    time_adjusted: set[str] = field(default_factory=set)
    # Delivery keys of the messages read on Meta's `standby` channel (another app owned the
    # thread): published with the header `casewire-standby: true`.
    standby: set[str] = field(default_factory=set)
    # The app that sent an echo, when Meta names it (`app_id`), by delivery key: published as
    # the header `casewire-app-id`.
    sending_apps: dict[str, str] = field(default_factory=dict)

    def item(self, where: str) -> _ItemGuard:
        """Read one item of a batch (a Meta event or change, a WhatsApp message, an X event)
        inside `with normalized.item(where):`: a problem with it rejects that item, recorded
        with its place, and not the messages beside it. A field the canonical model refuses
        (an over-long name or URL) is such a problem, not a crash."""
        return _ItemGuard(self.rejected, where)

    def deliveries(
        self, detect_language: Callable[[str], str | None]
    ) -> dict[str, CanonicalMessage]:
        """What ingest publishes of this body, by delivery key: each delivery once (a body may
        carry the same item twice), in body order, its language detected when the platform
        gave none. The service and `casewire-ingest normalize` both print exactly this."""
        distinct: dict[str, CanonicalMessage] = {}
        for message in self.messages:
            key = message.delivery_key
            if key in distinct:
                continue
            if message.language is None and message.text:
                message = message.model_copy(update={"language": detect_language(message.text)})
            distinct[key] = message
        return distinct

    def distinct_thread_controls(self) -> dict[str, ThreadControl]:
        """The body's thread-control events by delivery key, each once, in body order."""
        distinct: dict[str, ThreadControl] = {}
        for control in self.thread_controls:
            distinct.setdefault(control.delivery_key, control)
        return distinct


class _ItemGuard:
    """`Normalized.item`'s context manager (a class: it runs for every item of every body,
    where a generator-based one costs several times as much)."""

    __slots__ = ("_rejected", "_where")

    def __init__(self, rejected: list[ItemRejection], where: str) -> None:
        self._rejected = rejected
        self._where = where

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        where = self._where
        if isinstance(error, ValidationError):
            problem = error.errors()[0]
            location = ".".join(str(part) for part in problem["loc"])
            detail = f"{where}: {location} {problem['msg']}"
            self._rejected.append(ItemRejection(where, "invalid_message", detail))
            return True
        if isinstance(error, NormalizationError):
            self._rejected.append(ItemRejection(where, error.reason, error.detail))
            return True
        return False


def build_message(
    *,
    platform: Platform,
    channel: Channel,
    direction: Direction,
    account_id: str,
    platform_message_id: str,
    conversation_id: str,
    author: Author,
    sent_at: datetime,
    received_at: datetime,
    text: str = "",
    event: MessageEvent = "message",
    in_reply_to: str | None = None,
    attachments: list[Attachment] | None = None,
    language: str | None = None,
) -> CanonicalMessage:
    """A canonical message with its derived fields (id, visibility).

    Raises NormalizationError when the fields do not make a valid message."""
    try:
        return CanonicalMessage(
            id=message_id(platform, platform_message_id),
            platform=platform,
            channel=channel,
            visibility="private" if channel == "dm" else "public",
            direction=direction,
            event=event,
            account_id=account_id,
            platform_message_id=platform_message_id,
            conversation_id=conversation_id,
            in_reply_to=in_reply_to,
            author=author,
            text=text,
            language=language,
            attachments=attachments or [],
            sent_at=sent_at,
            received_at=received_at,
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()[:3]
        )
        raise NormalizationError("invalid_message", problems) from error


def dm_conversation(platform: str, account_id: str, customer_id: str) -> str:
    return f"{platform}:{account_id}:{customer_id}"


def public_conversation(platform: str, account_id: str, root_id: str, customer_id: str) -> str:
    return f"{platform}:{account_id}:{root_id}:{customer_id}"


def plain_text(value: Any) -> str:
    """Platform text as the platform sent it (Meta and WhatsApp send what was typed: a pasted
    `?order=981&section=2` must stay byte-exact); missing text is ''."""
    return value if isinstance(value, str) else ""


def x_text(value: Any) -> str:
    """X text unescaped: X HTML-escapes exactly `&`, `<` and `>` and nothing else, so only
    those three entities are undone (`&amp;lt;` was a literal `&lt;`: `&amp;` goes last)."""
    if not isinstance(value, str):
        return ""
    return value.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def require(mapping: Any, key: str, where: str) -> Any:
    """`mapping[key]`, or a NormalizationError naming the missing field."""
    if not isinstance(mapping, dict) or mapping.get(key) in (None, ""):
        raise NormalizationError("missing_field", f"{where}.{key} is missing")
    return mapping[key]


def id_string(value: Any, where: str) -> str:
    """An id as a string, exactly (ids above 2^53 must come from the raw JSON integer or a
    string field, never through a float)."""
    if isinstance(value, bool) or value is None:
        raise NormalizationError("invalid_field", f"{where} is not an id")
    if isinstance(value, int | str):
        text = str(value).strip()
        if text:
            return text
    raise NormalizationError("invalid_field", f"{where} is not an id")


ATTACHMENT_TYPES: dict[str, AttachmentType] = {
    "image": "image",
    "photo": "image",
    "animated_gif": "video",
    "gif": "video",
    "video": "video",
    "audio": "audio",
    "voice": "audio",
    "file": "file",
    "document": "file",
    "sticker": "sticker",
    "location": "location",
}


MAX_URL_LENGTH = 4096


def attachment(kind: Any, url: Any = None) -> Attachment:
    """An attachment of a known type (else `other`); a URL too long to keep is left out."""
    mapped = ATTACHMENT_TYPES.get(str(kind).lower(), "other")
    usable = isinstance(url, str) and 0 < len(url) <= MAX_URL_LENGTH
    return Attachment(type=mapped, url=url if usable else None)


def require_object(value: Any, where: str) -> dict[str, Any]:
    """`value` when it is a JSON object, else a NormalizationError naming `where`."""
    if not isinstance(value, dict):
        raise NormalizationError("invalid_field", f"{where} is not an object")
    return value


def require_list(value: Any, where: str) -> list[Any]:
    """`value` when it is a JSON array, else a NormalizationError naming `where`."""
    if not isinstance(value, list):
        raise NormalizationError("invalid_field", f"{where} is not a list")
    return value


def as_object(value: Any) -> dict[str, Any]:
    """An optional JSON object: anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """An optional JSON array: anything else reads as empty."""
    return value if isinstance(value, list) else []


def as_text(value: Any) -> str:
    """An optional string: anything else reads as ''."""
    return value if isinstance(value, str) else ""
