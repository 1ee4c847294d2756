"""Deadline arithmetic: due_at and warning instants on 24/7 and business-hours calendars."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from casewire_sla.domain.calendars import (
    Calendar,
    Pause,
    due_at,
    due_with_pauses,
    elapsed_with_pauses,
    open_time_between,
    warning_instants,
)

ATHENS = ZoneInfo("Europe/Athens")


def athens(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ATHENS)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


ALWAYS = Calendar(id="always", always_open=True)
OFFICE = Calendar.model_validate(
    {
        "id": "athens-office",
        "timezone": "Europe/Athens",
        "hours": {"mon-fri": ["09:00-13:00", "14:00-18:00"], "sat": ["10:00-14:00"]},
        "holidays": {"country": "GR"},
    }
)
ROUND_THE_CLOCK_ATHENS = Calendar.model_validate(
    {"id": "athens-24h", "timezone": "Europe/Athens", "hours": {"mon-sun": ["00:00-24:00"]}}
)


def test_always_open_due_at_is_start_plus_target() -> None:
    start = utc(2026, 1, 3, 23, 50)  # a Saturday night: nothing closes on a 24/7 calendar
    assert due_at(ALWAYS, start, timedelta(minutes=15)) == utc(2026, 1, 4, 0, 5)


def test_always_open_due_at_accepts_seconds_targets_and_any_offset() -> None:
    start = athens(2026, 1, 5, 12, 0)
    assert due_at(ALWAYS, start, timedelta(seconds=30)) == utc(2026, 1, 5, 10, 0, 30)


def test_always_open_warnings_fire_at_each_fraction_of_the_target() -> None:
    start = utc(2026, 1, 5, 10, 0)
    assert warning_instants(ALWAYS, start, timedelta(minutes=15), [0.5, 0.8]) == [
        (0.5, utc(2026, 1, 5, 10, 7, 30)),
        (0.8, utc(2026, 1, 5, 10, 12)),
    ]


def test_business_hours_due_inside_the_same_shift() -> None:
    assert due_at(OFFICE, athens(2026, 1, 12, 10, 0), timedelta(hours=1)) == athens(
        2026, 1, 12, 11, 0
    )


def test_business_hours_clock_stops_over_the_lunch_break() -> None:
    assert due_at(OFFICE, athens(2026, 1, 12, 12, 30), timedelta(hours=1)) == athens(
        2026, 1, 12, 14, 30
    )


def test_start_outside_opening_hours_waits_for_the_next_opening() -> None:
    assert due_at(OFFICE, athens(2026, 1, 12, 20, 0), timedelta(hours=1)) == athens(
        2026, 1, 13, 10, 0
    )


def test_clock_stops_over_the_weekend_and_resumes_on_monday() -> None:
    # Saturday 13:30: half an hour left on Saturday, Sunday closed, Monday 09:00 onwards.
    assert due_at(OFFICE, athens(2026, 1, 17, 13, 30), timedelta(hours=1)) == athens(
        2026, 1, 19, 9, 30
    )


def test_country_holiday_closes_the_whole_local_day() -> None:
    # Tuesday 6 January 2026 is Epiphany, a public holiday in Greece.
    assert OFFICE.is_holiday(date(2026, 1, 6))
    assert due_at(OFFICE, athens(2026, 1, 5, 17, 30), timedelta(hours=1)) == athens(
        2026, 1, 7, 9, 30
    )


def test_listed_holiday_date_closes_the_whole_local_day() -> None:
    calendar = Calendar.model_validate(
        {
            "id": "desk",
            "timezone": "Europe/Athens",
            "hours": {"mon-fri": ["09:00-18:00"]},
            "holidays": {"dates": ["2026-12-24"]},
        }
    )
    assert due_at(calendar, athens(2026, 12, 23, 17, 30), timedelta(hours=1)) == athens(
        2026, 12, 25, 9, 30
    )


def test_opening_hours_follow_local_wall_clock_across_daylight_saving_start() -> None:
    # Friday 27 March 2026 is UTC+2; Monday 30 March is UTC+3 (clocks went forward on the 29th).
    calendar = Calendar.model_validate(
        {"id": "desk", "timezone": "Europe/Athens", "hours": {"mon-fri": ["09:00-18:00"]}}
    )
    due = due_at(calendar, athens(2026, 3, 27, 17, 0), timedelta(hours=2))
    assert due == utc(2026, 3, 30, 7, 0)
    assert due.astimezone(ATHENS).hour == 10


def test_open_time_is_real_elapsed_time_on_the_short_spring_night() -> None:
    # 22:00 local on 28 March + 6 h: the wall clock reads 05:00, 7 wall hours later.
    start = athens(2026, 3, 28, 22, 0)  # 20:00 UTC
    due = due_at(ROUND_THE_CLOCK_ATHENS, start, timedelta(hours=6))
    assert due == utc(2026, 3, 29, 2, 0)
    assert due.astimezone(ATHENS).hour == 5


def test_long_autumn_day_has_twenty_five_open_hours() -> None:
    start = athens(2026, 10, 25, 0, 0)
    end = athens(2026, 10, 26, 0, 0)
    assert open_time_between(ROUND_THE_CLOCK_ATHENS, start, end) == timedelta(hours=25)


def test_closing_time_in_the_repeated_autumn_hour_takes_its_last_pass() -> None:
    calendar = Calendar.model_validate(
        {"id": "night", "timezone": "Europe/Athens", "hours": {"sun": ["00:00-04:00"]}}
    )
    # 03:00-04:00 happens twice on 25 October 2026: the wall clock reads 00:00..04:00 for 5 h.
    assert calendar.open_intervals(date(2026, 10, 25)) == [
        (utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 2, 0))
    ]


def test_a_shift_closing_at_00_00_closes_at_midnight_like_24_00() -> None:
    def evening(close: str) -> Calendar:
        return Calendar.model_validate(
            {"id": "evening", "timezone": "Europe/Athens", "hours": {"mon-fri": [f"18:00-{close}"]}}
        )

    monday = date(2026, 3, 2)
    assert evening("00:00").open_intervals(monday) == evening("24:00").open_intervals(monday)
    assert evening("00:00").open_intervals(monday) == [
        (utc(2026, 3, 2, 16, 0), utc(2026, 3, 2, 22, 0))
    ]


def test_a_split_shift_meeting_in_the_repeated_autumn_hour_counts_that_hour_once_per_pass() -> None:
    split = Calendar.model_validate(
        {
            "id": "split",
            "timezone": "Europe/Athens",
            "hours": {"sun": ["00:00-03:30", "03:30-08:00"]},
        }
    )
    # 25 October 2026: 03:00-04:00 is lived twice; open from local midnight to 08:00 is 9 h.
    assert split.open_intervals(date(2026, 10, 25)) == [
        (utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 6, 0))
    ]


def test_opening_time_skipped_by_the_spring_jump_opens_at_the_jump() -> None:
    calendar = Calendar.model_validate(
        {"id": "night", "timezone": "Europe/Athens", "hours": {"sun": ["03:30-05:00"]}}
    )
    # 03:00 local jumps to 04:00 (01:00 UTC); 03:30 never happens.
    assert calendar.open_intervals(date(2026, 3, 29)) == [
        (utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0))
    ]


def test_business_hours_warnings_count_open_time_only() -> None:
    # Half of 1 h from 12:45: 15 min before lunch, 15 min after it.
    assert warning_instants(OFFICE, athens(2026, 1, 12, 12, 45), timedelta(hours=1), [0.5]) == [
        (0.5, athens(2026, 1, 12, 14, 15))
    ]


def test_open_time_between_counts_only_open_hours() -> None:
    # Friday 17:00 to Monday 10:00: 1 h Friday, 4 h Saturday, 1 h Monday.
    elapsed = open_time_between(OFFICE, athens(2026, 1, 16, 17, 0), athens(2026, 1, 19, 10, 0))
    assert elapsed == timedelta(hours=6)


def test_open_time_between_is_zero_when_end_precedes_start() -> None:
    start = utc(2026, 1, 5, 10, 0)
    assert open_time_between(ALWAYS, start, start - timedelta(minutes=5)) == timedelta(0)


def test_due_at_refuses_a_naive_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(OFFICE, datetime(2026, 1, 5, 10, 0), timedelta(hours=1))


def test_due_at_is_inverse_of_open_time_between() -> None:
    start = athens(2026, 4, 3, 16, 20)
    for minutes in (1, 40, 100, 600, 3000):
        target = timedelta(minutes=minutes)
        assert open_time_between(OFFICE, start, due_at(OFFICE, start, target)) == target


def test_pause_moves_due_at_by_the_open_time_it_covered_not_its_wall_time() -> None:
    # Monday 10:00 + 2 h, paused 10:30 to 15:00: 3.5 h of open time paused (lunch excluded).
    start = athens(2026, 1, 12, 10, 0)
    pause = Pause(athens(2026, 1, 12, 10, 30), athens(2026, 1, 12, 15, 0))
    assert due_with_pauses(OFFICE, start, timedelta(hours=2), [pause]) == athens(
        2026, 1, 12, 16, 30
    )


def test_pause_over_closed_hours_moves_nothing() -> None:
    start = athens(2026, 1, 16, 17, 0)  # Friday 17:00, 1 h open, then 4 h on Saturday
    pause = Pause(athens(2026, 1, 16, 18, 30), athens(2026, 1, 17, 9, 0))
    target = timedelta(hours=3)
    assert due_with_pauses(OFFICE, start, target, [pause]) == due_at(OFFICE, start, target)


def test_clock_paused_now_has_no_due_instant() -> None:
    start = athens(2026, 1, 12, 10, 0)
    pause = Pause(athens(2026, 1, 12, 10, 30))
    assert due_with_pauses(OFFICE, start, timedelta(hours=2), [pause]) is None


def test_due_instant_passed_before_a_pause_stays_where_it_was() -> None:
    start = athens(2026, 1, 12, 10, 0)
    pause = Pause(athens(2026, 1, 12, 12, 0), athens(2026, 1, 12, 16, 0))
    assert due_with_pauses(OFFICE, start, timedelta(hours=1), [pause]) == athens(2026, 1, 12, 11, 0)


def test_elapsed_time_leaves_out_every_pause_including_one_still_lasting() -> None:
    start = athens(2026, 1, 12, 9, 0)
    pauses = [
        Pause(athens(2026, 1, 12, 10, 0), athens(2026, 1, 12, 11, 0)),
        Pause(athens(2026, 1, 12, 15, 0)),
    ]
    # 09:00-10:00, 11:00-13:00 and 14:00-15:00 counted: 4 h.
    assert elapsed_with_pauses(OFFICE, start, pauses, athens(2026, 1, 12, 17, 0)) == timedelta(
        hours=4
    )
