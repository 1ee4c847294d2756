"""due_at against a brute-force oracle that walks the calendar minute by minute.

The oracle knows nothing of intervals or daylight-saving rules: for every UTC minute of two
years it asks the time-zone database what the local wall clock reads, and calls the minute
open when that local day is no holiday and the reading falls inside one of the day's
opening intervals. A deadline is then the end of the target-th open minute after the start.

Shift boundaries avoid the repeated hour of an autumn change (where a wall-clock reading
happens twice, so "open at 01:30" has two meanings); the all-day Sunday and the night shift
cover both the repeated and the skipped hour whole.
"""

from __future__ import annotations

import bisect
import itertools
import random
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays as holiday_tables
import pytest
from casewire_sla.domain.calendars import Calendar, due_at

WINDOW_START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW_MINUTES = 2 * 365 * 24 * 60
# Starts fall early enough that every deadline lands inside the walked window.
LAST_START_MINUTE = WINDOW_MINUTES - 60 * 24 * 60
CASES_PER_CALENDAR = 800

CALENDARS: dict[str, dict[str, object]] = {
    "athens-split-shifts": {
        "timezone": "Europe/Athens",
        "hours": {"mon-fri": ["09:00-13:00", "14:00-18:00"], "sat": ["10:00-14:00"]},
        "holidays": {"country": "GR", "dates": ["2026-12-24", "2027-12-24"]},
    },
    "athens-all-sunday-and-nights": {
        "timezone": "Europe/Athens",
        "hours": {"sun": ["00:00-24:00"], "mon-fri": ["00:00-06:00", "20:00-24:00"]},
    },
    "new-york": {
        "timezone": "America/New_York",
        "hours": {"mon-fri": ["08:00-12:00", "13:00-17:30"], "sun": ["00:00-06:00"]},
        "holidays": {"country": "US", "subdiv": "NY"},
    },
    # Boundaries inside the hour that is lived twice when the clocks go back (03:00-04:00 in
    # Athens, 01:00-02:00 in New York): open whenever the wall clock reads inside a shift.
    "athens-boundaries-in-the-repeated-hour": {
        "timezone": "Europe/Athens",
        "hours": {"sun": ["00:00-03:30", "03:30-03:45", "03:50-05:00"], "wed": ["09:00-17:00"]},
    },
    "new-york-boundaries-in-the-repeated-hour": {
        "timezone": "America/New_York",
        "hours": {"mon-sun": ["00:00-01:30", "01:30-01:40", "01:45-02:30", "22:00-24:00"]},
    },
    "bangkok": {
        "timezone": "Asia/Bangkok",
        "hours": {"mon-sat": ["08:30-17:30"]},
        "holidays": {"country": "TH"},
    },
    "riyadh-sun-thu": {
        "timezone": "Asia/Riyadh",
        "hours": {"sun-thu": ["08:00-12:00", "13:00-16:00"], "sat": ["18:00-22:00"]},
        "holidays": {"country": "SA", "dates": ["2026-09-23"]},
    },
}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _days(spec: str) -> list[int]:
    """Weekday numbers of `mon-fri`, `sun-thu` (wrapping the week end) or `sat`."""
    first, _, last = spec.partition("-")
    start = _DAYS.index(first)
    days = [start]
    while last and days[-1] != _DAYS.index(last):
        days.append((days[-1] + 1) % 7)
    return days


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


@cache
def oracle(name: str) -> tuple[list[int], list[int]]:
    """Per UTC minute of the window: open (1) or not, and the running count of open minutes."""
    spec = CALENDARS[name]
    zone = ZoneInfo(str(spec["timezone"]))
    hours: dict[str, list[str]] = spec["hours"]  # type: ignore[assignment]
    week: dict[int, list[tuple[int, int]]] = {}
    for days, spans in hours.items():
        for weekday in _days(days):
            week[weekday] = [(_minutes(s[:5]), _minutes(s[6:])) for s in spans]
    holiday_spec: dict[str, object] = spec.get("holidays", {})  # type: ignore[assignment]
    listed = {date.fromisoformat(str(d)) for d in holiday_spec.get("dates", [])}  # type: ignore[attr-defined]
    country = holiday_spec.get("country")
    table = (
        holiday_tables.country_holidays(str(country), subdiv=holiday_spec.get("subdiv"))  # type: ignore[arg-type]
        if country
        else {}
    )
    start = int(WINDOW_START.timestamp())
    open_minutes = []
    for minute in range(WINDOW_MINUTES):
        local = datetime.fromtimestamp(start + minute * 60, zone)
        day = local.date()
        reading = local.hour * 60 + local.minute
        is_open = (
            day not in listed
            and day not in table
            and any(opens <= reading < closes for opens, closes in week.get(day.weekday(), []))
        )
        open_minutes.append(int(is_open))
    return open_minutes, [0, *itertools.accumulate(open_minutes)]


def oracle_due(name: str, start_minute: int, target_minutes: int) -> datetime:
    _, counted = oracle(name)
    end = bisect.bisect_left(counted, counted[start_minute] + target_minutes)
    return WINDOW_START + timedelta(minutes=end)


def calendar(name: str) -> Calendar:
    return Calendar.model_validate({"id": name, **CALENDARS[name]})


def daylight_saving_changes(zone: ZoneInfo) -> list[int]:
    """Window minutes at which the zone's UTC offset changes."""
    changes, previous = [], None
    for hour in range(WINDOW_MINUTES // 60):
        offset = (WINDOW_START + timedelta(hours=hour)).astimezone(zone).utcoffset()
        if previous is not None and offset != previous:
            changes.append(hour * 60)
        previous = offset
    return changes


def random_starts(name: str, rng: random.Random) -> list[int]:
    """Starts spread over the window, a third of them within days of an offset change."""
    changes = daylight_saving_changes(ZoneInfo(str(CALENDARS[name]["timezone"])))
    starts = []
    for _ in range(CASES_PER_CALENDAR):
        if changes and rng.random() < 1 / 3:
            near = rng.choice(changes) + rng.randint(-3 * 24 * 60, 24 * 60)
            starts.append(min(max(near, 0), LAST_START_MINUTE))
        else:
            starts.append(rng.randrange(LAST_START_MINUTE))
    return starts


@pytest.mark.parametrize("name", sorted(CALENDARS))
def test_due_at_equals_the_minute_by_minute_oracle_for_random_openings(name: str) -> None:
    rng = random.Random(f"sla-oracle-{name}")
    subject = calendar(name)
    for start_minute in random_starts(name, rng):
        target = rng.choice([1, 15, 60, 61, 240, 479, 480, 1440, 2 * 1440, 3 * 1440])
        start = WINDOW_START + timedelta(minutes=start_minute)
        expected = oracle_due(name, start_minute, target)
        assert due_at(subject, start, timedelta(minutes=target)) == expected, (start, target)


@pytest.mark.parametrize("name", sorted(CALENDARS))
def test_target_that_ends_exactly_at_closing_time_is_due_at_closing_not_next_opening(
    name: str,
) -> None:
    open_minutes, counted = oracle(name)
    closings = [
        minute
        for minute in range(1, LAST_START_MINUTE)
        if open_minutes[minute - 1] and not open_minutes[minute]
    ]
    rng = random.Random(f"sla-closing-{name}")
    subject = calendar(name)
    for _ in range(CASES_PER_CALENDAR // 4):
        closing = rng.choice(closings[1:])
        start_minute = rng.randrange(max(0, closing - 5 * 24 * 60), closing)
        target = counted[closing] - counted[start_minute]
        if target == 0:  # nothing open between them: it would be due at the start
            continue
        start = WINDOW_START + timedelta(minutes=start_minute)
        due = due_at(subject, start, timedelta(minutes=target))
        assert due == WINDOW_START + timedelta(minutes=closing), (start, target)


def test_week_range_that_wraps_the_week_end_opens_sunday_to_thursday() -> None:
    riyadh = calendar("riyadh-sun-thu")
    # 2026-02-01 is a Sunday: open Sunday to Thursday, closed Friday, Saturday evening only.
    opened = [bool(riyadh.open_intervals(date(2026, 2, 1) + timedelta(days=n))) for n in range(7)]
    assert opened == [True, True, True, True, True, False, True]
    assert len(riyadh.open_intervals(date(2026, 2, 7))) == 1
