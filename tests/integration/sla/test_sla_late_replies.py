"""Replies and merges read out of order, on the real PostgreSQL: a first reply sent earlier
than the one that ended the clock takes its place (a breach it disproves is retracted and
attainment counts the clock met), and a case absorbed by another ends its clocks with no
outcome."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from casewire_common import topics
from casewire_common.events import (
    CASE_CREATED,
    CASE_MERGED,
    CASE_RESPONDED,
    ROUTER_WATERMARK,
    SLA_BREACH_RETRACTED,
    SLA_BREACHED,
    SLA_CLOCK_FULFILLED,
    CaseSnapshot,
    WatermarkData,
)
from casewire_sla.adapters.store import PostgresClockStore
from casewire_sla.clock_service import ClockService, IncomingCaseEvent
from casewire_sla.domain.holding import WatermarkHold
from casewire_sla.domain.policies import PolicySet, parse_policy_set

from tests.integration.sla.conftest import event, policy_text
from tests.unit.sla.factories import snapshot

pytestmark = pytest.mark.integration

POLICIES: PolicySet = parse_policy_set(policy_text("10s"))
TARGET = timedelta(seconds=10)


def replied(case_id: str, opened_at: datetime, reply_at: datetime) -> IncomingCaseEvent:
    """The router's `responded` for a reply it takes as the first (the earliest sent so far)."""
    case = snapshot(case_id, opened_at, status="assigned", first_response_at=reply_at)
    return event(CASE_RESPONDED, case, at=reply_at, first_response=True)


async def outbox(pg: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await pg.fetch(
        "SELECT headers->>'ce_type' AS type, headers->>'ce_id' AS id FROM sla.outbox ORDER BY id"
    )
    return [(row["type"], row["id"]) for row in rows]


async def retracted_ids(pg: asyncpg.Connection) -> list[str]:
    rows = await pg.fetch(
        "SELECT convert_from(value, 'UTF8')::jsonb->>'retracted_alert_id' AS id FROM sla.outbox"
        " WHERE headers->>'ce_type' = $1 ORDER BY id",
        SLA_BREACH_RETRACTED,
    )
    return [row["id"] for row in rows]


async def attainment(pg: asyncpg.Connection) -> dict[str, int]:
    rows = await pg.fetch("SELECT outcome, clocks FROM sla.attainment WHERE clocks <> 0")
    return {row["outcome"]: row["clocks"] for row in rows}


async def test_an_earlier_reply_read_after_a_late_one_retracts_the_breach_and_counts_met(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    opened_at = datetime.now(UTC) - timedelta(seconds=60)
    await service.apply_case_events(
        [event(CASE_CREATED, snapshot("c-1", opened_at), at=opened_at)], opened_at
    )
    # Two replies, 9 s (in time) and 12 s (late) after the opening, processed late first.
    late = replied("c-1", opened_at, opened_at + timedelta(seconds=12))
    await service.apply_case_events([late], datetime.now(UTC))
    assert await attainment(pg) == {"breached": 1}
    early = replied("c-1", opened_at, opened_at + timedelta(seconds=9))
    outcome = await service.apply_case_events([early], datetime.now(UTC))

    assert [clock.case_id for clock in outcome.retracted] == ["c-1"]
    alerts = await outbox(pg)
    (breach_id,) = [ce_id for ce_type, ce_id in alerts if ce_type == SLA_BREACHED]
    assert await retracted_ids(pg) == [breach_id]
    assert [ce_type for ce_type, _ in alerts].count(SLA_CLOCK_FULFILLED) == 2
    assert await attainment(pg) == {"met": 1}
    row = await pg.fetchrow("SELECT fulfilled_at, breached_at FROM sla.clocks")
    assert (row["fulfilled_at"], row["breached_at"]) == (opened_at + timedelta(seconds=9), None)

    # Redelivered, and read again under a new id: nothing changes.
    again = await service.apply_case_events([early], datetime.now(UTC))
    same = replied("c-1", opened_at, opened_at + timedelta(seconds=9))
    await service.apply_case_events([same], datetime.now(UTC))
    assert again.duplicates == 1
    assert await outbox(pg) == alerts
    assert await attainment(pg) == {"met": 1}


def held(case_partitions: int = 1) -> WatermarkHold:
    return WatermarkHold(
        topic=topics.MESSAGES,
        case_partitions=case_partitions,
        lease=timedelta(0),
        max_hold=timedelta(minutes=2),
    )


def watermark(at: datetime) -> IncomingCaseEvent:
    """The router vouching that it processed everything received before `at`."""
    mark = WatermarkData(
        topic=topics.MESSAGES, partitions=1, watermarks={0: at}, caught_up=[0], replica="test"
    )
    return IncomingCaseEvent(str(uuid.uuid4()), ROUTER_WATERMARK, None, at, mark, 0)


async def test_a_late_reply_leaves_the_breach_held_and_an_earlier_reply_cancels_it(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    opened_at = datetime.now(UTC) - timedelta(seconds=60)
    await service.apply_case_events(
        [event(CASE_CREATED, snapshot("c-1", opened_at), at=opened_at)], opened_at, held()
    )
    late = replied("c-1", opened_at, opened_at + timedelta(seconds=12))
    outcome = await service.apply_case_events([late], datetime.now(UTC), held())
    # The router has not vouched for the deadline: an earlier reply may still be on its way.
    assert outcome.fired == []
    assert await service.fire_due_timers(datetime.now(UTC), 10, held()) == []
    early = replied("c-1", opened_at, opened_at + timedelta(seconds=9))
    outcome = await service.apply_case_events([early], datetime.now(UTC), held())

    assert outcome.retracted == []
    assert await pg.fetchval("SELECT count(*) FROM sla.timers WHERE fired_at IS NULL") == 0
    await service.apply_case_events([watermark(datetime.now(UTC))], datetime.now(UTC), held())
    assert await service.fire_due_timers(datetime.now(UTC), 10, held()) == []
    assert SLA_BREACHED not in [ce_type for ce_type, _ in await outbox(pg)]
    assert await attainment(pg) == {"met": 1}


async def test_a_held_breach_of_a_clock_ended_late_fires_once_the_watermark_passes_it(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    opened_at = datetime.now(UTC) - timedelta(seconds=60)
    await service.apply_case_events(
        [event(CASE_CREATED, snapshot("c-1", opened_at), at=opened_at)], opened_at, held()
    )
    late = replied("c-1", opened_at, opened_at + timedelta(seconds=12))
    await service.apply_case_events([late], datetime.now(UTC), held())
    await service.apply_case_events([watermark(datetime.now(UTC))], datetime.now(UTC), held())

    (fired,) = await service.fire_due_timers(datetime.now(UTC), 10, held())

    assert (fired.kind, fired.provisional) == ("breach", False)
    elapsed = await pg.fetchval(
        "SELECT (convert_from(value, 'UTF8')::jsonb->>'elapsed_seconds')::float FROM sla.outbox"
        " WHERE headers->>'ce_type' = $1",
        SLA_BREACHED,
    )
    assert elapsed == pytest.approx(12.0)  # the open time it had when it ended, not until now
    assert await attainment(pg) == {"breached": 1}


# A case absorbed into another


def merged(case: CaseSnapshot, *, at: datetime, **data: object) -> IncomingCaseEvent:
    return event(CASE_MERGED, case, at=at, **data)


async def test_an_absorbed_case_ends_its_clocks_with_no_outcome_and_withdraws_its_breach(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    opened_at = datetime.now(UTC) - timedelta(seconds=60)
    await service.apply_case_events(
        [event(CASE_CREATED, snapshot("c-absorbed", opened_at), at=opened_at)], opened_at
    )
    (breach,) = await service.fire_due_timers(datetime.now(UTC), 10)
    merged_at = datetime.now(UTC)
    absorbed = snapshot("c-absorbed", opened_at, status="resolved", resolved_at=merged_at)
    absorption = merged(absorbed, at=merged_at, merged_into_case_id="c-kept")

    outcome = await service.apply_case_events([absorption], merged_at)
    again = await service.apply_case_events([absorption], merged_at)

    assert [clock.case_id for clock in outcome.retracted] == ["c-absorbed"]
    (breach_id,) = [ce_id for ce_type, ce_id in await outbox(pg) if ce_type == SLA_BREACHED]
    assert await retracted_ids(pg) == [breach_id]
    row = await pg.fetchrow("SELECT status, outcome, breached_at, fulfilled_at FROM sla.clocks")
    assert dict(row) == {
        "status": "absorbed",
        "outcome": None,
        "breached_at": None,
        "fulfilled_at": merged_at,
    }
    assert await attainment(pg) == {}
    assert (again.duplicates, again.retracted) == (1, [])
    assert breach.kind == "breach"


async def test_an_absorbed_case_answered_before_the_merge_leaves_the_attainment_counts(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    opened_at = datetime.now(UTC) - timedelta(seconds=60)
    await service.apply_case_events(
        [
            event(CASE_CREATED, snapshot("c-absorbed", opened_at), at=opened_at),
            replied("c-absorbed", opened_at, opened_at + timedelta(seconds=4)),
        ],
        opened_at,
    )
    assert await attainment(pg) == {"met": 1}
    merged_at = datetime.now(UTC)
    absorbed = snapshot(
        "c-absorbed",
        opened_at,
        status="resolved",
        resolved_at=merged_at,
        first_response_at=opened_at + timedelta(seconds=4),
    )
    # Read twice under two ids (a republish by another router replica): counted off once.
    for _ in range(2):
        await service.apply_case_events(
            [merged(absorbed, at=merged_at, merged_into_case_id="c-kept")], merged_at
        )

    assert await attainment(pg) == {}
    assert await pg.fetchval("SELECT status FROM sla.clocks") == "absorbed"


async def test_the_kept_case_clock_moves_back_to_the_earlier_opening_and_takes_its_reply(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    t0 = datetime.now(UTC) - timedelta(seconds=60)
    # Processed first, the customer's second message opened the kept case at +6 s; the case
    # absorbed held their first message (t0) and the brand's reply to it (+8 s).
    await service.apply_case_events(
        [event(CASE_CREATED, snapshot("c-kept", t0 + timedelta(seconds=6)), at=t0)], t0
    )
    kept = snapshot("c-kept", t0, first_response_at=t0 + timedelta(seconds=8))

    await service.apply_case_events(
        [merged(kept, at=datetime.now(UTC), merged_case_id="c-absorbed")], datetime.now(UTC)
    )

    row = await pg.fetchrow("SELECT status, started_at, fulfilled_at, outcome FROM sla.clocks")
    assert dict(row) == {
        "status": "fulfilled",
        "started_at": t0,
        "fulfilled_at": t0 + timedelta(seconds=8),
        "outcome": "met",
    }
    assert await attainment(pg) == {"met": 1}


async def test_the_kept_case_answered_late_takes_the_absorbed_case_earlier_reply(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    t0 = datetime.now(UTC) - timedelta(seconds=60)
    await service.apply_case_events(
        [
            event(CASE_CREATED, snapshot("c-kept", t0), at=t0),
            replied("c-kept", t0, t0 + timedelta(seconds=15)),
        ],
        datetime.now(UTC),
    )
    assert await attainment(pg) == {"breached": 1}
    kept = snapshot("c-kept", t0, status="assigned", first_response_at=t0 + timedelta(seconds=5))

    outcome = await service.apply_case_events(
        [merged(kept, at=datetime.now(UTC), merged_case_id="c-absorbed")], datetime.now(UTC)
    )

    assert [clock.case_id for clock in outcome.retracted] == ["c-kept"]
    assert await attainment(pg) == {"met": 1}
