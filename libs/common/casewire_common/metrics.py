"""Prometheus helpers: one registry per service, served at /metrics, and label sets created at 0."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

# Histogram buckets of a response or resolution time, in seconds: on social media responses
# range from seconds to days, resolutions to weeks. One set for every service, so that the
# router's and the SLA service's histograms can be read side by side.
RESPONSE_TIME_BUCKETS = (
    30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800,
)  # fmt: skip


def new_registry() -> CollectorRegistry:
    """A service-owned registry (no global default: tests build several apps in one process)."""
    return CollectorRegistry(auto_describe=True)


def precreate(
    metric: Counter | Histogram, label_sets: Iterable[Sequence[str] | Mapping[str, str]]
) -> None:
    """Create the series of each label set at 0 now, before its first event.

    A labelled series otherwise appears with its first event already counted, and `rate()` or
    `increase()` need a sample before it: the first event of each label set after every start
    would be invisible to dashboards and alerts. Call it at start for every label set known in
    advance (code's enums, configuration). Label sets are positional (in the metric's label
    order) or by name. Not for gauges: a gauge at 0 would claim a value nobody measured.
    """
    for labels in label_sets:
        if isinstance(labels, Mapping):
            metric.labels(**labels)
        else:
            metric.labels(*labels)
