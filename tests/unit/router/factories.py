"""Plain-data builders for router unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from casewire_common.messages import CanonicalMessage, message_id

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def message(
    text: str,
    *,
    pid: str = "m1",
    direction: str = "inbound",
    channel: str = "mention",
    conversation: str = "x:brand:root1:cust1",
    language: str | None = None,
    followers: int | None = None,
    verified: bool | None = None,
    author: str = "cust1",
    minutes: float = 0,
    event: str = "message",
    platform: str = "x",
) -> CanonicalMessage:
    fields: dict[str, Any] = {
        "id": message_id(platform, pid),
        "platform": platform,
        "channel": channel,
        "visibility": "private" if channel == "dm" else "public",
        "direction": direction,
        "event": event,
        "account_id": "brand",
        "platform_message_id": pid,
        "conversation_id": conversation,
        "author": {"id": author, "followers": followers, "verified": verified},
        "text": text,
        "language": language,
        "sent_at": T0 + timedelta(minutes=minutes),
        "received_at": T0 + timedelta(minutes=minutes, seconds=1),
    }
    return CanonicalMessage.model_validate(fields)
