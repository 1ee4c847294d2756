"""When an alert may fire: event time, whatever the lag (DESIGN.md, "Event time and late data").

A warning or breach is due at its instant, but a reply sent before that instant may still be on
its way through a lagging or stopped router. The router vouches, per partition of its input,
up to which instant it has processed everything (its low watermark); an alert fires once the
lowest watermark (plus a lease covering the marks' own trip) has passed its instant, or, at
the latest, `max_hold` after it, then marked provisional. A breach whose clock ends by a reply
sent no later than the breach's instant is withdrawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class WatermarkHold:
    """How alerts wait for the router's watermark."""

    topic: str  # the router's input topic, whose partitions the watermarks are about
    case_partitions: int  # partitions of the case-events topic (each carries every mark)
    lease: timedelta  # how far past its last mark a router is trusted to have processed
    max_hold: timedelta  # the longest an alert waits; then it fires, provisional


@dataclass(frozen=True)
class WatermarkCoverage:
    """The recorded watermarks of one input topic: how many (case-events partition, input
    partition) pairs have one, how many partitions the input has, and the lowest of them."""

    pairs: int
    partitions: int | None
    lowest: datetime | None


def low_watermark(coverage: WatermarkCoverage, hold: WatermarkHold) -> datetime | None:
    """The instant before which everything is processed, once every pair has a watermark; a
    partition nobody vouched for yet (or a case-events partition not read yet) holds it back."""
    if coverage.partitions is None or coverage.lowest is None or hold.case_partitions <= 0:
        return None
    if coverage.pairs < hold.case_partitions * coverage.partitions:
        return None
    return coverage.lowest


@dataclass(frozen=True)
class AlertBound:
    """Timers due by `fires_until` fire now; those due after `confirmed` (all of them when it
    is None) fire provisional: the watermark has not passed them, max_hold has."""

    fires_until: datetime
    confirmed: datetime | None

    def provisional(self, fire_at: datetime) -> bool:
        return self.confirmed is None or fire_at > self.confirmed


def alert_bound(now: datetime, hold: WatermarkHold | None, low: datetime | None) -> AlertBound:
    """Up to which instant timers fire now; without a hold, up to `now`."""
    if hold is None:
        return AlertBound(now, now)
    confirmed = None if low is None else min(now, low + hold.lease)
    forced = now - hold.max_hold
    return AlertBound(forced if confirmed is None else max(confirmed, forced), confirmed)


def retracts_breach(fulfilled_at: datetime, breached_at: datetime | None) -> bool:
    """Whether a reply at `fulfilled_at` withdraws the breach fired for `breached_at`."""
    return breached_at is not None and fulfilled_at <= breached_at
