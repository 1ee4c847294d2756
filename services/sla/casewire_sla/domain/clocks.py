"""What a case event does to a case's SLA clocks: pure decisions, no I/O.

- `first_response` runs from the case's opening to the first brand reply.
- `next_response` runs from the first customer message after a brand reply to the next one.
- `resolution` runs from the opening to resolution, paused while the case is in one of its
  policy's `pause_on` statuses.

Resolving (or closing as no_action) ends every clock; a reopen starts `resolution` again and
the response clock the customer now waits on. When the case's fields select another policy,
its open clocks move to that policy and keep their start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from casewire_common.events import (
    CASE_ASSIGNED,
    CASE_CREATED,
    CASE_MERGED,
    CASE_MESSAGE_ADDED,
    CASE_PRIORITY_CHANGED,
    CASE_RESPONDED,
    CASE_STATUS_CHANGED,
    CaseEventData,
    CaseSnapshot,
    CaseStatus,
    ClockName,
)

from casewire_sla.domain.calendars import Calendar, Pause, due_with_pauses
from casewire_sla.domain.policies import (
    CaseFields,
    Policy,
    PolicySet,
    due_at,
    select_policy,
    warning_instants,
)

# Clocks that start when the case opens (DESIGN.md: next_response starts later).
OPENING_CLOCKS: tuple[ClockName, ...] = ("first_response", "resolution")
# Statuses that end every clock; leaving them reopens the case.
CLOSED: frozenset[CaseStatus] = frozenset({"resolved", "no_action"})
# Case events that carry a case snapshot: any of them may select another policy. Other
# types (incidents) are recorded as processed and otherwise ignored.
HANDLED_TYPES = frozenset(
    {
        CASE_CREATED,
        CASE_MESSAGE_ADDED,
        CASE_ASSIGNED,
        CASE_PRIORITY_CHANGED,
        CASE_RESPONDED,
        CASE_STATUS_CHANGED,
        CASE_MERGED,
    }
)
# The fraction of a breach timer, beside the warnings' fractions.
BREACH = 1.0


@dataclass(frozen=True)
class OpenClock:
    """A clock that has not ended, as stored: what a decision about it needs."""

    clock: ClockName
    policy_id: str
    calendar_id: str
    target: timedelta
    started_at: datetime
    team: str
    priority: str
    pauses: tuple[Pause, ...] = ()
    fired: frozenset[float] = frozenset()  # warning fractions and BREACH already alerted

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1].end is None


@dataclass(frozen=True)
class Schedule:
    """When a running clock's timers fire; only fractions not alerted yet have a warning."""

    due_at: datetime
    warnings: tuple[tuple[float, datetime], ...]
    breach: bool  # whether the breach is still to be alerted


@dataclass(frozen=True)
class ClockStart:
    """A clock that starts, with every instant it will fire at if nothing stops it."""

    case_id: str
    clock: ClockName
    policy_id: str
    calendar_id: str
    target: timedelta
    started_at: datetime
    due_at: datetime
    warnings: tuple[tuple[float, datetime], ...]
    team: str
    priority: str


@dataclass(frozen=True)
class ClockFulfilment:
    """An open clock ended: by what it waited for, or by the case's resolution."""

    case_id: str
    clock: ClockName
    fulfilled_at: datetime
    by_reply: bool = True  # False when resolving the case ended a response clock


@dataclass(frozen=True)
class ClockPause:
    case_id: str
    clock: ClockName
    paused_at: datetime


@dataclass(frozen=True)
class ClockResume:
    case_id: str
    clock: ClockName
    resumed_at: datetime
    schedule: Schedule


@dataclass(frozen=True)
class ClockReselection:
    """An open clock moved to another policy (or relabelled); its start stays."""

    case_id: str
    clock: ClockName
    policy_id: str
    calendar_id: str
    target: timedelta
    team: str
    priority: str
    schedule: Schedule | None  # None while the clock is paused: it has no timers


ClockChange = ClockStart | ClockFulfilment | ClockPause | ClockResume | ClockReselection


def schedule(
    calendar: Calendar,
    started_at: datetime,
    target: timedelta,
    pauses: Sequence[Pause],
    warn_at: Sequence[float],
    fired: frozenset[float] = frozenset(),
) -> Schedule | None:
    """The timers of a clock with these pauses; None while it is paused."""
    due = due_with_pauses(calendar, started_at, target, pauses)
    if due is None:
        return None
    warnings = []
    for fraction in warn_at:
        if fraction in fired:
            continue
        at = due_with_pauses(calendar, started_at, target * fraction, pauses)
        assert at is not None  # a fraction of the target falls due no later than all of it
        warnings.append((fraction, at))
    return Schedule(due, tuple(warnings), BREACH not in fired)


def _start(
    policies: PolicySet,
    policy: Policy,
    case_id: str,
    case: CaseFields,
    clock: ClockName,
    at: datetime,
) -> ClockStart | None:
    target = policy.target(clock)
    if target is None:
        return None
    calendar = policies.calendar(policy.calendar)
    return ClockStart(
        case_id=case_id,
        clock=clock,
        policy_id=policy.id,
        calendar_id=calendar.id,
        target=target,
        started_at=at,
        due_at=due_at(calendar, at, target),
        warnings=tuple(warning_instants(calendar, at, target, policy.warn_at)),
        team=case.team,
        priority=case.priority,
    )


def clocks_at_opening(
    policies: PolicySet,
    case_id: str,
    case: CaseFields,
    opened_at: datetime,
    clocks: Sequence[ClockName] = OPENING_CLOCKS,
) -> list[ClockStart]:
    """The clocks that start when a case opens, under the first policy that matches it."""
    policy = select_policy(policies.policies, case)
    if policy is None:
        return []
    starts = (_start(policies, policy, case_id, case, clock, opened_at) for clock in clocks)
    return [start for start in starts if start is not None]


def calendar_of(policies: PolicySet, calendar_id: str) -> Calendar:
    """A clock's calendar; one that left the policy file counts wall-clock time."""
    return policies.find_calendar(calendar_id) or Calendar(id=calendar_id, always_open=True)


def _warn_at(policies: PolicySet, policy_id: str) -> Sequence[float]:
    return next((p.warn_at for p in policies.policies if p.id == policy_id), [])


def _reselect(
    policies: PolicySet, policy: Policy | None, case: CaseSnapshot, clock: OpenClock
) -> tuple[OpenClock, ClockReselection | None]:
    """The clock under the policy the case selects now; it keeps its policy when that one has
    no target for it (a running obligation is never dropped silently)."""
    target = None if policy is None else policy.target(clock.clock)
    if policy is not None and target is not None:
        moved = replace(clock, policy_id=policy.id, calendar_id=policy.calendar, target=target)
    else:
        moved = clock
    moved = replace(moved, team=case.team, priority=case.priority)
    if moved == clock:
        return clock, None
    timers = None
    if not moved.paused:
        timers = schedule(
            calendar_of(policies, moved.calendar_id),
            moved.started_at,
            moved.target,
            moved.pauses,
            _warn_at(policies, moved.policy_id),
            moved.fired,
        )
    change = ClockReselection(
        case.id,
        moved.clock,
        moved.policy_id,
        moved.calendar_id,
        moved.target,
        moved.team,
        moved.priority,
        timers,
    )
    return moved, change


def _starts(
    policies: PolicySet,
    policy: Policy | None,
    case: CaseSnapshot,
    running: dict[ClockName, OpenClock],
    names: Sequence[ClockName],
    since: datetime,
) -> list[ClockChange]:
    """Starts of the named clocks that are not open already (and that the policy sets)."""
    if policy is None:
        return []
    starts = (_start(policies, policy, case.id, case, name, since) for name in names)
    return [start for start in starts if start is not None and start.clock not in running]


def clock_changes(
    policies: PolicySet,
    event_type: str,
    data: CaseEventData,
    open_clocks: Sequence[OpenClock],
    at: datetime,
) -> list[ClockChange]:
    """What one case event, which happened at `at`, does to the open clocks of its case."""
    case = data.case
    policy = select_policy(policies.policies, case)
    changes: list[ClockChange] = []
    clocks: dict[ClockName, OpenClock] = {}
    for clock in open_clocks:
        clocks[clock.clock], reselection = _reselect(policies, policy, case, clock)
        if reselection is not None:
            changes.append(reselection)
    if event_type == CASE_CREATED and case.status not in CLOSED:
        changes += _starts(policies, policy, case, clocks, OPENING_CLOCKS, case.opened_at)
        if case.first_response_at is not None:  # opened already answered: stop at once
            changes.append(ClockFulfilment(case.id, "first_response", case.first_response_at))
    elif event_type == CASE_MESSAGE_ADDED:
        # Only the first customer message after a brand reply starts it; later ones wait too.
        if case.status not in CLOSED and case.first_response_at is not None:
            changes += _starts(policies, policy, case, clocks, ["next_response"], at)
    elif event_type == CASE_RESPONDED:
        if "first_response" in clocks and data.first_response and case.first_response_at:
            changes.append(ClockFulfilment(case.id, "first_response", case.first_response_at))
        if "next_response" in clocks:
            changes.append(ClockFulfilment(case.id, "next_response", at))
    elif event_type == CASE_STATUS_CHANGED:
        if case.status in CLOSED:
            resolved_at = case.resolved_at or at
            changes += [
                ClockFulfilment(case.id, name, resolved_at, by_reply=name == "resolution")
                for name in clocks
            ]
        elif case.status == "reopened" or data.previous_status in CLOSED:
            # The customer waits again: for a first reply if there never was one.
            waiting: ClockName = (
                "first_response" if case.first_response_at is None else "next_response"
            )
            changes += _starts(policies, policy, case, clocks, ["resolution", waiting], at)
        elif "resolution" in clocks and policy is not None:
            changes += _pause_or_resume(policies, policy, case, clocks["resolution"], at)
    return changes


def _pause_or_resume(
    policies: PolicySet, policy: Policy, case: CaseSnapshot, clock: OpenClock, at: datetime
) -> list[ClockChange]:
    """A clock pauses on entering one of the policy's `pause_on` statuses, resumes on leaving."""
    pausing = case.status in policy.pause_on
    if pausing and not clock.paused:
        return [ClockPause(case.id, clock.clock, at)]
    if clock.paused and not pausing:
        pauses = (*clock.pauses[:-1], Pause(clock.pauses[-1].begin, at))
        timers = schedule(
            calendar_of(policies, clock.calendar_id),
            clock.started_at,
            clock.target,
            pauses,
            _warn_at(policies, clock.policy_id),
            clock.fired,
        )
        assert timers is not None  # no pause lasts any more
        return [ClockResume(case.id, clock.clock, at, timers)]
    return []


def rederive(
    policies: PolicySet, case: CaseFields | None, clock: OpenClock
) -> tuple[OpenClock, Schedule | None]:
    """An open clock under (another version of) the policy file: the policy its case selects
    now, same start and pauses. With no case fields known, or no target for this clock in the
    selected policy, the clock keeps its policy. The schedule is None while it is paused."""
    policy = None if case is None else select_policy(policies.policies, case)
    target = None if policy is None else policy.target(clock.clock)
    moved = clock
    if policy is not None and target is not None:
        moved = replace(clock, policy_id=policy.id, calendar_id=policy.calendar, target=target)
    if moved.paused:
        return moved, None
    timers = schedule(
        calendar_of(policies, moved.calendar_id),
        moved.started_at,
        moved.target,
        moved.pauses,
        _warn_at(policies, moved.policy_id),
        moved.fired,
    )
    return moved, timers
