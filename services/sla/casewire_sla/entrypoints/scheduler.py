"""Fires warnings and breaches at their instant: event time, not a fixed poll.

The scheduler sleeps until the earliest pending timer (at most `max_sleep` seconds, so that
timers written by other replicas are seen), and wakes early when this process writes a
sooner one. Due timers are claimed with `FOR UPDATE SKIP LOCKED` and marked fired in the
transaction that writes their alerts to the outbox: replicas never emit an alert twice.

With a `WatermarkHold`, a due timer also waits for the router's low watermark to pass its
instant (a reply sent in time may still be on its way); the scheduler then wakes when a new
watermark is read, or when the longest hold is over.

A pass does only that: its queries find due timers by index, whatever the number of open
clocks. The gauges that aggregate over every open clock are read by their own task
(`entrypoints.gauges`): in the pass, their scan made breaches late in proportion to the
tables (breach lateness p99 0.2 s at 1,000,000 open clocks, 0.02 s without).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from casewire_common.periodic import BackgroundTask

from casewire_sla.adapters.metrics import SlaMetrics
from casewire_sla.clock_service import ClockService
from casewire_sla.domain.holding import WatermarkHold

log = structlog.get_logger(__name__)

# When the earliest timer is already due but was claimed by another replica, look again soon
# rather than spin.
_RETRY_CLAIMED_SECONDS = 0.05


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TimerScheduler:
    def __init__(
        self,
        service: ClockService,
        metrics: SlaMetrics,
        *,
        max_sleep: float = 1.0,
        batch_size: int = 500,
        hold: Callable[[], WatermarkHold | None] = lambda: None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._service = service
        self._metrics = metrics
        self._max_sleep = max_sleep
        self._batch_size = batch_size
        self._now = now
        self._hold = hold
        self._holding = False
        self._wakeup = asyncio.Event()
        self._planned: datetime | None = None
        self._task = BackgroundTask("sla-timer-scheduler", self._run)

    def timer_added(self, fire_at: datetime) -> None:
        """A timer was committed by this process: wake up if it is due before the planned wake."""
        if self._planned is None or fire_at < self._planned:
            self._wakeup.set()

    def watermark_advanced(self) -> None:
        """A new router watermark was recorded: look again if timers wait for one."""
        if self._holding:
            self._wakeup.set()

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def fire_due(self) -> int:
        """Fire every timer due now, in batches; returns how many fired."""
        total = 0
        hold = self._hold()
        while True:
            fired = await self._service.fire_due_timers(self._now(), self._batch_size, hold)
            self._metrics.record_alerts(fired)
            total += len(fired)
            if len(fired) < self._batch_size:
                return total

    async def _run(self) -> None:
        while True:
            # Cleared before looking, so a timer added while we look still wakes the sleep.
            self._wakeup.clear()
            self._planned = None
            looked_at = self._now()
            try:
                fired = await self.fire_due()
                next_at = await self._service.next_fire_at()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer scheduler pass failed; retrying")
                fired, next_at = 0, None
            now = self._now()
            self._holding = False
            hold = self._hold()
            if next_at is None:
                delay = self._max_sleep
            elif next_at <= now and (fired or next_at > looked_at):
                delay = 0.0  # more may be due, or it fell due after the pass looked
            elif next_at <= now and hold is not None:
                # Held for the watermark (or claimed by another replica): a new watermark
                # wakes us; else look again when the longest hold is over.
                self._holding = True
                released = (next_at + hold.max_hold - now).total_seconds()
                delay = min(self._max_sleep, max(_RETRY_CLAIMED_SECONDS, released))
            elif next_at <= now:
                delay = _RETRY_CLAIMED_SECONDS
            else:
                delay = min(self._max_sleep, (next_at - now).total_seconds())
            self._planned = now + timedelta(seconds=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)
