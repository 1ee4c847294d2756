"""The SLA service's use cases: case events in, clock changes and alerts out; due timers fired.

Each use case runs in one transaction of its store (`ClockStore.transaction`, a port declared
here and kept in PostgreSQL by `adapters.store.PostgresClockStore`): the clock changes,
their alerts (outbox rows) and the processed markers commit together, so an alert is published
if and only if the change committed, and a redelivered case event changes nothing. What a
case event does to its clocks is decided by `domain.clocks` (deadlines by
`domain.calendars`), which timers a clock has by `domain.timers`, when an alert may fire by
`domain.holding`; this module applies those decisions (a fired breach timer marks its clock
breached, a stopped clock drops its later timers); the store only reads and writes.

A clock ended by a reply keeps the overdue alerts the router's watermark has not vouched for
pending (held), as a running clock would: a first reply sent earlier may still turn up and
end the clock in time, and then they never fire.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from casewire_common.events import (
    SLA_BREACH_RETRACTED,
    SLA_BREACHED,
    SLA_CLOCK_FULFILLED,
    SLA_CLOCK_PAUSED,
    SLA_CLOCK_RESUMED,
    SLA_CLOCK_STARTED,
    SLA_WARNING,
    CaseEventData,
    CaseSnapshot,
    EventRecord,
    WatermarkData,
)

from casewire_sla.adapters.alerts import alert_event_id, alert_record
from casewire_sla.domain.calendars import elapsed_with_pauses
from casewire_sla.domain.clock_record import ClockRecord
from casewire_sla.domain.clocks import (
    BREACH,
    AnsweredClock,
    CaseAbsorption,
    ClockBackdate,
    ClockChange,
    ClockFulfilment,
    ClockPause,
    ClockRefulfilment,
    ClockReselection,
    ClockResume,
    ClockStart,
    OpenClock,
    Schedule,
    calendar_of,
    clock_changes,
    reads_answered,
    rederive,
    target_seconds,
)
from casewire_sla.domain.holding import (
    AlertBound,
    WatermarkCoverage,
    WatermarkHold,
    alert_bound,
    low_watermark,
    retracts_breach,
)
from casewire_sla.domain.policies import PolicySet
from casewire_sla.domain.timers import (
    Timer,
    earliest,
    fired_late,
    schedule_timers,
    start_timers,
)

Records = list[tuple[str, EventRecord]]
Input = TypeVar("Input")


@dataclass(frozen=True)
class StoredClock:
    """An open clock as stored, with the warning fractions (and BREACH) already alerted."""

    clock: ClockRecord
    fired: frozenset[float]
    first_cycle: bool

    def as_open(self) -> OpenClock:
        """The clock as the domain decides about it."""
        clock = self.clock
        return OpenClock(
            clock=clock.clock,
            policy_id=clock.policy_id,
            calendar_id=clock.calendar_id,
            target=timedelta(seconds=clock.target_seconds),
            started_at=clock.started_at,
            team=clock.team,
            priority=clock.priority,
            pauses=clock.pauses,
            fired=self.fired,
            additive=clock.additive,
            first_cycle=self.first_cycle,
        )


@dataclass(frozen=True)
class EndedClock:
    """A clock just ended (or whose end or start just moved), the instant its breach fired for
    (None: not breached) and the outcome attainment counted it with until now (None: not
    counted)."""

    clock: ClockRecord
    breached_at: datetime | None
    counted: str | None = None
    # The start its breach fired under, when the clock's start moved since (the alert's id
    # derives from it); None: its own start.
    breach_started_at: datetime | None = None
    fulfilled_at: datetime | None = None

    @property
    def breach_id_clock(self) -> ClockRecord:
        """The clock as its breach alert named it."""
        if self.breach_started_at is None:
            return self.clock
        return replace(self.clock, started_at=self.breach_started_at)


@dataclass(frozen=True)
class DueTimer:
    """A timer claimed for firing (locked until the transaction ends), and when its clock
    ended (None: it runs) when it was held for the watermark past that end."""

    id: int
    timer: Timer
    clock: ClockRecord
    ended_at: datetime | None = None


@dataclass(frozen=True)
class ClockStats:
    """Open clocks by clock name, and the earliest due_at among those running unbreached."""

    open: dict[str, int]
    earliest_due: dict[str, datetime]


@dataclass(frozen=True)
class WatermarkRow:
    case_partition: int
    topic: str
    source_partition: int
    partitions: int
    watermark: datetime


class ClockTransaction(Protocol):
    """The reads and writes of one unit of work (`ClockStore.transaction`): the clock changes,
    their alerts (outbox rows) and the processed markers of the inputs commit together, or
    not at all. Statements only: what to change is this module's decision."""

    async def claim(self, inputs: Sequence[Input], key: Callable[[Input], str]) -> list[Input]:
        """Processed markers for these inputs; returns, in order, those not processed before."""
        ...

    @property
    def duplicates(self) -> int:
        """Inputs claimed before (redelivery), or twice in one batch."""
        ...

    async def open_clocks(self, case_ids: Sequence[str]) -> dict[str, list[StoredClock]]:
        """Each case's open clocks (every case id a key, with no clock an empty list)."""
        ...

    async def copy_case_fields(self, case: CaseSnapshot) -> None:
        """The case's open clocks keep the case's fields as they are now (its policy is
        selected again from them: `recompute`)."""
        ...

    async def answered_clocks(self, case_id: str) -> list[AnsweredClock]:
        """Per clock name and track, the case's latest clock if it ended by what it waited for."""
        ...

    async def start(
        self, start: ClockStart, case: CaseSnapshot, timers: Sequence[Timer]
    ) -> ClockRecord | None:
        """A new clock with its pending timers; None when this cycle of it exists already."""
        ...

    async def replace_timers(self, clock_id: int, timers: Sequence[Timer]) -> None:
        """The clock's pending timers, instead of those it had."""
        ...

    async def stop_timers(
        self, clock_id: int, until: datetime, now: datetime, up_to: datetime | None = None
    ) -> list[Timer]:
        """The clock stopped at `until`: its pending timers due strictly before `until` (and,
        with `up_to`, by `up_to`) marked fired `now` and returned, those due at or after
        `until` dropped."""
        ...

    async def drop_timers(self, clock_id: int, since: datetime) -> None:
        """The clock's pending timers due at or after `since` dropped."""
        ...

    async def cancel_timers(self, clock_ids: Sequence[int]) -> None:
        """Every pending timer of these clocks dropped."""
        ...

    async def mark_breached(self, clock_ids: Sequence[int]) -> None:
        """These clocks breached (at their due_at): their breach fired."""
        ...

    async def fulfil(self, fulfilment: ClockFulfilment) -> EndedClock | None:
        """The open clock of the name and track ends; None: no such open clock."""
        ...

    async def record_outcome(self, clock_id: int, outcome: str) -> None:
        """The outcome attainment counts the clock with."""
        ...

    async def refulfil(self, refulfilment: ClockRefulfilment) -> EndedClock | None:
        """The latest answered clock of the name and track ends earlier; None: none ended
        later."""
        ...

    async def backdate(self, backdate: ClockBackdate) -> EndedClock | None:
        """The latest answered clock of the name and track starts earlier; None: none started
        later, or another cycle of it started then."""
        ...

    async def absorb(self, absorption: CaseAbsorption) -> list[EndedClock]:
        """Every clock of the case not absorbed yet ends absorbed, with no outcome."""
        ...

    async def clear_breach(self, clock_id: int) -> None:
        """The clock is no longer breached (its breach was withdrawn)."""
        ...

    async def pause(self, pause: ClockPause) -> ClockRecord | None:
        """The running clock of the name and track pauses; None: no such running clock."""
        ...

    async def resume(self, resume: ClockResume) -> ClockRecord | None:
        """The paused clock of the name and track runs again; None: no such paused clock."""
        ...

    async def reselect(self, reselection: ClockReselection) -> int | None:
        """The open clock under its new policy; returns its id (None: no such open clock)."""
        ...

    async def record_watermarks(self, rows: Sequence[WatermarkRow]) -> None:
        """Each (case partition, input partition) keeps the highest watermark written to it."""
        ...

    async def count_attainment(self, counts: Mapping[tuple[str, str, str], int]) -> None:
        """Adds to the attainment counts, by (clock, policy, outcome)."""
        ...

    async def watermark_coverage(self, topic: str, case_partitions: int) -> WatermarkCoverage:
        """The recorded watermarks of the router's input topic."""
        ...

    async def claim_due_timers(self, until: datetime, limit: int) -> list[DueTimer]:
        """Unfired timers due by `until`, earliest first, locked; those another replica holds
        are skipped (it fires them)."""
        ...

    async def mark_fired(self, timer_ids: Sequence[int], now: datetime) -> None:
        """Claimed timers fired now."""
        ...

    async def lock_open_clocks(self) -> list[StoredClock]:
        """Every open clock, locked until the transaction ends."""
        ...

    async def move_clock(
        self,
        clock_id: int,
        policy_id: str,
        calendar_id: str,
        target_seconds: int,
        due_at: datetime | None,
    ) -> None:
        """A clock's policy, target and (unless None: paused) due_at rewritten."""
        ...

    def add_to_outbox(self, records: Sequence[tuple[str, EventRecord]]) -> None:
        """Alerts written to the outbox when the unit of work commits."""
        ...


class ClockStore(Protocol):
    """Where clocks, their timers, the router's watermarks and attainment are kept
    (`adapters.store.PostgresClockStore`)."""

    def transaction(self) -> AbstractAsyncContextManager[ClockTransaction]:
        """One unit of work: it commits when the block ends, or rolls back on an error."""
        ...

    async def next_fire_at(self) -> datetime | None:
        """The instant of the earliest timer not fired yet, written by any replica."""
        ...

    async def clock_stats(self) -> ClockStats:
        """Open clocks by name, and the next due_at of running clocks not breached yet."""
        ...

    async def attainment(self) -> dict[tuple[str, str, str], int]:
        """Clocks ended by what they waited for, by (clock, policy, final outcome)."""
        ...

    async def watermark_coverage(self, topic: str, case_partitions: int) -> WatermarkCoverage:
        """The recorded watermarks of the router's input topic."""
        ...


@dataclass(frozen=True)
class IncomingCaseEvent:
    """A record of `casewire.case-events.v1` as this service reads it: a case event's
    CloudEvent id and type, its data when this service uses it, and its `time` (when it
    happened; the instant a clock starts or stops on it); or a router watermark."""

    id: str
    type: str
    data: CaseEventData | None
    time: datetime | None = None
    # A router watermark, and the case-events partition it was read on.
    watermark: WatermarkData | None = None
    partition: int | None = None


@dataclass(frozen=True)
class FiredAlert:
    clock: ClockRecord
    kind: str  # "warning" or "breach"
    fraction: float
    late: bool
    provisional: bool = False  # fired after max_hold, before the watermark passed its instant


@dataclass(frozen=True)
class Fulfilment:
    """A clock ended by what it waited for, with the open time it had counted (pauses out)."""

    clock: ClockRecord
    at: datetime
    business: timedelta
    # The case's assignee when the clock ended (the snapshot of the event that ended it): the
    # agent the per-agent figures count it for. None: nobody owned the case, or not known.
    assignee: str | None = None

    @property
    def calendar(self) -> timedelta:
        """Wall-clock time from the clock's start to its end, pauses and closed hours in."""
        return max(timedelta(0), self.at - self.clock.started_at)

    @property
    def within_target(self) -> bool:
        """Whether the clock ended no later than its target, in the time the target counts."""
        return self.business.total_seconds() <= self.clock.target_seconds

    @property
    def outcome(self) -> str:
        return "met" if self.within_target else "breached"


@dataclass
class CommittedChanges:
    """What a committed batch of incoming case events changed (clocks started and ended,
    alerts fired and retracted, attainment moved): for metrics and to wake the timer
    scheduler. (The `ClockChange`s of `domain.clocks` are decisions, before they commit.)"""

    applied: int = 0
    duplicates: int = 0
    started: list[ClockRecord] = field(default_factory=list)
    # Clocks ended by what they waited for (not response clocks ended by a resolution).
    fulfilled: list[Fulfilment] = field(default_factory=list)
    fired: list[FiredAlert] = field(default_factory=list)
    retracted: list[ClockRecord] = field(default_factory=list)  # breaches withdrawn
    # Attainment counts moved by ended clocks whose end moved back or whose case was
    # absorbed: (clock, policy, outcome) -> change.
    recounted: dict[tuple[str, str, str], int] = field(default_factory=dict)
    earliest_timer: datetime | None = None
    watermarks: int = 0  # router watermark records applied

    def timer_added(self, at: datetime | None) -> None:
        if at is not None and (self.earliest_timer is None or at < self.earliest_timer):
            self.earliest_timer = at

    def recount(self, clock: ClockRecord, counted: str | None, outcome: str | None) -> None:
        """A clock counted with `counted` (None: not counted) now counts with `outcome`."""
        for label, change in ((counted, -1), (outcome, 1)):
            if label is not None and counted != outcome:
                key = (clock.clock, clock.policy_id, label)
                self.recounted[key] = self.recounted.get(key, 0) + change

    def attainment(self) -> dict[tuple[str, str, str], int]:
        """What the batch adds to the attainment counts."""
        counts = dict(self.recounted)
        for fulfilment in self.fulfilled:
            key = (fulfilment.clock.clock, fulfilment.clock.policy_id, fulfilment.outcome)
            counts[key] = counts.get(key, 0) + 1
        return {key: change for key, change in counts.items() if change}


@dataclass(frozen=True)
class StoredCase:
    """The case fields a clock row keeps: enough to select its policy again."""

    priority: str
    team: str
    platform: str
    channel: str
    visibility: str
    tags: Sequence[str]


@dataclass(frozen=True)
class Recomputed:
    """An open clock re-derived under a policy file: before and after."""

    clock: ClockRecord
    policy_id: str
    calendar_id: str
    target_seconds: int
    due_at: datetime | None  # None while paused: it is derived again when it resumes
    case_known: bool  # False on clocks stored without the case fields: policy kept

    @property
    def changed(self) -> bool:
        old = self.clock
        new_due = old.due_at if self.due_at is None else self.due_at
        return (old.policy_id, old.calendar_id, old.target_seconds, old.due_at) != (
            self.policy_id,
            self.calendar_id,
            self.target_seconds,
            new_due,
        )


def _watermark_rows(marks: Sequence[tuple[int, WatermarkData]]) -> list[WatermarkRow]:
    """The highest watermark per (case partition, topic, input partition) of a batch."""
    highest: dict[tuple[int, str, int], WatermarkRow] = {}
    for case_partition, mark in marks:
        for source_partition, watermark in mark.watermarks.items():
            key = (case_partition, mark.topic, source_partition)
            known = highest.get(key)
            if known is None or watermark > known.watermark:
                highest[key] = WatermarkRow(*key, mark.partitions, watermark)
    return list(highest.values())


async def _alert_bound(
    tx: ClockTransaction, now: datetime, hold: WatermarkHold | None
) -> AlertBound:
    """Up to which instant alerts fire now, as the recorded watermarks say."""
    low = None
    if hold is not None:
        low = low_watermark(await tx.watermark_coverage(hold.topic, hold.case_partitions), hold)
    return alert_bound(now, hold, low)


@dataclass
class _Moment:
    """When a batch is applied, and (read once, when first needed) its alert bound."""

    tx: ClockTransaction
    now: datetime
    hold: WatermarkHold | None
    _bound: AlertBound | None = None
    # Clocks a reply (or an earlier opening) ended in this batch, by id, and when they ended:
    # their overdue alerts fire once the batch's later events have been applied, so an earlier
    # reply further on in the batch ends the clock in time instead of retracting a breach
    # fired a moment before (one router transaction: the late message and its reply).
    # Each with the position in the batch's records its alerts go to (before its end's).
    ended: dict[int, tuple[ClockRecord, datetime, int]] = field(default_factory=dict)

    async def bound(self) -> AlertBound | None:
        """None without a hold: nothing waits for the watermark."""
        if self.hold is not None and self._bound is None:
            self._bound = await _alert_bound(self.tx, self.now, self.hold)
        return self._bound


def _copies_case(clock: ClockRecord, case: CaseSnapshot) -> bool:
    """Whether the clock's copy of the case's fields (the ones its policy is selected by)
    is the case's as it is now."""
    kept = (clock.platform, clock.channel, clock.visibility, clock.tags)
    return kept == (case.platform, case.channel, case.visibility, tuple(case.tags))


async def _replace_timers(
    tx: ClockTransaction, clock_id: int, schedule: Schedule, outcome: CommittedChanges
) -> None:
    """The clock's pending timers become those of `schedule`."""
    timers = schedule_timers(schedule)
    await tx.replace_timers(clock_id, timers)
    outcome.timer_added(earliest(timers))


class ClockService:
    """Clocks kept by case events and fired by time, under one policy file."""

    def __init__(self, store: ClockStore, policies: PolicySet) -> None:
        self.store = store
        self.policies = policies

    def _elapsed(self, clock: ClockRecord, until: datetime) -> timedelta:
        calendar = calendar_of(self.policies, clock.calendar_id)
        return elapsed_with_pauses(calendar, clock.started_at, clock.pauses, until)

    async def apply_case_events(
        self, events: Sequence[IncomingCaseEvent], now: datetime, hold: WatermarkHold | None = None
    ) -> CommittedChanges:
        """Apply a batch of case events in one transaction; already processed ids are skipped.

        Events are applied in order, each to the clocks its predecessors left: a batch may
        start, pause and end the same clock. Router watermarks are recorded with them (they
        need no processed marker: recording one twice changes nothing). With `hold`, a clock
        ended by a reply fires only the overdue alerts that `fire_due_timers` would fire now.
        """
        outcome = CommittedChanges()
        if not events:
            return outcome
        async with self.store.transaction() as tx:
            marks = [
                (event.partition, event.watermark)
                for event in events
                if event.watermark is not None and event.partition is not None
            ]
            fresh = await tx.claim(
                [event for event in events if event.watermark is None], lambda event: event.id
            )
            outcome.duplicates = tx.duplicates
            records: Records = []
            moment = _Moment(tx, now, hold)
            # A change touches only its own case's clocks: those of a case not yet changed in
            # this batch are read for all such cases at once; a case's later events read again.
            unchanged = await tx.open_clocks(
                list(dict.fromkeys(e.data.case.id for e in fresh if e.data is not None))
            )
            for event in fresh:
                outcome.applied += 1
                if event.data is None:
                    continue
                case = event.data.case
                stored_clocks = unchanged.pop(case.id, None)
                if stored_clocks is None:
                    stored_clocks = (await tx.open_clocks([case.id]))[case.id]
                if any(not _copies_case(stored.clock, case) for stored in stored_clocks):
                    await tx.copy_case_fields(case)
                open_clocks = [stored.as_open() for stored in stored_clocks]
                answered = []
                if reads_answered(event.type, event.data):
                    answered = await tx.answered_clocks(case.id)
                at = event.time or now
                changes = clock_changes(
                    self.policies, event.type, event.data, open_clocks, at, answered
                )
                for change in changes:
                    await self._apply(tx, change, case, moment, outcome, records)
            await self._fire_ended(moment, outcome, records)
            await tx.record_watermarks(_watermark_rows(marks))
            outcome.watermarks = len(marks)
            await tx.count_attainment(outcome.attainment())
            tx.add_to_outbox(records)
        return outcome

    async def _apply(
        self,
        tx: ClockTransaction,
        change: ClockChange,
        case: CaseSnapshot,
        moment: _Moment,
        outcome: CommittedChanges,
        records: Records,
    ) -> None:
        now = moment.now
        if not isinstance(change, ClockStart | ClockFulfilment | ClockRefulfilment | ClockBackdate):
            await self._fire_ended(moment, outcome, records)  # as before any other change
        if isinstance(change, ClockStart):
            timers = start_timers(change)
            clock = await tx.start(change, case, timers)
            if clock is None:  # this cycle of the clock exists already
                return
            outcome.timer_added(earliest(timers))
            outcome.started.append(clock)
            records.append(alert_record(clock, SLA_CLOCK_STARTED, time=now))
        elif isinstance(change, ClockFulfilment):
            await self._fulfil(tx, change, case, moment, outcome, records)
        elif isinstance(change, ClockRefulfilment):
            await self._refulfil(tx, change, moment, outcome, records)
        elif isinstance(change, ClockBackdate):
            await self._backdate(tx, change, moment, outcome, records)
        elif isinstance(change, CaseAbsorption):
            absorbed = await tx.absorb(change)
            await tx.cancel_timers([ended.clock.id for ended in absorbed])
            for ended in absorbed:
                outcome.recount(ended.clock, ended.counted, None)
                if ended.breached_at is not None:  # the case it fired for was never one
                    await self._retract(tx, ended, now, outcome, records)
        elif isinstance(change, ClockPause):
            paused = await tx.pause(change)
            if paused is None:
                return
            await self._fire_overdue(tx, paused, change.paused_at, now, outcome, records)
            elapsed = self._elapsed(paused, change.paused_at)
            records.append(
                alert_record(
                    paused, SLA_CLOCK_PAUSED, time=now, elapsed=elapsed, at=change.paused_at
                )
            )
        elif isinstance(change, ClockResume):
            resumed = await tx.resume(change)
            if resumed is None:
                return
            await _replace_timers(tx, resumed.id, change.schedule, outcome)
            elapsed = self._elapsed(resumed, change.resumed_at)
            records.append(
                alert_record(
                    resumed, SLA_CLOCK_RESUMED, time=now, elapsed=elapsed, at=change.resumed_at
                )
            )
        else:
            clock_id = await tx.reselect(change)
            if clock_id is not None and change.schedule is not None:
                await _replace_timers(tx, clock_id, change.schedule, outcome)

    async def _fulfil(
        self,
        tx: ClockTransaction,
        fulfilment: ClockFulfilment,
        case: CaseSnapshot,
        moment: _Moment,
        outcome: CommittedChanges,
        records: Records,
    ) -> None:
        at, now = fulfilment.fulfilled_at, moment.now
        ended = await tx.fulfil(fulfilment)
        if ended is None:
            return
        clock = ended.clock
        moment.ended[clock.id] = (clock, at, len(records))
        elapsed = self._elapsed(clock, at)
        if fulfilment.by_reply:
            fulfilled = Fulfilment(clock, at, elapsed, case.assignee)
            outcome.fulfilled.append(fulfilled)
            await tx.record_outcome(clock.id, fulfilled.outcome)
            if retracts_breach(at, ended.breached_at):
                # The reply was sent by the instant its breach fired for (it was processed
                # late): the breach is withdrawn, and the clock counts as met.
                await self._retract(tx, ended, now, outcome, records)
        records.append(alert_record(clock, SLA_CLOCK_FULFILLED, time=now, elapsed=elapsed))

    async def _refulfil(
        self,
        tx: ClockTransaction,
        refulfilment: ClockRefulfilment,
        moment: _Moment,
        outcome: CommittedChanges,
        records: Records,
    ) -> None:
        """An answered clock ends at an earlier reply: its count moves to the outcome of that
        reply, and a breach it disproves is withdrawn. Its `clock_fulfilled` names the new
        end (`at`), so it is not taken for a copy of the first."""
        at, now = refulfilment.fulfilled_at, moment.now
        ended: EndedClock | None = await tx.refulfil(refulfilment)
        if ended is None:  # none ended later: a redelivery, or an older reply than its own
            return
        clock = ended.clock
        await tx.drop_timers(clock.id, at)  # held ones due from its new end on never fire
        if clock.id in moment.ended:  # ended earlier in this batch: its alerts wait for `at`
            moment.ended[clock.id] = (clock, at, moment.ended[clock.id][2])
        elapsed = self._elapsed(clock, at)
        fulfilled = Fulfilment(clock, at, elapsed)
        outcome.recount(clock, ended.counted, fulfilled.outcome)
        await tx.record_outcome(clock.id, fulfilled.outcome)
        if retracts_breach(at, ended.breached_at):
            await self._retract(tx, ended, now, outcome, records)
        records.append(alert_record(clock, SLA_CLOCK_FULFILLED, time=now, elapsed=elapsed, at=at))

    async def _backdate(
        self,
        tx: ClockTransaction,
        backdate: ClockBackdate,
        moment: _Moment,
        outcome: CommittedChanges,
        records: Records,
    ) -> None:
        """An answered clock starts earlier: its timers are those of the new start, its count
        moves to the outcome of its reply against the new due_at, and what that reply now
        passed fires late under the rule of an ended clock's overdue alerts (`_fulfil`): held
        until the watermark passes its instant (at most max_hold, then provisional), so an
        earlier reply read later may still end the clock in time and retract the breach.

        Alerts fired under the old start stay as they were: a warning fraction (or the breach)
        already alerted is not alerted again, and a retraction names a breach by the start it
        fired under. Alerts fired from now on name the new start (their id derives from it).
        Its `clock_fulfilled` carries the new start, so it is not taken for a copy of the
        first."""
        now = moment.now
        ended = await tx.backdate(backdate)
        if ended is None or ended.fulfilled_at is None:  # a redelivery: it starts then already
            return
        clock, at = ended.clock, ended.fulfilled_at
        await _replace_timers(tx, clock.id, backdate.schedule, outcome)
        moment.ended[clock.id] = (clock, at, len(records))
        elapsed = self._elapsed(clock, at)
        fulfilled = Fulfilment(clock, at, elapsed)
        outcome.recount(clock, ended.counted, fulfilled.outcome)
        await tx.record_outcome(clock.id, fulfilled.outcome)
        records.append(alert_record(clock, SLA_CLOCK_FULFILLED, time=now, elapsed=elapsed, at=at))

    async def _fire_ended(
        self, moment: _Moment, outcome: CommittedChanges, records: Records
    ) -> None:
        """The overdue alerts of the clocks ended so far in the batch, each up to its end."""
        ended = sorted(moment.ended.values(), key=lambda entry: entry[2], reverse=True)
        moment.ended.clear()
        for clock, at, position in ended:  # the last first: an insertion moves only later ones
            bound = await moment.bound()
            fired: Records = []
            await self._fire_overdue(moment.tx, clock, at, moment.now, outcome, fired, bound)
            records[position:position] = fired

    async def _retract(
        self,
        tx: ClockTransaction,
        ended: EndedClock,
        now: datetime,
        outcome: CommittedChanges,
        records: Records,
    ) -> None:
        """The breach fired for the clock withdrawn, named by the id it fired with."""
        clock = ended.clock
        await tx.clear_breach(clock.id)
        outcome.retracted.append(clock)
        records.append(
            alert_record(
                clock,
                SLA_BREACH_RETRACTED,
                time=now,
                fraction=BREACH,
                retracted_alert_id=alert_event_id(ended.breach_id_clock, SLA_BREACHED, BREACH),
            )
        )

    async def _fire_overdue(
        self,
        tx: ClockTransaction,
        clock: ClockRecord,
        until: datetime,
        now: datetime,
        outcome: CommittedChanges,
        records: Records,
        bound: AlertBound | None = None,
    ) -> None:
        """Fire, late, the timers due by `until` that had not fired when the clock stopped.

        A reply or pause that came after a warning or the breach instant, but was read before
        the timer fired (consumer lag), does not erase it. With `bound` (a clock ended), those
        the watermark has not passed stay pending, held like a running clock's: an earlier
        reply read later may still prove them wrong.
        """
        fires_until = None if bound is None else bound.fires_until
        overdue = sorted(
            await tx.stop_timers(clock.id, until, now, fires_until),
            key=lambda timer: timer.fire_at,
        )
        if any(timer.is_breach for timer in overdue):
            await tx.mark_breached([clock.id])
        for timer in overdue:
            fired = FiredAlert(
                clock,
                timer.kind,
                timer.fraction,
                fired_late(timer.fire_at, now),
                provisional=bound is not None and bound.provisional(timer.fire_at),
            )
            outcome.fired.append(fired)
            records.append(self._alert(fired, now, until=until))

    def _alert(
        self, fired: FiredAlert, now: datetime, *, until: datetime
    ) -> tuple[str, EventRecord]:
        """A warning or breach; `elapsed` is the open time the clock had run by `until`."""
        return alert_record(
            fired.clock,
            SLA_BREACHED if fired.kind == "breach" else SLA_WARNING,
            time=now,
            fraction=fired.fraction,
            late=fired.late,
            provisional=fired.provisional,
            elapsed=self._elapsed(fired.clock, until),
        )

    async def fire_due_timers(
        self, now: datetime, limit: int, hold: WatermarkHold | None = None
    ) -> list[FiredAlert]:
        """Fire timers due by `now` of running clocks; replicas never fire the same timer twice.

        With `hold`, a timer fires only once the router's low watermark has passed its instant
        (every message received before it has been processed and its events read), or, at
        the latest, `max_hold` after its instant, then marked provisional.
        """
        async with self.store.transaction() as tx:
            bound = await _alert_bound(tx, now, hold)
            due = await tx.claim_due_timers(bound.fires_until, limit)
            if not due:
                return []
            await tx.mark_fired([timer.id for timer in due], now)
            breached = [timer.clock.id for timer in due if timer.timer.is_breach]
            if breached:
                await tx.mark_breached(breached)
            fired = [
                FiredAlert(
                    timer.clock,
                    timer.timer.kind,
                    timer.timer.fraction,
                    fired_late(timer.timer.fire_at, now),
                    provisional=bound.provisional(timer.timer.fire_at),
                )
                for timer in due
            ]
            tx.add_to_outbox(
                [
                    self._alert(alert, now, until=timer.ended_at or now)
                    for alert, timer in zip(fired, due, strict=True)
                ]
            )
        return fired

    async def low_watermark(self, hold: WatermarkHold) -> datetime | None:
        return low_watermark(
            await self.store.watermark_coverage(hold.topic, hold.case_partitions), hold
        )

    async def next_fire_at(self) -> datetime | None:
        return await self.store.next_fire_at()

    async def clock_stats(self) -> ClockStats:
        return await self.store.clock_stats()

    async def attainment(self) -> dict[tuple[str, str, str], int]:
        return await self.store.attainment()

    async def recompute(self, *, apply: bool) -> list[Recomputed]:
        """Every open clock re-derived under the policy file; with `apply`, written back with
        its unfired timers rewritten, all in one transaction (the rows stay locked meanwhile)."""
        async with self.store.transaction() as tx:
            results: list[Recomputed] = []
            for stored in await tx.lock_open_clocks():
                result, timers = self._rederive(stored)
                results.append(result)
                if apply:  # unchanged ones too: a warn_at change moves only warnings
                    await tx.move_clock(
                        result.clock.id,
                        result.policy_id,
                        result.calendar_id,
                        result.target_seconds,
                        result.due_at,
                    )
                    if timers is not None:  # paused: no pending timers until it resumes
                        await tx.replace_timers(result.clock.id, schedule_timers(timers))
        return results

    def _rederive(self, stored: StoredClock) -> tuple[Recomputed, Schedule | None]:
        clock = stored.clock
        case = None
        if clock.platform and clock.channel and clock.visibility and clock.tags is not None:
            case = StoredCase(
                clock.priority,
                clock.team,
                clock.platform,
                clock.channel,
                clock.visibility,
                clock.tags,
            )
        moved, timers = rederive(self.policies, case, stored.as_open())
        result = Recomputed(
            clock=clock,
            policy_id=moved.policy_id,
            calendar_id=moved.calendar_id,
            target_seconds=target_seconds(moved.target),
            due_at=None if timers is None else timers.due_at,
            case_known=case is not None,
        )
        return result, timers
