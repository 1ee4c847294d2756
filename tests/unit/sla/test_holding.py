"""When an alert may fire: the router's watermark, its lease, and max_hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from casewire_sla.domain.holding import (
    WatermarkCoverage,
    WatermarkHold,
    alert_bound,
    low_watermark,
    retracts_breach,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HOLD = WatermarkHold(
    topic="casewire.messages.v1",
    case_partitions=3,
    lease=timedelta(seconds=1),
    max_hold=timedelta(minutes=2),
)


def test_the_low_watermark_waits_until_every_pair_of_partitions_has_one() -> None:
    low = NOW - timedelta(seconds=5)
    assert low_watermark(WatermarkCoverage(6, 2, low), HOLD) == low  # 3 case x 2 input
    assert low_watermark(WatermarkCoverage(5, 2, low), HOLD) is None  # one pair missing
    assert low_watermark(WatermarkCoverage(0, None, None), HOLD) is None  # none yet
    no_metadata = WatermarkHold("t", 0, timedelta(0), timedelta(0))
    assert low_watermark(WatermarkCoverage(6, 2, low), no_metadata) is None


def test_without_a_hold_everything_due_fires_and_nothing_is_provisional() -> None:
    bound = alert_bound(NOW, None, None)
    assert bound.fires_until == NOW
    assert not bound.provisional(NOW)


def test_a_router_keeping_up_lets_alerts_fire_at_their_instant() -> None:
    # Its last mark is 0.3 s old: with the 1 s lease, everything due by now fires, confirmed.
    bound = alert_bound(NOW, HOLD, NOW - timedelta(milliseconds=300))
    assert bound.fires_until == NOW
    assert not bound.provisional(NOW)


def test_a_lagging_router_holds_what_is_due_after_its_watermark_plus_the_lease() -> None:
    low = NOW - timedelta(seconds=30)
    bound = alert_bound(NOW, HOLD, low)
    assert bound.fires_until == low + HOLD.lease
    assert not bound.provisional(low + HOLD.lease)


def test_after_max_hold_an_alert_fires_provisional() -> None:
    low = NOW - timedelta(minutes=10)
    bound = alert_bound(NOW, HOLD, low)
    assert bound.fires_until == NOW - HOLD.max_hold
    assert bound.provisional(NOW - HOLD.max_hold)
    assert not bound.provisional(low)  # what the watermark passed is confirmed
    unknown = alert_bound(NOW, HOLD, None)  # no watermark at all: all provisional
    assert unknown.fires_until == NOW - HOLD.max_hold
    assert unknown.provisional(NOW - timedelta(hours=1))


def test_a_reply_sent_by_the_breach_instant_retracts_it_and_a_later_one_does_not() -> None:
    assert retracts_breach(NOW, NOW)
    assert retracts_breach(NOW - timedelta(seconds=1), NOW)
    assert not retracts_breach(NOW + timedelta(microseconds=1), NOW)
    assert not retracts_breach(NOW, None)
