"""Collision avoidance as pure decisions: who may take or release a reply lease, when a reply
collides, which platform echoes wait for their lease holder; and the message path (on the
in-memory store) holding an echo that came during a lease and feeding the desks every case
event it publishes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from casewire_common import events as ev
from casewire_common.metrics import new_registry
from casewire_router.adapters.memory import InMemoryMessageStore
from casewire_router.domain.access import Actor, Forbidden, require_lease, require_lease_release
from casewire_router.domain.assignment import AgentState
from casewire_router.domain.case import CaseWindows, Placement
from casewire_router.domain.leases import collide, echoes_to_hold, reply_collides
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.routing import CaseRouter
from casewire_router.domain.urgency import default_model
from casewire_router.message_service import MessageService, RouterMetrics

from tests.unit.router.case_factories import case
from tests.unit.router.factories import T0, message
from tests.unit.router.test_message_service import RecordedDeadLetters, as_record
from tests.unit.router.test_routing import RULES

AMAL = Actor("amal", "agent", frozenset({"shipping"}))
SARA = Actor("sara", "agent", frozenset({"shipping"}))
LEE = Actor("lee", "lead", frozenset({"shipping"}))
BILLING_LEAD = Actor("bo", "lead", frozenset({"billing"}))


def test_whoever_may_reply_may_take_the_lease() -> None:
    owned = case(status="assigned", assignee="amal")
    require_lease(AMAL, owned)
    require_lease(LEE, owned)
    require_lease(Actor("root", "admin"), owned)
    with pytest.raises(Forbidden, match="owned by amal"):
        require_lease(SARA, owned)
    with pytest.raises(Forbidden, match="not in one of"):
        require_lease(BILLING_LEAD, owned)
    with pytest.raises(Forbidden, match="for people"):
        require_lease(Actor("crm", "service"), owned)


def test_a_lease_is_released_by_its_holder_a_lead_or_an_admin() -> None:
    owned = case(status="assigned", assignee="amal")
    require_lease_release(AMAL, owned, holder="amal")
    require_lease_release(LEE, owned, holder="amal")
    require_lease_release(Actor("root", "admin"), owned, holder="amal")
    require_lease_release(SARA, owned, holder=None)  # nothing held: nothing to refuse
    with pytest.raises(Forbidden, match="held by 'amal'"):
        require_lease_release(SARA, owned, holder="amal")
    with pytest.raises(Forbidden, match="not in one of"):
        require_lease_release(BILLING_LEAD, owned, holder="amal")


@pytest.mark.parametrize(
    ("owner", "author", "holder", "collides"),
    [
        ("amal", "amal", None, False),  # the owner, nobody typing
        ("amal", "lee", None, True),  # a lead over the owner's head, without the lease
        ("amal", "lee", "lee", False),  # the lead took the lease: the owner was told
        ("amal", "amal", "lee", True),  # the owner while the lead holds the lease
        ("amal", "lee", "amal", True),  # the lead while the owner holds it
        (None, "sara", None, False),  # nobody owns it: free to answer
        (None, "sara", "amal", True),
    ],
)
def test_a_reply_collides_unless_the_lease_holder_or_else_the_owner_wrote_it(
    owner: str | None, author: str, holder: str | None, collides: bool
) -> None:
    assert reply_collides(owner, author, holder) is collides


def test_only_echoes_that_came_during_a_lease_wait_for_their_holder() -> None:
    during = message("on it", pid="e1", direction="outbound", author="brand")
    without = message("done", pid="e2", direction="outbound", author="brand")
    decide_at = T0 + timedelta(seconds=30)
    (held,) = echoes_to_hold([(during, "c1"), (without, "c2")], {"c1": "amal"}, decide_at)
    assert (held.message_id, held.case_id, held.lease_holder) == (during.id, "c1", "amal")
    assert (held.sent_at, held.decide_at, held.collided) == (during.sent_at, decide_at, False)


def test_a_collision_names_who_replied_and_who_held_the_lease() -> None:
    owned, outcome = case(status="assigned", assignee="amal"), RoutingOutcome()
    collide(owned, outcome, "m1", author="lee", lease_holder="amal", source="api")
    (event,) = outcome.events
    assert event.type == ev.CASE_COLLISION
    assert (event.data.agent_id, event.data.lease_holder, event.data.reply_source) == (
        "lee",
        "amal",
        "api",
    )
    assert (event.data.message_id, event.data.case.version) == ("m1", 1)


def message_service(store: InMemoryMessageStore) -> MessageService:
    return MessageService(
        store,
        CaseRouter(RULES, default_model()),
        RecordedDeadLetters(),
        RouterMetrics(new_registry()),
        echo_window=timedelta(seconds=20),
    )


def new_store() -> InMemoryMessageStore:
    amal = AgentState("amal", ["shipping", "care"], ["en"], 5, True, 0, None)
    return InMemoryMessageStore(CaseWindows(), {"amal": amal})


async def test_an_echo_during_someone_elses_lease_waits_for_them_and_one_without_does_not() -> None:
    store = new_store()
    service = message_service(store)
    await service.handle_records([as_record(message("where is my shipping?", pid="q1"))])
    (case_id,) = store.cases
    store.leases[case_id] = "amal"
    echo = message("on its way", pid="e1", direction="outbound", author="brand", minutes=1)
    await service.handle_records([as_record(echo, 1)])
    (held,) = store.lease_echoes
    assert (held.message_id, held.case_id, held.lease_holder) == (echo.id, case_id, "amal")
    expected = datetime.now(UTC) + timedelta(seconds=20)  # now + the window
    assert abs(held.decide_at - expected) < timedelta(seconds=5)
    del store.leases[case_id]
    later = message("anything else?", pid="e2", direction="outbound", author="brand", minutes=2)
    await service.handle_records([as_record(later, 2)])
    assert len(store.lease_echoes) == 1  # presumed the owner's: no lease, no wait


async def test_the_desks_feed_gets_every_case_event_and_where_the_case_stood() -> None:
    store = new_store()
    await message_service(store).handle_records(
        [as_record(message("where is my shipping?", pid="q1"))]
    )
    published = [record.headers["ce_type"].decode() for _, record in store.outbox]
    assert (
        [entry.type for entry in store.feed]
        == published
        == [
            ev.CASE_CREATED,
            ev.CASE_ASSIGNED,
        ]
    )
    created, assigned = store.feed
    assert created.before is None
    assert created.after == Placement("shipping", None, waiting=True)
    assert assigned.before == created.after
    assert assigned.after == Placement("shipping", "amal", waiting=False)
    # The data as published, but for the routing decision (a desk reads it from the case).
    published_data = [json.loads(record.value) for _, record in store.outbox]
    assert all(data["decision"] is not None for data in published_data)
    assert [json.loads(entry.data) for entry in store.feed] == [
        {name: value for name, value in data.items() if name != "decision"}
        for data in published_data
    ]
