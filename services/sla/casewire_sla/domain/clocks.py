"""What a case event does to a case's SLA clocks: pure decisions, no I/O.

- `first_response` runs from the case's opening to the first brand reply.
- `next_response` runs from the first customer message after a brand reply to the next one.
- `resolution` runs from the opening to resolution, paused while the case is in one of its
  policy's `pause_on` statuses.

Resolving (or closing as no_action) ends every clock; a reopen starts `resolution` again and
the response clock the customer now waits on. A first reply sent before the one that ended
`first_response`, read after it, ends the clock instead (event time). Likewise a customer
message sent before the one that opened the case, read after it, starts `first_response`
then, open or already answered: an answered clock's deadlines and outcome move with its
start. A case absorbed into another (`casewire.case.merged` with `merged_into_case_id`) was
never a case of its own: its clocks end with no outcome. When the case's fields select another
policy, its open clocks move to that policy and keep their start; `resolution` then pauses or
resumes as the new policy's `pause_on` says of the case's status.

A case's clocks run in tracks: the contract's (the first matching policy that is not
additive) and one per matching additive policy, each with its own targets, calendar and
`pause_on`, and each started, paused and fulfilled by the same events. The contract's clocks
move between policies on re-selection; an additive policy's clocks belong to it and end, as
not fulfilled by a reply, when it stops matching. A track with no open clock whose policy
starts matching (a contract, or an additive policy) starts the clocks the case waits on, from
that instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from casewire_common.events import (
    CASE_ASSIGNED,
    CASE_CREATED,
    CASE_ESCALATED,
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
    select_additive_policies,
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
        CASE_ESCALATED,
    }
)
# The fraction of a breach timer, beside the warnings' fractions.
BREACH = 1.0


def target_seconds(target: timedelta) -> int:
    """A target in whole seconds, at least one: as a clock keeps it and its alerts carry it."""
    return max(1, round(target.total_seconds()))


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
    additive: bool = False  # run for its (additive) policy rather than for the contract
    # No earlier clock of its name on its track: no reopening started it, so it may start
    # at the case's opening.
    first_cycle: bool = True

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1].end is None

    @property
    def additive_policy(self) -> str | None:
        """Which track the clock is on: None for the contract, else its additive policy."""
        return self.policy_id if self.additive else None


@dataclass(frozen=True)
class AnsweredClock:
    """A case's latest clock of one name and track that ended by the reply it waited for: the
    clock as it ran (start, target, calendar, fractions alerted) and when it ended."""

    ran: OpenClock
    fulfilled_at: datetime

    @property
    def clock(self) -> ClockName:
        return self.ran.clock

    @property
    def additive_policy(self) -> str | None:
        return self.ran.additive_policy


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
    additive: bool = False

    @property
    def additive_policy(self) -> str | None:
        return self.policy_id if self.additive else None

    @property
    def target_seconds(self) -> int:
        return target_seconds(self.target)


# The changes below name the clock they change by case, clock name and track
# (`additive_policy`: None for the contract's clock, else the additive policy's id).


@dataclass(frozen=True)
class ClockFulfilment:
    """An open clock ended: by what it waited for, or by the case's resolution (or, for an
    additive policy's clock, by the policy no longer applying)."""

    case_id: str
    clock: ClockName
    fulfilled_at: datetime
    by_reply: bool = True  # False when it ended without what it waited for
    additive_policy: str | None = None


@dataclass(frozen=True)
class ClockPause:
    case_id: str
    clock: ClockName
    paused_at: datetime
    additive_policy: str | None = None


@dataclass(frozen=True)
class ClockResume:
    case_id: str
    clock: ClockName
    resumed_at: datetime
    schedule: Schedule
    additive_policy: str | None = None


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
    additive_policy: str | None = None
    started_at: datetime | None = None  # moved earlier (the case opened earlier), else None

    @property
    def target_seconds(self) -> int:
        return target_seconds(self.target)


@dataclass(frozen=True)
class ClockRefulfilment:
    """An answered clock ended instead by an earlier-sent reply that was read after the one
    that ended it: its end, and so its outcome, moves back to that reply."""

    case_id: str
    clock: ClockName
    fulfilled_at: datetime
    additive_policy: str | None = None


@dataclass(frozen=True)
class ClockBackdate:
    """An answered first_response clock whose case turns out to have opened earlier (a
    customer message sent before the one that opened it, processed after the reply): it starts
    then. `schedule` holds its timers from that start (fractions alerted before stay alerted);
    its outcome is decided again against its end."""

    case_id: str
    clock: ClockName
    started_at: datetime
    schedule: Schedule
    additive_policy: str | None = None


@dataclass(frozen=True)
class CaseAbsorption:
    """The case was absorbed into another (the same customer's reply chain, split by
    processing order): every clock of it, open or ended, ends with no outcome, its pending
    timers are cancelled and a breach fired for it is withdrawn. The case it joined keeps
    the customer's clocks."""

    case_id: str
    into_case_id: str
    at: datetime


ClockChange = (
    ClockStart
    | ClockFulfilment
    | ClockPause
    | ClockResume
    | ClockReselection
    | ClockRefulfilment
    | ClockBackdate
    | CaseAbsorption
)


@dataclass
class _Track:
    """The policy a case's clocks of one track run under now, and those open in it."""

    policy: Policy | None  # None: no contract matches the case
    additive: bool
    running: dict[ClockName, OpenClock]
    was_open: bool  # whether it had open clocks before the event

    @property
    def additive_policy(self) -> str | None:
        return self.policy.id if self.additive and self.policy is not None else None


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
        additive=policy.additive,
    )


def clocks_at_opening(
    policies: PolicySet,
    case_id: str,
    case: CaseFields,
    opened_at: datetime,
    clocks: Sequence[ClockName] = OPENING_CLOCKS,
) -> list[ClockStart]:
    """The clocks that start when a case opens: under its contract (the first policy that
    matches it and is not additive), then under each additive policy that matches it."""
    contract = select_policy(policies.policies, case)
    applying = [contract] if contract is not None else []
    applying += select_additive_policies(policies.policies, case)
    starts = (
        _start(policies, policy, case_id, case, clock, opened_at)
        for policy in applying
        for clock in clocks
    )
    return [start for start in starts if start is not None]


def calendar_of(policies: PolicySet, calendar_id: str) -> Calendar:
    """A clock's calendar; one that left the policy file counts wall-clock time."""
    return policies.find_calendar(calendar_id) or Calendar(id=calendar_id, always_open=True)


def _schedule_of(policies: PolicySet, clock: OpenClock) -> Schedule | None:
    """The timers of an open clock as it now stands (None while it is paused)."""
    return schedule(
        calendar_of(policies, clock.calendar_id),
        clock.started_at,
        clock.target,
        clock.pauses,
        _warn_at(policies, clock.policy_id),
        clock.fired,
    )


def _warn_at(policies: PolicySet, policy_id: str) -> Sequence[float]:
    return next((p.warn_at for p in policies.policies if p.id == policy_id), [])


def _reselect(
    policies: PolicySet,
    policy: Policy | None,
    case: CaseSnapshot,
    clock: OpenClock,
    at: datetime,
    case_merged_in: bool = False,
) -> tuple[OpenClock, list[ClockChange]]:
    """The clock under the policy its track selects now; it keeps its policy when that one has
    no target for it (a running obligation is never dropped silently). Moved to another policy
    on an open case, it pauses or resumes at once as that policy's `pause_on` says: the old
    policy's pause state says nothing about the new one."""
    target = None if policy is None else policy.target(clock.clock)
    if policy is not None and target is not None:
        moved = replace(clock, policy_id=policy.id, calendar_id=policy.calendar, target=target)
    else:
        moved = clock
    moved = replace(moved, team=case.team, priority=case.priority)
    if (
        clock.clock == "first_response"
        and clock.first_cycle
        and (case.first_response_at is None or case_merged_in)
        and case.opened_at < clock.started_at
    ):
        # A message sent before the one that opened the case was processed after it (another
        # conversation merged in): the customer has waited since then (event time). A case
        # merged in brings its opening and its replies at once: the clock moves back, then
        # the first of them ends it. A clock a reopening started waits from the reopening.
        moved = replace(moved, started_at=case.opened_at)
    if moved == clock:
        return clock, []
    timers = None
    if not moved.paused:
        timers = _schedule_of(policies, moved)
    change = ClockReselection(
        case.id,
        moved.clock,
        moved.policy_id,
        moved.calendar_id,
        moved.target,
        moved.team,
        moved.priority,
        timers,
        moved.additive_policy,
        started_at=moved.started_at if moved.started_at != clock.started_at else None,
    )
    if (
        policy is None
        or moved.policy_id == clock.policy_id
        or moved.clock != "resolution"
        or case.status in CLOSED
    ):
        return moved, [change]
    moved, pause_or_resume = _pause_or_resume(policies, policy, case, moved, at)
    return moved, [change, *pause_or_resume]


def _tracks(
    policies: PolicySet,
    case: CaseSnapshot,
    open_clocks: Sequence[OpenClock],
    at: datetime,
    case_merged_in: bool = False,
) -> tuple[list[_Track], list[ClockChange]]:
    """The case's tracks now (contract first, then additive policies in file order), with the
    changes that bring the open clocks in line: re-selections (with the pauses and resumes
    they bring), and the end of the clocks of additive policies that no longer apply."""
    contract = _Track(select_policy(policies.policies, case), False, {}, False)
    additive = {
        policy.id: _Track(policy, True, {}, False)
        for policy in select_additive_policies(policies.policies, case)
    }
    changes: list[ClockChange] = []
    for clock in open_clocks:
        if not clock.additive:
            track = contract
        elif clock.policy_id in additive:
            track = additive[clock.policy_id]
        else:  # its policy stopped matching (or left the file): the expectation is gone
            changes.append(
                ClockFulfilment(
                    case.id, clock.clock, at, by_reply=False, additive_policy=clock.policy_id
                )
            )
            continue
        moved, reselection_changes = _reselect(
            policies, track.policy, case, clock, at, case_merged_in
        )
        track.running[clock.clock] = moved
        track.was_open = True
        changes += reselection_changes
    return [contract, *additive.values()], changes


def _starts(
    policies: PolicySet,
    track: _Track,
    case: CaseSnapshot,
    names: Sequence[ClockName],
    since: datetime,
) -> list[ClockChange]:
    """Starts of the named clocks that are not open already in the track (and that its
    policy sets)."""
    if track.policy is None:
        return []
    starts = (_start(policies, track.policy, case.id, case, name, since) for name in names)
    return [start for start in starts if start is not None and start.clock not in track.running]


def _waiting_on(case: CaseSnapshot, tracks: Sequence[_Track]) -> list[ClockName]:
    """The clocks an open case waits on now: resolution; a first reply while there was none;
    a next reply while any track counts one."""
    waiting: list[ClockName] = ["resolution"]
    if case.first_response_at is None:
        waiting.append("first_response")
    elif any("next_response" in track.running for track in tracks):
        waiting.append("next_response")
    return waiting


def clock_changes(
    policies: PolicySet,
    event_type: str,
    data: CaseEventData,
    open_clocks: Sequence[OpenClock],
    at: datetime,
    answered: Sequence[AnsweredClock] = (),
) -> list[ClockChange]:
    """What one case event, which happened at `at`, does to the clocks of its case: its open
    clocks, and its `answered` ones when the event `reads_answered`."""
    case = data.case
    if event_type == CASE_MERGED and data.merged_into_case_id is not None:
        return [CaseAbsorption(case.id, data.merged_into_case_id, case.resolved_at or at)]
    case_merged_in = event_type == CASE_MERGED and data.merged_case_id is not None
    tracks, changes = _tracks(policies, case, open_clocks, at, case_merged_in)
    waiting = _waiting_on(case, tracks)
    for track in tracks:
        event_changes = _event_changes(policies, track, event_type, data, at)
        changes += event_changes
        if not track.was_open:
            started = {c.clock for c in event_changes if isinstance(c, ClockStart)}
            missing = [name for name in waiting if name not in started]
            changes += _catch_up(policies, track, case, missing, at)
    # The end moves back before the start does: a breach fired under the old start and
    # disproved by the earlier reply is withdrawn under the id it fired with.
    changes += _earlier_first_reply(event_type, data, tracks, answered)
    return changes + _earlier_opening(policies, event_type, data, answered)


def names_first_reply(event_type: str, data: CaseEventData) -> bool:
    """Whether the event says which reply is the case's first: a reply the router takes as the
    first, or a case merged in (its replies join this case's)."""
    if event_type == CASE_RESPONDED:
        return bool(data.first_response)
    return event_type == CASE_MERGED and data.merged_case_id is not None


def may_move_opening(event_type: str, data: CaseEventData) -> bool:
    """Whether the event may carry an earlier opening: a customer message added (sent before
    the one that opened the case), or a case merged in (its opening joins this case's)."""
    if event_type == CASE_MESSAGE_ADDED:
        return True
    return event_type == CASE_MERGED and data.merged_case_id is not None


def reads_answered(event_type: str, data: CaseEventData) -> bool:
    """Whether the event may change a clock that ended by its reply."""
    return names_first_reply(event_type, data) or may_move_opening(event_type, data)


def _earlier_first_reply(
    event_type: str,
    data: CaseEventData,
    tracks: Sequence[_Track],
    answered: Sequence[AnsweredClock],
) -> list[ClockChange]:
    """The router names a first reply sent before the one that ended a track's first_response
    clock (two replies processed out of order, or the replies of a case merged into this
    one): the clock ends at it instead. A track whose first_response clock is open ends that
    one, as any first reply does."""
    case, reply = data.case, data.case.first_response_at
    if reply is None or not names_first_reply(event_type, data):
        return []
    open_tracks = {track.additive_policy for track in tracks if "first_response" in track.running}
    return [
        ClockRefulfilment(case.id, ended.clock, reply, ended.additive_policy)
        for ended in answered
        if ended.clock == "first_response"
        and reply < ended.fulfilled_at
        and ended.additive_policy not in open_tracks
    ]


def _earlier_opening(
    policies: PolicySet,
    event_type: str,
    data: CaseEventData,
    answered: Sequence[AnsweredClock],
) -> list[ClockChange]:
    """The case opened before an answered first_response clock started (the customer wrote
    earlier than the message that opened it, read after the reply): the customer has waited
    since then (event time), as an open clock already counts (`_reselect`). Only a clock that
    started at the opening moves: one a reopening started waits from the reopening."""
    case = data.case
    if not may_move_opening(event_type, data):
        return []
    changes: list[ClockChange] = []
    for ended in answered:
        clock = ended.ran
        if clock.clock != "first_response" or not clock.first_cycle:
            continue
        if case.opened_at >= clock.started_at:
            continue
        timers = _schedule_of(policies, replace(clock, started_at=case.opened_at))
        assert timers is not None  # an answered clock has no pause that lasts
        changes.append(
            ClockBackdate(case.id, clock.clock, case.opened_at, timers, clock.additive_policy)
        )
    return changes


def _event_changes(
    policies: PolicySet, track: _Track, event_type: str, data: CaseEventData, at: datetime
) -> list[ClockChange]:
    """What the event does to one track's clocks."""
    case, clocks, additive_policy = data.case, track.running, track.additive_policy
    changes: list[ClockChange] = []
    if event_type == CASE_CREATED and case.status not in CLOSED:
        changes += _starts(policies, track, case, OPENING_CLOCKS, case.opened_at)
        counting = "first_response" in clocks or any(
            isinstance(c, ClockStart) and c.clock == "first_response" for c in changes
        )
        if case.first_response_at is not None and counting:  # opened already answered
            changes.append(
                ClockFulfilment(
                    case.id, "first_response", case.first_response_at, True, additive_policy
                )
            )
    elif event_type == CASE_MESSAGE_ADDED:
        # Only the first customer message after a brand reply starts it; later ones wait too.
        if case.status not in CLOSED and case.first_response_at is not None:
            changes += _starts(policies, track, case, ["next_response"], at)
    elif event_type == CASE_RESPONDED:
        if "first_response" in clocks and data.first_response and case.first_response_at:
            changes.append(
                ClockFulfilment(
                    case.id, "first_response", case.first_response_at, True, additive_policy
                )
            )
        if "next_response" in clocks:
            changes.append(ClockFulfilment(case.id, "next_response", at, True, additive_policy))
    elif event_type == CASE_MERGED and data.merged_case_id is not None:
        # The absorbed case's replies are this case's now: its first one may answer the clock.
        if "first_response" in clocks and case.first_response_at is not None:
            changes.append(
                ClockFulfilment(
                    case.id, "first_response", case.first_response_at, True, additive_policy
                )
            )
    elif event_type == CASE_STATUS_CHANGED:
        if case.status in CLOSED:
            resolved_at = case.resolved_at or at
            changes += [
                ClockFulfilment(case.id, name, resolved_at, name == "resolution", additive_policy)
                for name in clocks
            ]
        elif case.status == "reopened" or data.previous_status in CLOSED:
            # The customer waits again: for a first reply if there never was one.
            waiting: ClockName = (
                "first_response" if case.first_response_at is None else "next_response"
            )
            changes += _starts(policies, track, case, ["resolution", waiting], at)
        elif "resolution" in clocks and track.policy is not None:
            _, pause_or_resume = _pause_or_resume(
                policies, track.policy, case, clocks["resolution"], at
            )
            changes += pause_or_resume
    return changes


def _catch_up(
    policies: PolicySet,
    track: _Track,
    case: CaseSnapshot,
    waiting: Sequence[ClockName],
    at: datetime,
) -> list[ClockChange]:
    """A track with no open clock on an open case (its policy starts applying: the case's
    priority, team, channel or tags changed, or a contract matches where none did) starts,
    from this event, the clocks the case waits on. Clocks it ended before are not waited on any
    more, so they do not start again."""
    if case.status in CLOSED or track.policy is None:
        return []
    changes = _starts(policies, track, case, waiting, at)
    if case.status in track.policy.pause_on and any(
        isinstance(change, ClockStart) and change.clock == "resolution" for change in changes
    ):
        changes.append(ClockPause(case.id, "resolution", at, track.additive_policy))
    return changes


def _pause_or_resume(
    policies: PolicySet, policy: Policy, case: CaseSnapshot, clock: OpenClock, at: datetime
) -> tuple[OpenClock, list[ClockChange]]:
    """A clock pauses on entering one of the policy's `pause_on` statuses, resumes on leaving;
    with the clock as it is afterwards, for decisions later in the same event."""
    pausing = case.status in policy.pause_on
    if pausing and not clock.paused:
        paused = replace(clock, pauses=(*clock.pauses, Pause(at)))
        return paused, [ClockPause(case.id, clock.clock, at, clock.additive_policy)]
    if clock.paused and not pausing:
        resumed = replace(clock, pauses=(*clock.pauses[:-1], Pause(clock.pauses[-1].begin, at)))
        timers = _schedule_of(policies, resumed)
        assert timers is not None  # no pause lasts any more
        return resumed, [ClockResume(case.id, clock.clock, at, timers, clock.additive_policy)]
    return clock, []


def _additive_policy(policies: PolicySet, policy_id: str) -> Policy | None:
    return next((p for p in policies.policies if p.id == policy_id and p.additive), None)


def rederive(
    policies: PolicySet, case: CaseFields | None, clock: OpenClock
) -> tuple[OpenClock, Schedule | None]:
    """An open clock under (another version of) the policy file, same start and pauses: a
    contract clock under the contract its case selects now, an additive policy's clock under
    that policy's current targets. With no case fields known, or no target for this clock in
    that policy, the clock keeps its policy and target. The schedule is None while it is
    paused. Clocks are neither started nor ended here: the case's next event does that."""
    if clock.additive:
        policy = _additive_policy(policies, clock.policy_id)
    else:
        policy = None if case is None else select_policy(policies.policies, case)
    target = None if policy is None else policy.target(clock.clock)
    moved = clock
    if policy is not None and target is not None:
        moved = replace(clock, policy_id=policy.id, calendar_id=policy.calendar, target=target)
    if moved.paused:
        return moved, None
    timers = _schedule_of(policies, moved)
    return moved, timers
