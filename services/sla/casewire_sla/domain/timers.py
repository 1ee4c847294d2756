"""A clock's timers: the instants its warnings and its breach fire at, one row each.

A running clock has a timer per warning fraction not alerted yet, and one for its breach
(fraction `BREACH`, at its due_at) unless the breach was alerted already. A reply or pause
at the very instant of a timer comes in time: only timers due strictly before a clock stops
fire for it (`adapters.store` selects them so, in the statement that marks them fired).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from casewire_sla.domain.clocks import BREACH, ClockStart, Schedule

# An alert that leaves more than this after its instant is marked `late`.
LATE_AFTER = timedelta(seconds=1)


@dataclass(frozen=True)
class Timer:
    """When a clock alerts: a warning at a fraction of its target, or its breach."""

    kind: str  # "warning" or "breach"
    fraction: float
    fire_at: datetime

    @property
    def is_breach(self) -> bool:
        return self.kind == "breach"


def _timers(warnings: Sequence[tuple[float, datetime]], breach_at: datetime | None) -> list[Timer]:
    timers = [Timer("warning", fraction, at) for fraction, at in warnings]
    if breach_at is not None:
        timers.append(Timer("breach", BREACH, breach_at))
    return timers


def start_timers(start: ClockStart) -> list[Timer]:
    """A starting clock's timers: every warning, and its breach at its due_at."""
    return _timers(start.warnings, start.due_at)


def schedule_timers(schedule: Schedule) -> list[Timer]:
    """The pending timers of a schedule: warnings not alerted yet, and the breach unless it
    was alerted."""
    return _timers(schedule.warnings, schedule.due_at if schedule.breach else None)


def earliest(timers: Sequence[Timer]) -> datetime | None:
    """The instant the first of them fires (None: no timer)."""
    return min((timer.fire_at for timer in timers), default=None)


def fired_late(fire_at: datetime, now: datetime) -> bool:
    """Whether a timer due at `fire_at` that fires `now` fires late (its alert says so)."""
    return now - fire_at > LATE_AFTER
