"""The SLA tables on the real PostgreSQL: idempotence, late alerts, and several replicas."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from casewire_common.events import (
    CASE_ASSIGNED,
    CASE_CREATED,
    CASE_RESPONDED,
    SLA_BREACHED,
    SLA_CLOCK_FULFILLED,
    SLA_CLOCK_STARTED,
    SLA_WARNING,
    CaseEventData,
)
from casewire_sla.adapters.store import PostgresClockStore
from casewire_sla.clock_service import ClockService, ClockStats, IncomingCaseEvent
from casewire_sla.domain.policies import PolicySet, parse_policy_set

from tests.integration.sla.conftest import policy_text
from tests.unit.sla.factories import snapshot

pytestmark = pytest.mark.integration

POLICIES: PolicySet = parse_policy_set(policy_text("10s", "[0.5, 0.8]"))


def created(case_id: str, opened_at: datetime) -> IncomingCaseEvent:
    return IncomingCaseEvent(
        str(uuid.uuid4()), CASE_CREATED, CaseEventData(case=snapshot(case_id, opened_at))
    )


def responded(case_id: str, opened_at: datetime, replied_at: datetime) -> IncomingCaseEvent:
    case = snapshot(case_id, opened_at, first_response_at=replied_at)
    return IncomingCaseEvent(
        str(uuid.uuid4()), CASE_RESPONDED, CaseEventData(case=case, first_response=True)
    )


async def outbox_types(pg: asyncpg.Connection) -> list[str]:
    rows = await pg.fetch("SELECT headers->>'ce_type' AS type FROM sla.outbox ORDER BY id")
    return [row["type"] for row in rows]


async def test_batch_applied_twice_changes_nothing_the_second_time(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    batch = [created("c-1", now), created("c-2", now)]
    first = await ClockService(store, POLICIES).apply_case_events(batch, now)
    second = await ClockService(store, POLICIES).apply_case_events(batch, now)
    assert (first.applied, len(first.started)) == (2, 2)
    assert (second.applied, second.duplicates, len(second.started)) == (0, 2, 0)
    assert await pg.fetchval("SELECT count(*) FROM sla.clocks") == 2
    assert await pg.fetchval("SELECT count(*) FROM sla.timers") == 6  # 2 warnings + breach each
    assert await outbox_types(pg) == [SLA_CLOCK_STARTED, SLA_CLOCK_STARTED]


async def test_created_and_replied_in_one_batch_start_and_fulfil_the_clock(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    outcome = await ClockService(store, POLICIES).apply_case_events(
        [created("c-1", now), responded("c-1", now, now + timedelta(seconds=2))], now
    )
    assert [fulfilment.clock.case_id for fulfilment in outcome.fulfilled] == ["c-1"]
    ((fulfilment,),) = [outcome.fulfilled]
    assert (fulfilment.clock.platform, fulfilment.clock.channel) == ("x", "mention")
    assert fulfilment.calendar == timedelta(seconds=2)
    assert outcome.fired == []
    assert await outbox_types(pg) == [SLA_CLOCK_STARTED, SLA_CLOCK_FULFILLED]
    assert await pg.fetchval("SELECT count(*) FROM sla.timers") == 0


async def test_reply_after_due_read_before_the_timer_fired_still_raises_the_breach_late(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    opened_at = datetime.now(UTC) - timedelta(seconds=30)
    await ClockService(store, POLICIES).apply_case_events([created("c-1", opened_at)], opened_at)
    # The reply came 12 s after opening (due at 10 s) but is read before any timer fired.
    now = datetime.now(UTC)
    outcome = await ClockService(store, POLICIES).apply_case_events(
        [responded("c-1", opened_at, opened_at + timedelta(seconds=12))], now
    )
    assert [(alert.kind, alert.fraction, alert.late) for alert in outcome.fired] == [
        ("warning", 0.5, True),
        ("warning", 0.8, True),
        ("breach", 1.0, True),
    ]
    assert await outbox_types(pg) == [
        SLA_CLOCK_STARTED,
        SLA_WARNING,
        SLA_WARNING,
        SLA_BREACHED,
        SLA_CLOCK_FULFILLED,
    ]
    assert await pg.fetchval("SELECT breached_at IS NOT NULL FROM sla.clocks") is True


async def test_a_reply_at_the_very_deadline_read_late_is_in_time(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    opened_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    await ClockService(store, POLICIES).apply_case_events([created("c-1", opened_at)], opened_at)
    # Platforms date in whole seconds: the reply is stamped exactly at due_at (10 s).
    outcome = await ClockService(store, POLICIES).apply_case_events(
        [responded("c-1", opened_at, opened_at + timedelta(seconds=10))], datetime.now(UTC)
    )
    assert [alert.kind for alert in outcome.fired] == ["warning", "warning"]
    assert [fulfilment.outcome for fulfilment in outcome.fulfilled] == ["met"]
    assert await pg.fetchval("SELECT breached_at IS NULL FROM sla.clocks") is True


async def test_timers_fire_once_even_with_several_replicas_firing_at_the_same_time(
    store: PostgresClockStore, migrated_url: str, pg: asyncpg.Connection
) -> None:
    opened_at = datetime.now(UTC) - timedelta(minutes=5)
    cases = 150
    await ClockService(store, POLICIES).apply_case_events(
        [created(f"c-{n}", opened_at) for n in range(cases)], opened_at
    )
    replicas = [PostgresClockStore(migrated_url) for _ in range(3)]
    for replica in replicas:
        await replica.open()
    try:

        async def fire_until_none_left(replica: PostgresClockStore) -> int:
            fired = 0
            while batch := await ClockService(replica, POLICIES).fire_due_timers(
                datetime.now(UTC), 20
            ):
                fired += len(batch)
            return fired

        counts = await asyncio.gather(
            *(fire_until_none_left(replica) for replica in replicas for _ in range(2))
        )
    finally:
        for replica in replicas:
            await replica.close()

    assert sum(counts) == cases * 3
    assert sum(1 for count in counts if count) > 1  # the work really was shared
    rows = await pg.fetch(
        "SELECT headers->>'ce_id' AS id, headers->>'ce_type' AS type FROM sla.outbox"
        " WHERE headers->>'ce_type' IN ($1, $2)",
        SLA_WARNING,
        SLA_BREACHED,
    )
    assert len(rows) == cases * 3
    assert len({row["id"] for row in rows}) == cases * 3
    assert await pg.fetchval("SELECT count(*) FROM sla.timers WHERE fired_at IS NULL") == 0


async def test_next_fire_at_is_the_earliest_pending_timer(store: PostgresClockStore) -> None:
    now = datetime.now(UTC)
    assert await store.next_fire_at() is None
    await ClockService(store, POLICIES).apply_case_events([created("c-1", now)], now)
    assert await store.next_fire_at() == now + timedelta(seconds=5)  # the 0.5 warning


async def test_clocks_keep_the_case_fields_as_last_seen_and_report_the_next_due(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    await ClockService(store, POLICIES).apply_case_events([created("c-1", now)], now)
    moved = snapshot("c-1", now, channel="dm", tags=["vip"], status="assigned")
    await ClockService(store, POLICIES).apply_case_events(
        [IncomingCaseEvent(str(uuid.uuid4()), CASE_ASSIGNED, CaseEventData(case=moved))], now
    )
    rows = await pg.fetch("SELECT platform, channel, visibility, tags FROM sla.clocks")
    assert [tuple(row) for row in rows] == [("x", "dm", "public", ["vip"])] * len(rows)
    stats = await store.clock_stats()
    assert stats.open == {"first_response": 1}
    assert stats.earliest_due["first_response"] == now + timedelta(seconds=10)


async def test_clock_stats_count_open_clocks_and_take_the_next_due_of_those_that_can_breach(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    opened = [now + timedelta(seconds=index) for index in range(5)]  # due 10 s later each
    await ClockService(store, POLICIES).apply_case_events(
        [created(f"c-{index}", at) for index, at in enumerate(opened)], now
    )
    await pg.execute("UPDATE sla.clocks SET breached_at = due_at WHERE case_id = 'c-0'")
    await pg.execute("UPDATE sla.clocks SET status = 'paused' WHERE case_id = 'c-1'")
    await pg.execute("UPDATE sla.clocks SET status = 'fulfilled' WHERE case_id = 'c-2'")
    await pg.execute("UPDATE sla.clocks SET clock = 'resolution' WHERE case_id = 'c-4'")
    stats = await store.clock_stats()
    # A breached clock runs (and counts) until it ends; a paused one counts but cannot breach.
    assert stats.open == {"first_response": 3, "resolution": 1}
    assert stats.earliest_due == {
        "first_response": opened[3] + timedelta(seconds=10),
        "resolution": opened[4] + timedelta(seconds=10),
    }
    await pg.execute("UPDATE sla.clocks SET status = 'fulfilled'")
    assert await store.clock_stats() == ClockStats(open={}, earliest_due={})
