"""An agent's own work, as pure decisions and as the stream's algorithm over fakes: whose desk a
change reaches, where a resumed stream goes on, when an offline owner's cases go back, and a
stream that resumes, falls behind and catches up without losing or repeating a change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import timedelta

import pytest
from casewire_common import events as ev
from casewire_router.desk_service import (
    DeskService,
    KeepAlive,
    StreamItem,
    StreamOpened,
    StreamReset,
)
from casewire_router.domain import case_actions
from casewire_router.domain.access import Actor, Forbidden
from casewire_router.domain.case import CaseState, Placement
from casewire_router.domain.desk import Desk, FeedEntry, FeedRow, desk_of, resumes, return_due, sees
from casewire_router.domain.leases import Lease
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.queue import drain

from tests.unit.router.case_factories import agent, case
from tests.unit.router.factories import T0

AMAL = Desk("amal", frozenset({"shipping"}), oversees=False)
LEE = Desk("lee", frozenset({"shipping"}), oversees=True)


def entry(
    after: Placement, before: Placement | None = None, kind: str = ev.CASE_ASSIGNED
) -> FeedEntry:
    return FeedEntry("c1", kind, after, before, b"{}")


def test_a_desk_sees_its_own_cases_and_those_it_owned_until_the_change() -> None:
    assert sees(AMAL, entry(Placement("care", "amal", waiting=False)))
    reassigned = entry(Placement("care", "sara", False), Placement("care", "amal", False))
    assert sees(AMAL, reassigned)
    assert not sees(AMAL, entry(Placement("shipping", "sara", False)))


def test_a_desk_sees_its_teams_queue_as_cases_join_and_leave_it() -> None:
    joined = entry(Placement("shipping", None, waiting=True), kind=ev.CASE_CREATED)
    claimed_by_another = entry(
        Placement("shipping", "sara", False), Placement("shipping", None, True)
    )
    moved_to_another_team = entry(
        Placement("billing", None, True), Placement("shipping", None, True), ev.CASE_ESCALATED
    )
    other_team = entry(Placement("billing", None, True), kind=ev.CASE_CREATED)
    assert sees(AMAL, joined)
    assert sees(AMAL, claimed_by_another)
    assert sees(AMAL, moved_to_another_team)
    assert not sees(AMAL, other_team)


def test_only_a_lead_or_an_admin_sees_collisions_on_other_peoples_cases() -> None:
    collision = entry(Placement("shipping", "sara", False), kind=ev.CASE_COLLISION)
    assert sees(LEE, collision)
    assert not sees(AMAL, collision)
    assert not sees(LEE, entry(Placement("billing", "sara", False), kind=ev.CASE_COLLISION))


def test_an_agents_desk_is_their_roster_teams_a_leads_adds_the_roster_to_the_token() -> None:
    agent_desk = desk_of(Actor("amal", "agent", frozenset({"shipping"})), None)
    assert agent_desk == Desk("amal", frozenset({"shipping"}), oversees=False)
    lead_desk = desk_of(Actor("lee", "lead", frozenset({"shipping"})), ["care"])
    assert lead_desk == Desk("lee", frozenset({"shipping", "care"}), oversees=True)
    assert desk_of(Actor("root", "admin"), None).teams == frozenset()
    with pytest.raises(Forbidden, match="for people"):
        desk_of(Actor("crm", "service"), None)


def test_a_stream_resumes_unless_its_position_was_pruned_or_never_given() -> None:
    assert resumes(10, oldest=5, newest=20)
    assert resumes(4, oldest=5, newest=20)  # the next one is kept
    assert not resumes(3, oldest=5, newest=20)  # 4 is gone
    assert not resumes(21, oldest=5, newest=20)  # another database's position
    assert resumes(20, oldest=None, newest=20)  # nothing happened since
    assert not resumes(19, oldest=None, newest=20)  # 20 was pruned
    assert not resumes(-1, oldest=1, newest=20)


def test_an_offline_owners_case_is_due_back_only_after_the_grace() -> None:
    owned = case(status="assigned", assignee="amal")
    offline = {"amal": agent("amal", online=False)}
    cutoff = T0
    assert return_due(owned, offline, {"amal": T0 - timedelta(seconds=1)}, cutoff)
    assert return_due(owned, offline, {"amal": T0}, cutoff)
    assert not return_due(owned, offline, {"amal": T0 + timedelta(seconds=1)}, cutoff)
    assert not return_due(owned, {"amal": agent("amal")}, {}, cutoff)  # back online
    resolved = case(status="resolved", assignee="amal")
    assert not return_due(resolved, offline, {"amal": T0 - timedelta(hours=1)}, cutoff)


def test_a_returned_case_waits_again_in_its_place_and_drains_to_an_agent_with_room() -> None:
    agents = {"amal": agent("amal", load=1, online=False), "sara": agent("sara")}
    owned = case(status="pending", assignee="amal", minutes=-30)
    owned.placed = owned.placement()  # as read from the table
    outcome = RoutingOutcome()
    case_actions.return_to_queue(owned, agents, outcome)
    (returned,) = outcome.events
    assert (returned.type, returned.data.case.status, returned.data.case.assignee) == (
        ev.CASE_STATUS_CHANGED,
        "queued",
        None,
    )
    assert returned.data.reason == case_actions.OWNER_OFFLINE
    assert (returned.data.agent_id, returned.data.previous_status) == ("amal", "pending")
    assert returned.before == Placement("shipping", "amal", waiting=False)
    assert returned.after == Placement("shipping", None, waiting=True)
    assert agents["amal"].load == 0
    assert case_actions.waiting_since(owned) == owned.opened_at  # its place kept
    assert drain([owned], agents, outcome, T0) == [owned]
    assigned = outcome.events[-1]
    assert assigned.before == Placement("shipping", None, waiting=True)
    assert assigned.after == Placement("shipping", "sara", waiting=False)


def row(position: int, owner: str | None = "amal", team: str = "shipping") -> FeedRow:
    return FeedRow(
        case_id=f"c{position}",
        type=ev.CASE_MESSAGE_ADDED,
        after=Placement(team, owner, owner is None),
        before=Placement(team, owner, owner is None),
        data=f'{{"n":{position}}}'.encode(),
        id=position,
    )


class FakeFeedStore:
    """The feed table: rows committed so far, and what has been pruned."""

    def __init__(self) -> None:
        self.rows: list[FeedRow] = []
        self.newest = 0
        self.reads = 0

    def commit(self, *rows: FeedRow) -> None:
        self.rows.extend(rows)
        self.newest = max(self.newest, *(r.id for r in rows))

    async def roster_teams(self, person: str) -> list[str] | None:
        return None

    async def owned_cases(self, person: str) -> tuple[int, list[tuple[CaseState, Lease | None]]]:
        return self.newest, []

    async def waiting_cases(
        self, teams: Collection[str]
    ) -> tuple[int, list[tuple[CaseState, Lease | None]]]:
        return self.newest, []

    async def feed_after(self, position: int, limit: int) -> list[FeedRow]:
        self.reads += 1
        return [r for r in self.rows if r.id > position][:limit]

    async def feed_head(self) -> int:
        return max((r.id for r in self.rows), default=0)

    async def feed_bounds(self) -> tuple[int | None, int]:
        return min((r.id for r in self.rows), default=None), self.newest


class FakeSubscription:
    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[list[FeedRow] | None] = asyncio.Queue()
        self.closed = False

    async def next(self, timeout: float) -> list[FeedRow] | None:
        try:
            return await asyncio.wait_for(self.deliveries.get(), timeout)
        except TimeoutError:
            return []

    def close(self) -> None:
        self.closed = True


class FakeLiveFeed:
    def __init__(self) -> None:
        self.subscriptions: list[FakeSubscription] = []

    def subscribe(self, desk: Desk) -> FakeSubscription:
        self.subscriptions.append(FakeSubscription())
        return self.subscriptions[-1]


def service(store: FakeFeedStore, live: FakeLiveFeed, seconds: float = 60.0) -> DeskService:
    return DeskService(
        store,
        live,
        keepalive_seconds=0.05,
        stream_seconds=seconds,
    )


async def take(stream: AsyncIterator[StreamItem], count: int) -> list[StreamItem]:
    items = []
    async for item in stream:
        if not isinstance(item, KeepAlive):
            items.append(item)
        if len(items) == count:
            return items
    return items


def ids(items: Sequence[StreamItem]) -> list[int]:
    return [item.id for item in items if isinstance(item, FeedRow)]


async def test_a_resumed_stream_reads_what_it_missed_then_goes_on_live_without_repeats() -> None:
    store, live = FakeFeedStore(), FakeLiveFeed()
    store.commit(row(1), row(2), row(3, owner="sara"), row(4))
    stream = service(store, live).stream(AMAL, last_event_id=1)
    first = await take(stream, 3)
    assert ids(first) == [2, 4]  # 3 is sara's: not amal's desk
    assert first[-1] == StreamOpened(4)
    (subscription,) = live.subscriptions
    # Row 4 reached the hub too (committed while the stream read the table): given once.
    store.commit(row(5), row(6))
    await subscription.deliveries.put([row(4), row(5)])
    await subscription.deliveries.put([row(6)])
    assert ids(await take(stream, 2)) == [5, 6]
    await stream.aclose()
    assert subscription.closed


async def test_a_stream_that_fell_behind_reads_the_dropped_rows_from_the_table() -> None:
    store, live = FakeFeedStore(), FakeLiveFeed()
    stream = service(store, live).stream(AMAL, last_event_id=None)
    assert await take(stream, 1) == [StreamOpened(0)]
    store.commit(row(1), row(2), row(3))
    await live.subscriptions[0].deliveries.put(None)  # the hub dropped them
    await live.subscriptions[0].deliveries.put([row(3)])
    assert ids(await take(stream, 3)) == [1, 2, 3]
    await stream.aclose()


async def test_a_position_no_longer_kept_resets_the_stream_to_the_head() -> None:
    store, live = FakeFeedStore(), FakeLiveFeed()
    store.commit(row(1), row(2), row(3))
    store.rows = store.rows[2:]  # 1 and 2 pruned
    stream = service(store, live).stream(AMAL, last_event_id=1)
    assert await take(stream, 2) == [StreamReset(3), StreamOpened(3)]
    await stream.aclose()


async def test_a_quiet_stream_keeps_alive_and_ends_after_its_longest_duration() -> None:
    store, live = FakeFeedStore(), FakeLiveFeed()
    items = [item async for item in service(store, live, seconds=0.3).stream(AMAL, None)]
    assert items[0] == StreamOpened(0)
    assert len([item for item in items if isinstance(item, KeepAlive)]) >= 2
    assert live.subscriptions[0].closed
