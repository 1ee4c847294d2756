"""The timer scheduler sleeps until the next timer, wakes early for a sooner one, and wakes for a
new router watermark when timers wait for one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from casewire_sla.adapters.metrics import SlaMetrics
from casewire_sla.adapters.store import PostgresClockStore
from casewire_sla.clock_service import ClockService, ClockStats, FiredAlert
from casewire_sla.domain.holding import WatermarkHold
from casewire_sla.domain.policies import parse_policy_set
from casewire_sla.entrypoints.gauges import ClockGauges
from casewire_sla.entrypoints.scheduler import TimerScheduler
from prometheus_client import CollectorRegistry

POLICIES = parse_policy_set(
    "version: 1\ncalendars: [{id: always, always_open: true}]\n"
    "policies: [{id: p, calendar: always, first_response: 1m}]\n"
)


class FakeTimers(ClockService):
    """Pending timer instants in memory; records when each pass looked for due ones."""

    def __init__(self) -> None:
        super().__init__(PostgresClockStore("postgresql://unused"), POLICIES)
        self.pending: list[datetime] = []
        self.fired_at: list[tuple[datetime, datetime]] = []
        self.watermark: datetime | None = None  # the router's, as the store would compute it

    async def fire_due_timers(
        self, now: datetime, limit: int, hold: WatermarkHold | None = None
    ) -> list[FiredAlert]:
        bound = now
        if hold is not None:
            confirmed = None if self.watermark is None else min(now, self.watermark)
            bound = max(confirmed or now - hold.max_hold, now - hold.max_hold)
        due = [at for at in self.pending if at <= bound]
        self.pending = [at for at in self.pending if at > bound]
        self.fired_at.extend((at, now) for at in due)
        return []  # alerts themselves are the store's business; only timing matters here

    async def attainment(self) -> dict[tuple[str, str, str], int]:
        return {}

    async def low_watermark(self, hold: WatermarkHold) -> datetime | None:
        return self.watermark

    async def next_fire_at(self) -> datetime | None:
        return min(self.pending, default=None)

    async def clock_stats(self) -> ClockStats:
        return ClockStats(open={}, earliest_due={})


async def test_scheduler_wakes_early_for_a_timer_sooner_than_its_planned_wake() -> None:
    store = FakeTimers()
    scheduler = TimerScheduler(store, SlaMetrics(CollectorRegistry()), max_sleep=30.0)
    await scheduler.start()
    try:
        await asyncio.sleep(0.05)  # asleep now, planning to look again in 30 s
        fire_at = datetime.now(UTC) + timedelta(milliseconds=200)
        store.pending.append(fire_at)
        scheduler.timer_added(fire_at)
        await asyncio.sleep(0.6)
    finally:
        await scheduler.stop()
    assert len(store.fired_at) == 1
    due, fired = store.fired_at[0]
    assert timedelta(0) <= fired - due < timedelta(milliseconds=100)


async def test_scheduler_sleeps_until_the_earliest_pending_timer_not_a_fixed_poll() -> None:
    store = FakeTimers()
    fire_at = datetime.now(UTC) + timedelta(milliseconds=300)
    store.pending.append(fire_at)
    scheduler = TimerScheduler(store, SlaMetrics(CollectorRegistry()), max_sleep=1.0)
    await scheduler.start()
    try:
        await asyncio.sleep(0.6)
    finally:
        await scheduler.stop()
    assert len(store.fired_at) == 1
    due, fired = store.fired_at[0]
    assert timedelta(0) <= fired - due < timedelta(milliseconds=100)


HOLD = WatermarkHold(
    topic="messages", case_partitions=1, lease=timedelta(0), max_hold=timedelta(seconds=30)
)


async def test_a_timer_held_for_the_watermark_fires_when_a_new_watermark_passes_it() -> None:
    store = FakeTimers()
    fire_at = datetime.now(UTC) + timedelta(milliseconds=100)
    store.pending.append(fire_at)
    store.watermark = fire_at - timedelta(seconds=1)  # the router is behind
    scheduler = TimerScheduler(
        store, SlaMetrics(CollectorRegistry()), max_sleep=30.0, hold=lambda: HOLD
    )
    await scheduler.start()
    try:
        await asyncio.sleep(0.4)
        assert store.fired_at == []  # due, but held
        store.watermark = datetime.now(UTC)
        scheduler.watermark_advanced()
        await asyncio.sleep(0.1)
    finally:
        await scheduler.stop()
    assert [due for due, _ in store.fired_at] == [fire_at]


async def test_a_held_timer_fires_at_the_latest_max_hold_after_its_instant() -> None:
    store = FakeTimers()
    fire_at = datetime.now(UTC)
    store.pending.append(fire_at)
    hold = WatermarkHold(
        topic="messages",
        case_partitions=1,
        lease=timedelta(0),
        max_hold=timedelta(milliseconds=300),
    )
    scheduler = TimerScheduler(
        store, SlaMetrics(CollectorRegistry()), max_sleep=30.0, hold=lambda: hold
    )
    await scheduler.start()
    try:
        await asyncio.sleep(0.6)  # no watermark ever comes
    finally:
        await scheduler.stop()
    ((due, fired),) = store.fired_at
    assert timedelta(milliseconds=300) <= fired - due < timedelta(milliseconds=400)


class SlowGauges(FakeTimers):
    """Its open-clocks aggregate takes a while, as over a million open clocks."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.stats_read = 0

    async def clock_stats(self) -> ClockStats:
        await asyncio.sleep(self.seconds)
        self.stats_read += 1
        return ClockStats(open={"first_response": 1_000_000}, earliest_due={})


async def test_timers_fire_at_their_instant_while_the_gauges_aggregate_runs() -> None:
    store = SlowGauges(seconds=0.5)
    fire_at = datetime.now(UTC) + timedelta(milliseconds=200)
    store.pending.append(fire_at)
    metrics = SlaMetrics(CollectorRegistry())
    scheduler = TimerScheduler(store, metrics, max_sleep=1.0)
    gauges = ClockGauges(store, metrics, interval=0.05)
    gauges.task.start()
    await scheduler.start()
    try:
        await asyncio.sleep(0.7)
    finally:
        await scheduler.stop()
        await gauges.task.stop()
    assert store.stats_read >= 1  # the aggregate ran meanwhile...
    ((due, fired),) = store.fired_at  # ...and the timer did not wait for it
    assert timedelta(0) <= fired - due < timedelta(milliseconds=100)
