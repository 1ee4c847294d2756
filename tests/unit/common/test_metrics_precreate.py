"""`casewire_common.metrics.precreate`: label sets known in advance exist at 0 from the start."""

from __future__ import annotations

from casewire_common.metrics import new_registry, precreate
from prometheus_client import Counter, Histogram


def test_precreated_label_sets_are_exported_at_0_before_their_first_event() -> None:
    registry = new_registry()
    counter = Counter("casewire_x_total", "", ["topic", "reason"], registry=registry)
    histogram = Histogram("casewire_y_seconds", "", ["clock"], registry=registry, buckets=(1,))
    precreate(counter, [("a", "bad"), {"topic": "b", "reason": "worse"}])
    precreate(histogram, [("first_response",)])
    sample = registry.get_sample_value
    assert sample("casewire_x_total", {"topic": "a", "reason": "bad"}) == 0
    assert sample("casewire_x_total", {"topic": "b", "reason": "worse"}) == 0
    assert sample("casewire_y_seconds_count", {"clock": "first_response"}) == 0
    counter.labels("a", "bad").inc()
    precreate(counter, [("a", "bad")])  # again (a reload): the count stays
    assert sample("casewire_x_total", {"topic": "a", "reason": "bad"}) == 1
