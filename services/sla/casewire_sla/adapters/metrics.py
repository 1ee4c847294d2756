"""The service's own Prometheus metrics, beside faststream's and the outbox relay's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from casewire_sla.adapters.alerts import ClockRecord
from casewire_sla.adapters.store import BatchOutcome, FiredAlert
from casewire_sla.domain.policies import CLOCKS

# First responses on social range from seconds to days.
_RESPONSE_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800)


class SlaMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.breaches = Counter(
            "casewire_sla_breaches_total",
            "SLA breaches fired, by clock, team and priority.",
            ["clock", "team", "priority"],
            registry=registry,
        )
        self.warnings = Counter(
            "casewire_sla_warnings_total",
            "SLA warnings fired, by clock, team and priority.",
            ["clock", "team", "priority"],
            registry=registry,
        )
        self.late_alerts = Counter(
            "casewire_sla_late_alerts_total",
            "Warnings and breaches that fired more than 1 s after their instant, by clock.",
            ["clock"],
            registry=registry,
        )
        self.clocks_started = Counter(
            "casewire_sla_clocks_started_total",
            "Clocks started, by clock, team and priority.",
            ["clock", "team", "priority"],
            registry=registry,
        )
        self.open_clocks = Gauge(
            "casewire_sla_open_clocks",
            "Clocks open now, running or paused (breached ones included until they end), by clock.",
            ["clock"],
            registry=registry,
        )
        self.first_response_seconds = Histogram(
            "casewire_sla_first_response_seconds",
            "Wall-clock time from a case's opening to the first brand reply, by team and priority.",
            ["team", "priority"],
            buckets=_RESPONSE_BUCKETS,
            registry=registry,
        )
        self.case_events = Counter(
            "casewire_sla_case_events_total",
            "Case events read, by outcome (applied, duplicate, dead_lettered).",
            ["outcome"],
            registry=registry,
        )

    def record_alerts(self, fired: Iterable[FiredAlert]) -> None:
        for alert in fired:
            counter = self.breaches if alert.kind == "breach" else self.warnings
            counter.labels(alert.clock.clock, alert.clock.team, alert.clock.priority).inc()
            if alert.late:
                self.late_alerts.labels(alert.clock.clock).inc()

    def record_batch(self, outcome: BatchOutcome) -> None:
        self.case_events.labels("applied").inc(outcome.applied)
        self.case_events.labels("duplicate").inc(outcome.duplicates)
        for clock in outcome.started:
            self.clocks_started.labels(clock.clock, clock.team, clock.priority).inc()
        for clock, fulfilled_at in outcome.fulfilled:
            self._observe_fulfilment(clock, fulfilled_at)
        self.record_alerts(outcome.fired)

    def _observe_fulfilment(self, clock: ClockRecord, fulfilled_at: datetime) -> None:
        if clock.clock == "first_response":
            seconds = max(0.0, (fulfilled_at - clock.started_at).total_seconds())
            self.first_response_seconds.labels(clock.team, clock.priority).observe(seconds)

    def set_open_clocks(self, counts: Mapping[str, int]) -> None:
        for clock in CLOCKS:
            self.open_clocks.labels(clock).set(counts.get(clock, 0))
