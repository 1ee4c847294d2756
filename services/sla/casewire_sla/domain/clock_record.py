"""A clock as the service keeps it: what every alert about it carries, and what its figures
are labelled by."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casewire_common.events import ClockName, Priority

from casewire_sla.domain.calendars import Pause


@dataclass(frozen=True)
class ClockRecord:
    """A clock as stored: what every alert about it carries."""

    id: int
    case_id: str
    clock: ClockName
    policy_id: str
    calendar_id: str
    target_seconds: int
    started_at: datetime
    due_at: datetime
    team: str
    priority: Priority
    pauses: tuple[Pause, ...] = ()
    # The case's other fields as last seen (None on clocks stored before they were kept).
    platform: str | None = None
    channel: str | None = None
    visibility: str | None = None
    tags: tuple[str, ...] | None = None
    additive: bool = False  # an additive policy's clock, beside the contract's
