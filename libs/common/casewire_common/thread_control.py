"""Thread-control records (`casewire.messages.v1`): which app owns a Messenger or Instagram
conversation, from Meta's handover protocol, beside the conversation's canonical messages.

A record whose header `casewire-record` is `thread_control` holds a `ThreadControl` (JSON)
instead of a canonical message; the canonical message stays a closed schema. It is keyed by its
`conversation_id`, so a consumer reads it in order with that conversation's messages. Ingest
also marks canonical messages it read on Meta's `standby` channel (`casewire-standby: true`:
another app owned the thread) and echoes that name the app that sent them (`casewire-app-id`).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from casewire_common.messages import Platform, UtcDatetime, message_id

# `casewire-record` header values: a record without the header is a canonical message.
THREAD_CONTROL_RECORD = "thread_control"
# The app id Meta gives the Page inbox (Messenger and Instagram) in the handover protocol.
PAGE_INBOX_APP_ID = "263902037430900"
# Meta caps a handover's `metadata` at 1,000 characters.
MAX_METADATA_LENGTH = 1000

ThreadControlAction = Literal["pass", "take", "request"]


def thread_control_id(
    platform: str, conversation_id: str, action: str, timestamp: str, app_id: str | None
) -> str:
    """The stable id of a thread-control event: the same event redelivered gets the same id
    (the uuid5 scheme of message ids, over a name no platform message id can take)."""
    return message_id(platform, f"thread_control:{conversation_id}:{action}:{timestamp}:{app_id}")


class ThreadControl(BaseModel):
    """A handover event of Meta's protocol: who controls a conversation now.

    An app passed (`pass`) or took (`take`) control of the conversation, or asked for it
    (`request`). The fields are Meta's, from the `messaging_handovers` webhook."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Stable across redelivery: deduplicate on it.")
    platform: Platform
    action: ThreadControlAction
    account_id: str = Field(min_length=1, max_length=256, description="The Page or account.")
    conversation_id: str = Field(
        min_length=1,
        max_length=1024,
        description="The conversation whose control changed: the key of its DMs.",
    )
    new_owner_app_id: str | None = Field(
        default=None,
        max_length=64,
        description="pass (always) and take (when Meta says): the app that owns the thread now.",
    )
    previous_owner_app_id: str | None = Field(
        default=None,
        max_length=64,
        description="The app that owned it before (absent: the thread was idle or Meta did not"
        " say).",
    )
    requested_owner_app_id: str | None = Field(
        default=None, max_length=64, description="request: the app that asks for control."
    )
    metadata: str | None = Field(
        default=None,
        max_length=MAX_METADATA_LENGTH,
        description="The string the calling app attached (e.g. why it handed over).",
    )
    sent_at: UtcDatetime = Field(description="When control changed (the platform's timestamp).")
    received_at: UtcDatetime = Field(description="When ingest accepted it.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.action == "pass" and self.new_owner_app_id is None:
            raise ValueError("a pass names its new_owner_app_id")
        if self.action == "request" and self.requested_owner_app_id is None:
            raise ValueError("a request names its requested_owner_app_id")
        return self

    @property
    def delivery_key(self) -> str:
        """What makes two deliveries the same event (deduplication, processed markers)."""
        return self.id
