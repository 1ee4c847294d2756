"""The SLA gauges, read by their own task: open clocks and time to breach, attainment, and the
router's watermark delay, from what the clock service reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from casewire_sla.adapters.metrics import SlaMetrics
from casewire_sla.adapters.store import PostgresClockStore
from casewire_sla.clock_service import ClockService, ClockStats
from casewire_sla.domain.holding import WatermarkHold
from casewire_sla.entrypoints.gauges import ClockGauges
from prometheus_client import CollectorRegistry

from tests.unit.sla.test_scheduler import POLICIES

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HOLD = WatermarkHold(
    topic="messages", case_partitions=1, lease=timedelta(0), max_hold=timedelta(seconds=30)
)


class Reported(ClockService):
    """What the store would report, in memory."""

    def __init__(self) -> None:
        super().__init__(PostgresClockStore("postgresql://unused"), POLICIES)

    async def clock_stats(self) -> ClockStats:
        return ClockStats(
            open={"first_response": 7, "resolution": 2},
            earliest_due={"first_response": NOW + timedelta(seconds=90)},
        )

    async def attainment(self) -> dict[tuple[str, str, str], int]:
        return {("first_response", "p", "met"): 5}

    async def low_watermark(self, hold: WatermarkHold) -> datetime | None:
        return NOW - timedelta(seconds=3)


async def test_refresh_sets_every_gauge_from_the_service() -> None:
    registry = CollectorRegistry()
    gauges = ClockGauges(Reported(), SlaMetrics(registry), hold=lambda: HOLD, now=lambda: NOW)
    await gauges.refresh()

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("casewire_sla_open_clocks", clock="first_response") == 7
    assert value("casewire_sla_open_clocks", clock="next_response") == 0
    assert value("casewire_sla_open_clocks", clock="resolution") == 2
    assert value("casewire_sla_time_to_breach_seconds", clock="first_response") == 90
    assert value("casewire_sla_time_to_breach_seconds", clock="resolution") is None
    assert (
        value("casewire_sla_attainment_clocks", clock="first_response", policy="p", outcome="met")
        == 5
    )
    assert value("casewire_sla_watermark_delay_seconds") == 3


async def test_without_a_hold_the_watermark_delay_is_not_read() -> None:
    registry = CollectorRegistry()
    await ClockGauges(Reported(), SlaMetrics(registry), now=lambda: NOW).refresh()
    assert registry.get_sample_value("casewire_sla_open_clocks", {"clock": "resolution"}) == 2
    assert registry.get_sample_value("casewire_sla_watermark_delay_seconds") == 0  # never set
