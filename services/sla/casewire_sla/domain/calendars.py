"""Calendars and deadline arithmetic: when a clock that counts only open time is due.

A calendar is either always open or open during local wall-clock hours in one time zone,
closed on whole local holiday days. Every function here is pure: instants in, instants out.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_tables
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_INTERVAL = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_MINUTES_PER_DAY = 24 * 60
# A calendar whose holidays close every open day would never be due: stop looking after this.
_SEARCH_DAYS = 3 * 366

# Minutes since local midnight: [open, close), close may be 1440 ("24:00").
Interval = tuple[int, int]


class HolidaySpec(BaseModel):
    """Days on which a business-hours calendar is closed all day."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2 country code")
    subdiv: str | None = Field(default=None, description="ISO 3166-2 subdivision, e.g. a state")
    dates: list[date] = Field(default_factory=list)


class Calendar(BaseModel):
    """When a clock counts: `always_open`, or `hours` in `timezone` minus `holidays`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    always_open: bool = False
    timezone: str | None = None
    hours: dict[str, list[str]] | None = None
    holidays: HolidaySpec | None = None

    _zone: ZoneInfo | None = PrivateAttr(default=None)
    _week: tuple[tuple[Interval, ...], ...] = PrivateAttr(default=())
    _country_holidays: holiday_tables.HolidayBase | None = PrivateAttr(default=None)
    _extra_holidays: frozenset[date] = PrivateAttr(default=frozenset())

    @model_validator(mode="after")
    def _compile(self) -> Self:
        if self.always_open:
            if self.hours is not None or self.holidays is not None:
                raise ValueError("an always_open calendar cannot also have hours or holidays")
            return self
        if self.hours is None:
            raise ValueError("a calendar needs either always_open: true or hours")
        if self.timezone is None:
            raise ValueError("a calendar with hours needs a timezone (e.g. Europe/Athens)")
        try:
            self._zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"timezone {self.timezone!r} is not a known IANA time zone") from error
        self._week = _compile_week(self.hours)
        if self.holidays is not None:
            self._extra_holidays = frozenset(self.holidays.dates)
            if self.holidays.country is not None:
                try:
                    self._country_holidays = holiday_tables.country_holidays(
                        self.holidays.country, subdiv=self.holidays.subdiv
                    )
                except NotImplementedError as error:
                    raise ValueError(f"holidays: {error}") from error
            elif self.holidays.subdiv is not None:
                raise ValueError("holidays: subdiv needs a country")
        return self

    def is_holiday(self, day: date) -> bool:
        """Whether the calendar is closed for the whole local `day`."""
        if day in self._extra_holidays:
            return True
        return self._country_holidays is not None and day in self._country_holidays

    def open_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The UTC instants [open, close) of one local day; empty on a holiday or a closed day."""
        zone = self._zone
        if self.always_open or zone is None:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return [(start, start + timedelta(days=1))]
        if self.is_holiday(day):
            return []
        fall_back = _fall_back_instant(day, zone)
        pieces: list[tuple[datetime, datetime]] = []
        for opens, closes in self._week[day.weekday()]:
            begin = _wall_to_utc(day, opens, zone, last=False)
            end = _wall_to_utc(day, closes, zone, last=True)
            if fall_back is None:
                pieces.append((begin, end))
                continue
            # The clocks go back today: an interval is open whenever the wall clock reads
            # inside it, on the repeated hour's first pass and on its second.
            pieces.append((begin, min(_wall_to_utc(day, closes, zone, last=False), fall_back)))
            pieces.append((max(_wall_to_utc(day, opens, zone, last=True), fall_back), end))
        intervals: list[tuple[datetime, datetime]] = []
        for begin, end in sorted(pieces):
            if end <= begin:  # inside a daylight-saving gap, or not on this pass
                continue
            if intervals and begin <= intervals[-1][1]:  # "00:00-03:00" then "03:00-08:00"
                intervals[-1] = (intervals[-1][0], max(intervals[-1][1], end))
            else:
                intervals.append((begin, end))
        return intervals

    def local_date(self, instant: datetime) -> date:
        zone = self._zone or UTC
        return instant.astimezone(zone).date()


def _compile_week(hours: dict[str, list[str]]) -> tuple[tuple[Interval, ...], ...]:
    week: list[list[Interval] | None] = [None] * 7
    for days_spec, spans in hours.items():
        days = _parse_days(days_spec)
        intervals = sorted(_parse_interval(days_spec, span) for span in spans)
        for earlier, later in itertools.pairwise(intervals):
            if later[0] < earlier[1]:
                raise ValueError(f"hours {days_spec!r}: intervals overlap")
        for day in days:
            if week[day] is not None:
                raise ValueError(f"hours: {DAY_NAMES[day]} is given more than once")
            week[day] = intervals
    if not any(week):
        raise ValueError("hours: the calendar is never open")
    return tuple(tuple(day or ()) for day in week)


def _parse_days(spec: str) -> list[int]:
    days: list[int] = []
    for part in spec.split(","):
        part = part.strip().lower()
        first, dash, last = part.partition("-")
        if first not in DAY_NAMES or (dash and last not in DAY_NAMES):
            raise ValueError(
                f"hours: {spec!r} is not a day or day range (use mon..sun, e.g. mon-fri or sat,sun)"
            )
        start = DAY_NAMES.index(first)
        stop = DAY_NAMES.index(last) if last else start
        length = (stop - start) % 7 + 1  # fri-mon wraps over the weekend
        days.extend((start + offset) % 7 for offset in range(length))
    return days


def _parse_interval(days_spec: str, span: str) -> Interval:
    match = _INTERVAL.match(str(span).strip())
    if match is None:
        raise ValueError(f"hours {days_spec!r}: {span!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    opens, closes = h1 * 60 + m1, h2 * 60 + m2
    if closes == 0:  # "18:00-00:00": closing at midnight, as "18:00-24:00" says too
        closes = _MINUTES_PER_DAY
    if h1 > 23 or m1 > 59 or m2 > 59 or closes > _MINUTES_PER_DAY:
        raise ValueError(f"hours {days_spec!r}: {span!r} is not a valid time of day")
    if closes <= opens:
        raise ValueError(
            f"hours {days_spec!r}: {span!r} closes before it opens (a shift past midnight"
            " is two intervals: until 24:00, and from 00:00 on the next day)"
        )
    return opens, closes


@lru_cache(maxsize=256)
def _fall_back_instant(day: date, zone: ZoneInfo) -> datetime | None:
    """When the clocks go back during the local `day` (the wall clock then repeats what it
    just read), or None on the other days of the year."""
    low = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    next_day = day + timedelta(days=1)
    high = datetime(next_day.year, next_day.month, next_day.day, tzinfo=zone).astimezone(UTC)
    offset_after = high.astimezone(zone).utcoffset()
    if low.astimezone(zone).utcoffset() <= offset_after:  # type: ignore[operator]
        return None
    low_second, high_second = int(low.timestamp()), int(high.timestamp())
    while high_second - low_second > 1:
        middle = (low_second + high_second) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_after:
            high_second = middle
        else:
            low_second = middle
    return datetime.fromtimestamp(high_second, UTC)


def _wall_to_utc(day: date, minutes: int, zone: ZoneInfo, *, last: bool) -> datetime:
    """The instant a local wall clock reads `minutes` past midnight on `day`.

    On a repeated hour (clocks go back) an opening takes the first pass and a closing the
    last; a time skipped when clocks go forward maps to the instant of the jump.
    """
    naive = datetime(day.year, day.month, day.day) + timedelta(minutes=minutes)
    candidate = naive.replace(tzinfo=zone, fold=1 if last else 0).astimezone(UTC)
    if candidate.astimezone(zone).replace(tzinfo=None) == naive:
        return candidate
    # In a gap: the jump lies between the two readings; find it to the second.
    low = int(naive.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    high = int(naive.replace(tzinfo=zone, fold=0).astimezone(UTC).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        reading = datetime.fromtimestamp(middle, UTC).astimezone(zone).replace(tzinfo=None)
        if reading >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _intervals_from(calendar: Calendar, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Open intervals that end after `start`, in time order (clipped to begin at `start`)."""
    day = calendar.local_date(start) - timedelta(days=1)  # a late-closing day may cover start
    for _ in range(_SEARCH_DAYS):
        for begin, end in calendar.open_intervals(day):
            if end > start:
                yield max(begin, start), end
        day += timedelta(days=1)


def due_at(calendar: Calendar, start: datetime, target: timedelta) -> datetime:
    """The earliest instant at which `target` of open time has elapsed since `start`."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if calendar.always_open:
        return (start + target).astimezone(UTC)
    remaining = target
    for begin, end in _intervals_from(calendar, start.astimezone(UTC)):
        available = end - begin
        if available >= remaining:
            return begin + remaining
        remaining -= available
    raise ValueError(f"calendar {calendar.id!r} has no open time in the next {_SEARCH_DAYS} days")


def warning_instants(
    calendar: Calendar, start: datetime, target: timedelta, fractions: Sequence[float]
) -> list[tuple[float, datetime]]:
    """When each fraction of the target will have elapsed, as (fraction, instant) pairs."""
    return [(fraction, due_at(calendar, start, target * fraction)) for fraction in fractions]


def open_time_between(calendar: Calendar, start: datetime, end: datetime) -> timedelta:
    """Open time elapsed from `start` to `end` (zero when `end` is not after `start`)."""
    if end <= start:
        return timedelta(0)
    if calendar.always_open:
        return end - start
    elapsed = timedelta(0)
    for begin, close in _intervals_from(calendar, start.astimezone(UTC)):
        if begin >= end:
            break
        elapsed += min(close, end) - begin
    return elapsed


@dataclass(frozen=True)
class Pause:
    """A stretch during which a clock does not count; `end` is None while it lasts."""

    begin: datetime
    end: datetime | None = None


def due_with_pauses(
    calendar: Calendar, start: datetime, target: timedelta, pauses: Sequence[Pause]
) -> datetime | None:
    """The earliest instant at which `target` of unpaused open time has elapsed since `start`.

    None while a pause that began before that instant still lasts. Pauses are in time order.
    """
    remaining = target
    cursor = start
    for pause in pauses:
        available = open_time_between(calendar, cursor, pause.begin)
        if available >= remaining:
            return due_at(calendar, cursor, remaining)
        remaining -= available
        if pause.end is None:
            return None
        cursor = max(cursor, pause.end)
    return due_at(calendar, cursor, remaining)


def elapsed_with_pauses(
    calendar: Calendar, start: datetime, pauses: Sequence[Pause], until: datetime
) -> timedelta:
    """Open time counted from `start` to `until`, leaving out the pauses."""
    elapsed = open_time_between(calendar, start, until)
    for pause in pauses:
        end = until if pause.end is None else min(pause.end, until)
        elapsed -= open_time_between(calendar, max(pause.begin, start), end)
    return elapsed
