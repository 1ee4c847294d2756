"""Which `sent_at` Casewire trusts. Every clock, watermark and report reads it, so one forged
or broken time must not move them: a time later than its receipt (beyond a small skew) or
from before its platform existed is refused on the generic channel (the integration can
correct it) and, from a platform (whose clock is authoritative but not always sane),
replaced by the receipt time and flagged (`Normalized.time_adjusted`; the published record
carries the header `casewire-time-adjusted`: the canonical message forbids unknown fields, so
a new field there would break its consumers)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from casewire_common.messages import CanonicalMessage, Platform
from casewire_common.thread_control import ThreadControl

from casewire_ingest.domain.normalized import NormalizationError, Normalized

# The first day a message could have been sent on each platform.
PLATFORM_LAUNCH: dict[Platform, datetime] = {
    "facebook": datetime(2004, 2, 4, tzinfo=UTC),
    "x": datetime(2006, 3, 21, tzinfo=UTC),
    "whatsapp": datetime(2009, 2, 24, tzinfo=UTC),
    "instagram": datetime(2010, 10, 6, tzinfo=UTC),
    "other": datetime(1995, 1, 1, tzinfo=UTC),
}


def implausibility(message: CanonicalMessage | ThreadControl, max_skew: timedelta) -> str | None:
    """Why the message's (or thread-control event's) `sent_at` cannot be true, or None when it
    can."""
    if message.sent_at > message.received_at + max_skew:
        return f"sent_at is more than {max_skew.total_seconds():g} s after its receipt"
    if message.sent_at < PLATFORM_LAUNCH[message.platform]:
        return f"sent_at is before {message.platform} existed"
    return None


def settle_event_times(normalized: Normalized, max_skew: timedelta, *, refuse: bool) -> Normalized:
    """The body's messages with times Casewire can trust: `refuse` (the generic channel) raises
    NormalizationError `implausible_sent_at`; otherwise such a time is replaced and flagged."""
    settled: list[CanonicalMessage] = []
    adjusted: set[str] = set()
    for message in normalized.messages:
        problem = implausibility(message, max_skew)
        if problem is None:
            settled.append(message)
        elif refuse:
            raise NormalizationError("implausible_sent_at", problem)
        else:
            replaced = message.model_copy(update={"sent_at": message.received_at})
            settled.append(replaced)
            adjusted.add(replaced.delivery_key)
    # A handover's time is when a case opens and its clocks start: held to the same rule.
    controls: list[ThreadControl] = []
    for control in normalized.thread_controls:
        if implausibility(control, max_skew) is None:
            controls.append(control)
        else:
            controls.append(control.model_copy(update={"sent_at": control.received_at}))
            adjusted.add(control.delivery_key)
    return replace(normalized, messages=settled, thread_controls=controls, time_adjusted=adjusted)
