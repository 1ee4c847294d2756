"""Deliveries: what the router reads from the messages topic, and what makes a redelivered
one "the same" for the idempotent consumer."""

from __future__ import annotations

from typing import TypeAlias

from casewire_common.messages import CanonicalMessage
from casewire_common.thread_control import ThreadControl

# A record of `casewire.messages.v1`: a canonical message, or a thread-control record
# (Meta's handover protocol; docs/handover.md).
Routable: TypeAlias = CanonicalMessage | ThreadControl


def processing_key(item: Routable) -> str:
    """The key an input is marked processed under: a message's id; an edit's id and instant
    (each edit is applied once); a delete's id; a thread-control record's id."""
    if isinstance(item, ThreadControl):
        return item.delivery_key
    if item.event == "message":
        return item.id
    if item.event == "edit":
        return f"{item.id}:edit:{item.sent_at.isoformat()}"
    return f"{item.id}:delete"
