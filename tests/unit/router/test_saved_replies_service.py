"""The saved replies' use cases over an in-memory store: what a lead may write, the audit event
of each change (as the published contract says), the file's reply back after a removal, and
what each caller may read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import pytest
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import decode_event
from casewire_router.adapters.care_metrics import CareMetrics
from casewire_router.domain.access import Actor, Forbidden, Scope
from casewire_router.domain.case_actions import InvalidInput
from casewire_router.domain.saved_replies import SavedReply, StoredReply, parse_saved_replies
from casewire_router.saved_replies_service import SavedRepliesService, UnknownSavedReply
from prometheus_client import CollectorRegistry

from tests.unit.contracts.test_published_payloads import (
    assert_valid,
    message_contract,
    payload_schema,
)

FILE = parse_saved_replies(
    """\
replies:
  - id: shipping-policy
    title: Shipping
    teams: [shipping]
    text: {en: "Hi {customer_name}", ar: "مرحباً {customer_name}"}
  - id: anything-else
    title: Anything else?
    text: {en: "Anything else?", el: "Κάτι άλλο;"}
"""
)
LEAD = Actor("lee", "lead", frozenset({"shipping"}))
BILLING_LEAD = Actor("bea", "lead", frozenset({"billing"}))
AGENT = Actor("amal", "agent", frozenset({"shipping"}))
ADMIN = Actor("root", "admin")


class MemoryStore:
    """The API's versions in a dict; committed events kept in order."""

    def __init__(self) -> None:
        self.replies: dict[str, StoredReply] = {}
        self.events: list[tuple[str, ev.EventRecord]] = []

    async def api_replies(self) -> list[StoredReply]:
        return [self.replies[reply_id] for reply_id in sorted(self.replies)]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTransaction]:
        work = MemoryTransaction(self)
        yield work  # an exception leaves the store as it was
        self.replies = work.replies
        self.events += work.events


class MemoryTransaction:
    def __init__(self, store: MemoryStore) -> None:
        self.replies = dict(store.replies)
        self.events: list[tuple[str, ev.EventRecord]] = []

    async def lock(self, reply_id: str) -> StoredReply | None:
        return self.replies.get(reply_id)

    async def write(self, stored: StoredReply) -> None:
        self.replies[stored.reply.id] = stored

    async def remove(self, reply_id: str) -> None:
        del self.replies[reply_id]

    def add_events(self, records: Iterable[tuple[str, ev.EventRecord]]) -> None:
        self.events += records


def service() -> tuple[SavedRepliesService, MemoryStore, CollectorRegistry]:
    store = MemoryStore()
    registry = CollectorRegistry()
    return (
        SavedRepliesService(
            store, FILE, lambda: ["care", "shipping", "billing"], CareMetrics(registry)
        ),
        store,
        registry,
    )


def audited(store: MemoryStore) -> list[dict[str, object]]:
    """The events written, each checked against the published contract."""
    found = []
    for topic, record in store.events:
        assert topic == topics.CASE_EVENTS
        event = decode_event(record.headers, record.value, record.key.encode())
        assert event.type == ev.SAVED_REPLY_UPDATED
        assert record.key == event.subject == f"saved-reply:{event.data['saved_reply_id']}"
        assert_valid(event.data, payload_schema("saved-reply-data"))
        headers = {name: value.decode() for name, value in record.headers.items()}
        assert_valid(headers, message_contract("router", "SavedReplyData")["headers"])
        found.append(event.data)
    return found


async def test_a_lead_overrides_their_teams_file_reply_and_removing_it_brings_it_back() -> None:
    replies, store, registry = service()
    new = SavedReply(
        id="shipping-policy",
        title="Shipping (winter)",
        text={"en": "Hi {customer_name}, expect delays", "th": "สวัสดีค่ะคุณ{customer_name}"},
        teams=["shipping"],
        tags=["shipping"],
    )
    entry, created = await replies.put(LEAD, new)
    assert (created, entry.source, entry.overrides_file) == (False, "api", True)
    assert (await replies.get(AGENT, "shipping-policy")).reply == new
    back = await replies.remove(LEAD, "shipping-policy")
    assert back is not None
    assert (back.source, back.reply.title) == ("file", "Shipping")
    events = audited(store)
    assert [(e["change"], e["source"], e["title"]) for e in events] == [
        ("updated", "api", "Shipping (winter)"),
        ("removed", "file", "Shipping"),
    ]
    assert events[0]["actor"] == {"id": "lee", "role": "lead"}
    assert events[0]["text"] == new.text
    uses = {"team": "shipping", "saved_reply": "shipping-policy"}
    assert registry.get_sample_value("casewire_router_saved_reply_uses_total", uses) == 0


async def test_a_new_reply_is_created_and_removing_it_leaves_nothing() -> None:
    replies, store, _ = service()
    apology = SavedReply(id="apology", title="Sorry", text={"el": "Συγγνώμη"}, teams=["shipping"])
    assert (await replies.put(LEAD, apology))[1] is True
    assert await replies.remove(ADMIN, "apology") is None
    assert [(e["change"], e["source"], e["title"], e["text"]) for e in audited(store)] == [
        ("created", "api", "Sorry", {"el": "Συγγνώμη"}),
        ("removed", None, None, {}),
    ]
    with pytest.raises(UnknownSavedReply):
        await replies.remove(ADMIN, "apology")
    with pytest.raises(UnknownSavedReply):
        await replies.get(ADMIN, "apology")


async def test_another_replica_starts_the_use_counters_of_a_reply_when_it_first_reads_it() -> None:
    writer, store, _ = service()
    other_registry = CollectorRegistry()
    other = SavedRepliesService(
        store, FILE, lambda: ["care", "shipping"], CareMetrics(other_registry)
    )
    await other.start()
    uses = "casewire_router_saved_reply_uses_total"
    apology = {"team": "care", "saved_reply": "apology"}
    assert other_registry.get_sample_value(uses, apology) is None
    await writer.put(
        ADMIN, SavedReply(id="apology", title="Sorry", text={"en": "Sorry"}, teams=["care", "care"])
    )
    assert (await other.get(ADMIN, "apology")).reply.teams == ["care"]
    assert other_registry.get_sample_value(uses, apology) == 0
    # Every team's replies (anything-else) for every team of the rules.
    assert (
        other_registry.get_sample_value(uses, {"team": "care", "saved_reply": "anything-else"}) == 0
    )


async def test_refused_writes_change_nothing_and_publish_nothing() -> None:
    replies, store, _ = service()
    mine = SavedReply(id="shipping-policy", title="T", text={"en": "x"}, teams=["shipping"])
    with pytest.raises(Forbidden, match="does not lead: shipping"):
        await replies.put(BILLING_LEAD, mine.model_copy(update={"teams": ["billing"]}))
    with pytest.raises(Forbidden, match="for every team: only an admin"):
        await replies.put(LEAD, mine.model_copy(update={"id": "anything-else"}))
    with pytest.raises(Forbidden, match="needs the role lead"):
        await replies.put(AGENT, mine)
    with pytest.raises(InvalidInput, match="teams: shiping not in the rules file's teams"):
        await replies.put(ADMIN, mine.model_copy(update={"teams": ["shiping"]}))
    assert store.replies == {}
    assert store.events == []


async def test_each_caller_reads_what_is_theirs() -> None:
    replies, _, _ = service()
    await replies.put(
        ADMIN, SavedReply(id="refunds", title="R", text={"en": "r"}, teams=["billing"])
    )
    assert [e.reply.id for e in await replies.visible(AGENT)] == [
        "anything-else",
        "shipping-policy",
    ]
    assert [e.reply.id for e in await replies.visible(BILLING_LEAD)] == [
        "anything-else",
        "refunds",
    ]
    assert [e.reply.id for e in await replies.visible(ADMIN, team="billing")] == [
        "anything-else",
        "refunds",
    ]
    reader = Actor("crm", "service", scopes=frozenset({Scope.SAVED_REPLIES_READ}))
    assert len(await replies.visible(reader)) == 3
    with pytest.raises(Forbidden):
        await replies.get(AGENT, "refunds")
    with pytest.raises(Forbidden, match="lacks the saved-replies:read scope"):
        await replies.visible(Actor("bi", "service", scopes=frozenset({Scope.CASES_READ})))
    await replies.require_known("refunds")
    with pytest.raises(InvalidInput, match="no saved reply 'refund'"):
        await replies.require_known("refund")
