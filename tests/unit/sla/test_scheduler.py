"""The timer scheduler sleeps until the next timer, and wakes early for a sooner one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from casewire_sla.adapters.metrics import SlaMetrics
from casewire_sla.adapters.scheduler import TimerScheduler
from casewire_sla.adapters.store import ClockStats, FiredAlert, SlaStore
from casewire_sla.domain.policies import PolicySet, parse_policy_set
from prometheus_client import CollectorRegistry

POLICIES = parse_policy_set(
    "version: 1\ncalendars: [{id: always, always_open: true}]\n"
    "policies: [{id: p, calendar: always, first_response: 1m}]\n"
)


class FakeTimers(SlaStore):
    """Pending timer instants in memory; records when each pass looked for due ones."""

    def __init__(self) -> None:
        super().__init__("postgresql://unused")
        self.pending: list[datetime] = []
        self.fired_at: list[tuple[datetime, datetime]] = []

    async def fire_due_timers(
        self, policies: PolicySet, now: datetime, limit: int
    ) -> list[FiredAlert]:
        due = [at for at in self.pending if at <= now]
        self.pending = [at for at in self.pending if at > now]
        self.fired_at.extend((at, now) for at in due)
        return []  # alerts themselves are the store's business; only timing matters here

    async def next_fire_at(self) -> datetime | None:
        return min(self.pending, default=None)

    async def clock_stats(self) -> ClockStats:
        return ClockStats(open={}, earliest_due={})


async def test_scheduler_wakes_early_for_a_timer_sooner_than_its_planned_wake() -> None:
    store = FakeTimers()
    scheduler = TimerScheduler(store, POLICIES, SlaMetrics(CollectorRegistry()), max_sleep=30.0)
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
    scheduler = TimerScheduler(store, POLICIES, SlaMetrics(CollectorRegistry()), max_sleep=1.0)
    await scheduler.start()
    try:
        await asyncio.sleep(0.6)
    finally:
        await scheduler.stop()
    assert len(store.fired_at) == 1
    due, fired = store.fired_at[0]
    assert timedelta(0) <= fired - due < timedelta(milliseconds=100)
