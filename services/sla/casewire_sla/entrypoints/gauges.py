"""The SLA gauges read from PostgreSQL every few seconds: open clocks and time to breach,
attainment, and how far the router's watermark lags.

They run as their own task, never in a timer scheduler pass: counting the open clocks reads
every one of them, so its cost grows with the tables, and a breach due meanwhile must not
wait for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from casewire_common.periodic import Periodic

from casewire_sla.adapters.metrics import SlaMetrics
from casewire_sla.clock_service import ClockService
from casewire_sla.domain.holding import WatermarkHold

# Open clocks and time to breach: one aggregate over the open clocks every few seconds.
GAUGES_EVERY_SECONDS = 5.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ClockGauges:
    """Refreshes the gauges every `interval` seconds while the service runs (`task`)."""

    def __init__(
        self,
        service: ClockService,
        metrics: SlaMetrics,
        *,
        hold: Callable[[], WatermarkHold | None] = lambda: None,
        interval: float = GAUGES_EVERY_SECONDS,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._service = service
        self._metrics = metrics
        self._hold = hold
        self._now = now
        self.task = Periodic("sla-clock-gauges", interval, self.refresh)

    async def refresh(self) -> None:
        stats = await self._service.clock_stats()
        self._metrics.set_open_clocks(stats.open)
        self._metrics.set_time_to_breach(stats.earliest_due, self._now())
        self._metrics.set_attainment(await self._service.attainment())
        hold = self._hold()
        if hold is not None:
            low = await self._service.low_watermark(hold)
            self._metrics.set_watermark_delay(low, self._now())
