"""Every timestamp format the platforms send, to a UTC instant.

Epoch seconds and milliseconds (ints, floats or numeric strings; told apart by magnitude),
RFC 3339 with any fraction (Google sends nanoseconds), and Twitter's
`Fri Dec 13 04:48:09 +0000 2019`. Anything else is rejected rather than guessed. Whether
an instant is plausible (not in the future, not before its platform existed) is decided
afterwards, for all messages alike (`event_time.py`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from casewire_ingest.domain.normalized import NormalizationError

_MS_THRESHOLD = 100_000_000_000  # above: milliseconds (1e11 s would be the year 5138)
_TWITTER_FORMAT = "%a %b %d %H:%M:%S %z %Y"
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})$"
)


def to_utc(value: Any, where: str) -> datetime:
    """The UTC instant of a platform timestamp; NormalizationError when it is not one."""
    if isinstance(value, bool):
        raise NormalizationError("invalid_timestamp", f"{where} is not a timestamp")
    if isinstance(value, int | float):
        return _from_epoch(float(value), where)
    if not isinstance(value, str) or not value.strip():
        raise NormalizationError("invalid_timestamp", f"{where} is not a timestamp")
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        return _from_epoch(number, where)
    match = _RFC3339.match(text)
    if match:
        date, time, fraction, offset = match.groups()
        micro = (fraction or "0")[:6].ljust(6, "0")
        offset = "+00:00" if offset in ("Z", "z") else offset
        try:
            parsed = datetime.fromisoformat(f"{date}T{time}.{micro}{offset}")
        except ValueError as error:  # month 13, hour 25...
            raise NormalizationError("invalid_timestamp", f"{where} is not a date") from error
        return parsed.astimezone(UTC)
    try:
        return datetime.strptime(text, _TWITTER_FORMAT).astimezone(UTC)
    except ValueError:
        pass
    raise NormalizationError("invalid_timestamp", f"{where} = {_shown(text)} is not a timestamp")


def _from_epoch(seconds_or_ms: float, where: str) -> datetime:
    if seconds_or_ms != seconds_or_ms or seconds_or_ms < 0:  # NaN or negative
        raise NormalizationError("impossible_timestamp", f"{where} is negative or not a number")
    seconds = seconds_or_ms / 1000 if seconds_or_ms >= _MS_THRESHOLD else seconds_or_ms
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise NormalizationError("impossible_timestamp", f"{where} is out of range") from error


def _shown(text: str) -> str:
    """A submitted value as quoted in a detail: short, whatever was sent."""
    return repr(text if len(text) <= 40 else text[:40] + "…")
