"""Deliveries: what makes a redelivered message "the same" for the idempotent consumer."""

from __future__ import annotations

from casewire_common.messages import CanonicalMessage


def processing_key(message: CanonicalMessage) -> str:
    """The key a message is marked processed under: its id; an edit's id and instant (each
    edit is applied once); a delete's id."""
    if message.event == "message":
        return message.id
    if message.event == "edit":
        return f"{message.id}:edit:{message.sent_at.isoformat()}"
    return f"{message.id}:delete"
