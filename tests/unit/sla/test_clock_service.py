"""The clock service over a recording store: when due timers fire, only a breach marks its
clock breached, every one of them is marked fired, and each writes its alert."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from casewire_common.events import SLA_BREACHED, SLA_WARNING, EventRecord
from casewire_sla.clock_service import ClockService, DueTimer
from casewire_sla.domain.clock_record import ClockRecord
from casewire_sla.domain.clocks import BREACH
from casewire_sla.domain.policies import parse_policy_set
from casewire_sla.domain.timers import Timer

POLICIES = parse_policy_set(
    "version: 1\ncalendars: [{id: always, always_open: true}]\n"
    "policies: [{id: p, calendar: always, first_response: 1m}]\n"
)
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def clock(clock_id: int) -> ClockRecord:
    return ClockRecord(
        id=clock_id,
        case_id=f"case-{clock_id}",
        clock="first_response",
        policy_id="p",
        calendar_id="always",
        target_seconds=60,
        started_at=NOW - timedelta(minutes=2),
        due_at=NOW - timedelta(minutes=1),
        team="care",
        priority="P2",
    )


class RecordingTimers:
    """The part of a clock transaction that firing due timers uses, recorded (not a whole
    `ClockTransaction`: firing due timers without a watermark hold touches nothing else)."""

    def __init__(self, due: list[DueTimer]) -> None:
        self.due = due
        self.fired: list[int] = []
        self.breached: list[int] = []
        self.outbox: list[tuple[str, EventRecord]] = []

    async def claim_due_timers(self, until: datetime, limit: int) -> list[DueTimer]:
        return [timer for timer in self.due if timer.timer.fire_at <= until][:limit]

    async def mark_fired(self, timer_ids: Sequence[int], now: datetime) -> None:
        self.fired.extend(timer_ids)

    async def mark_breached(self, clock_ids: Sequence[int]) -> None:
        self.breached.extend(clock_ids)

    def add_to_outbox(self, records: Sequence[tuple[str, EventRecord]]) -> None:
        self.outbox.extend(records)


class RecordingStore:
    def __init__(self, tx: RecordingTimers) -> None:
        self.tx = tx

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[RecordingTimers]:
        yield self.tx


async def test_a_fired_breach_marks_its_clock_breached_and_a_fired_warning_does_not() -> None:
    warning = DueTimer(1, Timer("warning", 0.5, NOW - timedelta(seconds=90)), clock(10))
    breach = DueTimer(2, Timer("breach", BREACH, NOW), clock(20))
    tx = RecordingTimers([warning, breach])
    service = ClockService(RecordingStore(tx), POLICIES)

    fired = await service.fire_due_timers(NOW, limit=10)

    assert tx.fired == [1, 2]
    assert tx.breached == [20]
    assert [record.headers["ce_type"] for _, record in tx.outbox] == [
        SLA_WARNING.encode(),
        SLA_BREACHED.encode(),
    ]
    assert [(alert.kind, alert.late) for alert in fired] == [("warning", True), ("breach", False)]


async def test_nothing_due_fires_nothing_and_marks_nothing() -> None:
    later = DueTimer(1, Timer("breach", BREACH, NOW + timedelta(seconds=5)), clock(10))
    tx = RecordingTimers([later])

    service = ClockService(RecordingStore(tx), POLICIES)

    fired = await service.fire_due_timers(NOW, limit=10)

    assert fired == []
    assert (tx.fired, tx.breached, tx.outbox) == ([], [], [])
