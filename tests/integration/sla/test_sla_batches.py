"""A batch of case events of several cases, interleaved, leaves the clocks, timers and alerts
that the same events applied one per batch leave, on the real PostgreSQL: the batch reads the
clocks of the cases it has not changed yet together, and a case's later events read again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from casewire_common.events import (
    CASE_ASSIGNED,
    CASE_CREATED,
    CASE_RESPONDED,
    CASE_STATUS_CHANGED,
)
from casewire_sla.adapters.store import PostgresClockStore
from casewire_sla.clock_service import ClockService, IncomingCaseEvent
from casewire_sla.domain.policies import parse_policy_set

from tests.integration.sla.conftest import event, policy_text
from tests.unit.sla.factories import snapshot

pytestmark = pytest.mark.integration

POLICIES = parse_policy_set(policy_text("10s", "[0.5]"))


def events(prefix: str, t0: datetime) -> list[IncomingCaseEvent]:
    """Three cases' events, interleaved as partitions deliver them: one answered in time, one
    answered after its warning and its breach, one left open (waiting on the customer, which
    this policy does not pause for)."""

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    def case(name: str, opened: float, **changes: object) -> object:
        return snapshot(f"{prefix}-{name}", at(opened), **changes)

    return [
        event(CASE_CREATED, case("a", 0), at=at(0)),
        event(CASE_CREATED, case("b", 1), at=at(1)),
        event(CASE_ASSIGNED, case("a", 0, status="assigned", assignee="amal"), at=at(2)),
        event(CASE_CREATED, case("c", 2), at=at(2)),
        event(
            CASE_RESPONDED,
            case("a", 0, status="assigned", assignee="amal", first_response_at=at(4)),
            at=at(4),
            first_response=True,
        ),
        event(
            CASE_STATUS_CHANGED, case("c", 2, status="pending"), at=at(5), previous_status="queued"
        ),
        event(
            CASE_RESPONDED,
            case("b", 1, status="assigned", first_response_at=at(14)),
            at=at(14),
            first_response=True,
        ),
    ]


async def state(pg: asyncpg.Connection, prefix: str) -> object:
    clocks = await pg.fetch(
        "SELECT substr(case_id, length($1) + 1) AS name, clock, status, started_at, due_at,"
        " fulfilled_at, outcome, breached_at, pause_starts, pause_ends FROM sla.clocks"
        " WHERE case_id LIKE $1 || '%' ORDER BY name, clock",
        prefix,
    )
    timers = await pg.fetch(
        "SELECT substr(c.case_id, length($1) + 1) AS name, c.clock, t.kind, t.fraction,"
        " t.fire_at, t.fired_at IS NOT NULL AS fired FROM sla.timers t"
        " JOIN sla.clocks c ON c.id = t.clock_id WHERE c.case_id LIKE $1 || '%'"
        " ORDER BY name, c.clock, t.fire_at, t.kind",
        prefix,
    )
    alerts = await pg.fetch(
        "SELECT headers->>'ce_type' AS type, substr(key, length($1) + 1) AS name"
        " FROM sla.outbox WHERE key LIKE $1 || '%' ORDER BY type, name",
        prefix,
    )
    return (
        [dict(row) for row in clocks],
        [dict(row) for row in timers],
        [dict(row) for row in alerts],
    )


async def test_a_batch_of_interleaved_cases_ends_as_the_same_events_one_by_one(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    now = t0 + timedelta(seconds=20)  # every timer due by now: late alerts fire as they would

    await service.apply_case_events(events("batch", t0), now)
    for one in events("single", t0):
        await service.apply_case_events([one], now)

    batched, single = await state(pg, "batch"), await state(pg, "single")
    assert batched == single
    clocks, timers, alerts = batched
    assert {(row["name"], row["status"]) for row in clocks} >= {
        ("-a", "fulfilled"),
        ("-b", "fulfilled"),
        ("-c", "running"),
    }
    # b was answered after its warning and breach instants: both fired, late, and b's clock
    # counts as breached; a's and c's timers never fired.
    assert {(row["type"], row["name"]) for row in alerts} >= {
        ("casewire.sla.warning", "-b"),
        ("casewire.sla.breached", "-b"),
    }
    assert not [row for row in timers if row["fired"] and row["name"] != "-b"]
