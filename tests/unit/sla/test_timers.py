"""A clock's timers: every warning and the breach when it starts; after a pause, only what was
not alerted yet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from casewire_sla.domain.clocks import BREACH, ClockStart, Schedule, target_seconds
from casewire_sla.domain.timers import Timer, earliest, schedule_timers, start_timers

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_a_starting_clock_has_each_warning_and_its_breach_at_its_due_at() -> None:
    start = ClockStart(
        case_id="c",
        clock="first_response",
        policy_id="p",
        calendar_id="always",
        target=timedelta(minutes=10),
        started_at=T0,
        due_at=T0 + timedelta(minutes=10),
        warnings=((0.5, T0 + timedelta(minutes=5)),),
        team="care",
        priority="P2",
    )

    assert start_timers(start) == [
        Timer("warning", 0.5, T0 + timedelta(minutes=5)),
        Timer("breach", BREACH, T0 + timedelta(minutes=10)),
    ]


def test_a_schedule_whose_breach_was_alerted_has_no_breach_timer() -> None:
    schedule = Schedule(T0, ((0.8, T0 - timedelta(minutes=1)),), breach=False)

    timers = schedule_timers(schedule)

    assert [timer.is_breach for timer in timers] == [False]
    assert earliest(timers) == T0 - timedelta(minutes=1)


def test_no_timers_have_no_earliest_instant() -> None:
    assert earliest([]) is None


def test_a_target_is_kept_in_whole_seconds_and_never_zero() -> None:
    assert target_seconds(timedelta(seconds=90.4)) == 90
    assert target_seconds(timedelta(milliseconds=200)) == 1
