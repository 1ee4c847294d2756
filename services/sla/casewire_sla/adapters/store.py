"""The `sla` schema in PostgreSQL: clocks, their timers, processed case events, the outbox.

Every change is written with the alerts it causes (outbox rows) in one transaction, so an
alert is published if and only if the change committed; a case event is applied once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from casewire_common.events import (
    SLA_BREACHED,
    SLA_CLOCK_FULFILLED,
    SLA_CLOCK_PAUSED,
    SLA_CLOCK_RESUMED,
    SLA_CLOCK_STARTED,
    SLA_WARNING,
    CaseEventData,
    CaseSnapshot,
    EventRecord,
)
from casewire_common.outbox import add_to_outbox
from casewire_common.pg import create_pool
from casewire_common.unit_of_work import unit_of_work

from casewire_sla.adapters.alerts import LATE_AFTER, ClockRecord, alert_record
from casewire_sla.domain.calendars import Pause, elapsed_with_pauses
from casewire_sla.domain.clocks import (
    BREACH,
    ClockChange,
    ClockFulfilment,
    ClockPause,
    ClockReselection,
    ClockResume,
    ClockStart,
    OpenClock,
    Schedule,
    calendar_of,
    clock_changes,
    rederive,
)
from casewire_sla.domain.policies import PolicySet

SCHEMA = "sla"
# What a pool hands out: a proxy to a connection, used like one.
Connection = asyncpg.Connection | PoolConnectionProxy
MIGRATIONS = "casewire_sla.adapters.migrations"

_CLOCK_COLUMNS = (
    "c.id, c.case_id, c.clock, c.policy_id, c.calendar_id, c.target_seconds,"
    " c.started_at, c.due_at, c.team, c.priority, c.pause_starts, c.pause_ends,"
    " c.platform, c.channel, c.visibility, c.tags, c.additive"
)


@dataclass(frozen=True)
class CaseEvent:
    """A decoded case event: its CloudEvent id and type, its data when this service uses it,
    and its `time` (when it happened; the instant a clock starts or stops on it)."""

    id: str
    type: str
    data: CaseEventData | None
    time: datetime | None = None


@dataclass(frozen=True)
class FiredAlert:
    clock: ClockRecord
    kind: str  # "warning" or "breach"
    fraction: float
    late: bool


@dataclass(frozen=True)
class Fulfilment:
    """A clock ended by what it waited for, with the open time it had counted (pauses out)."""

    clock: ClockRecord
    at: datetime
    business: timedelta

    @property
    def calendar(self) -> timedelta:
        """Wall-clock time from the clock's start to its end, pauses and closed hours in."""
        return max(timedelta(0), self.at - self.clock.started_at)


@dataclass(frozen=True)
class ClockStats:
    """Open clocks by clock name, and the earliest due_at among those running unbreached."""

    open: dict[str, int]
    earliest_due: dict[str, datetime]


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


@dataclass
class BatchOutcome:
    """What a committed batch changed: for metrics and to wake the timer scheduler."""

    applied: int = 0
    duplicates: int = 0
    started: list[ClockRecord] = field(default_factory=list)
    # Clocks ended by what they waited for (not response clocks ended by a resolution).
    fulfilled: list[Fulfilment] = field(default_factory=list)
    fired: list[FiredAlert] = field(default_factory=list)
    earliest_timer: datetime | None = None


def _clock(row: asyncpg.Record) -> ClockRecord:
    return ClockRecord(
        id=row["id"],
        case_id=row["case_id"],
        clock=row["clock"],
        policy_id=row["policy_id"],
        calendar_id=row["calendar_id"],
        target_seconds=row["target_seconds"],
        started_at=row["started_at"],
        due_at=row["due_at"],
        team=row["team"],
        priority=row["priority"],
        pauses=tuple(
            Pause(b, e) for b, e in zip(row["pause_starts"], row["pause_ends"], strict=True)
        ),
        platform=row["platform"],
        channel=row["channel"],
        visibility=row["visibility"],
        tags=None if row["tags"] is None else tuple(row["tags"]),
        additive=row["additive"],
    )


def _slot(additive_policy: str | None) -> str:
    """The `slot` column of a clock on this track: '' for the contract's."""
    return additive_policy or ""


def _snapshot_of(case: CaseSnapshot) -> tuple[str, str, str, tuple[str, ...]]:
    return case.platform, case.channel, case.visibility, tuple(case.tags)


def _has_snapshot(clock: ClockRecord, case: CaseSnapshot) -> bool:
    return (clock.platform, clock.channel, clock.visibility, clock.tags) == _snapshot_of(case)


class SlaStore:
    """All of the service's SQL. Open it before use; the pool lives as long as the service."""

    def __init__(self, dsn: str, *, pool_size: int = 10) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool | None:
        return self._pool

    async def open(self) -> None:
        self._pool = await create_pool(self._dsn, min_size=1, max_size=self._pool_size)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("SlaStore is not open")
        return self._pool

    def _elapsed(self, policies: PolicySet, clock: ClockRecord, until: datetime) -> timedelta:
        calendar = calendar_of(policies, clock.calendar_id)
        return elapsed_with_pauses(calendar, clock.started_at, clock.pauses, until)

    async def apply_case_events(
        self, events: Sequence[CaseEvent], policies: PolicySet, now: datetime
    ) -> BatchOutcome:
        """Apply a batch of case events in one transaction; already processed ids are skipped.

        Events are applied in order, each to the clocks its predecessors left: a batch may
        start, pause and end the same clock.
        """
        outcome = BatchOutcome()
        if not events:
            return outcome
        async with (
            self._require_pool().acquire() as connection,
            unit_of_work(connection, SCHEMA) as work,
        ):
            fresh = await work.claim(events, lambda event: event.id)
            outcome.duplicates = work.duplicates  # redelivered, or twice in one batch
            records: list[tuple[str, EventRecord]] = []
            for event in fresh:
                outcome.applied += 1
                if event.data is None:
                    continue
                case = event.data.case
                open_clocks = await self._open_clocks(connection, case)
                at = event.time or now
                for change in clock_changes(policies, event.type, event.data, open_clocks, at):
                    await self._apply(connection, change, case, policies, now, outcome, records)
            work.add_events(records)
        return outcome

    async def _open_clocks(self, connection: Connection, case: CaseSnapshot) -> list[OpenClock]:
        """The case's open clocks; their copy of the case's fields is brought up to date."""
        rows = await connection.fetch(
            f"SELECT {_CLOCK_COLUMNS}, coalesce(array_agg(t.fraction)"
            " FILTER (WHERE t.fired_at IS NOT NULL), '{}') AS fired"
            f" FROM {SCHEMA}.clocks AS c LEFT JOIN {SCHEMA}.timers AS t ON t.clock_id = c.id"
            f" WHERE c.case_id = $1 AND c.status IN ('running', 'paused') GROUP BY c.id",
            case.id,
        )
        if any(not _has_snapshot(_clock(row), case) for row in rows):
            platform, channel, visibility, tags = _snapshot_of(case)
            await connection.execute(
                f"UPDATE {SCHEMA}.clocks SET platform = $2, channel = $3, visibility = $4,"
                " tags = $5 WHERE case_id = $1 AND status IN ('running', 'paused')",
                case.id,
                platform,
                channel,
                visibility,
                list(tags),
            )
        return [
            OpenClock(
                clock=clock.clock,
                policy_id=clock.policy_id,
                calendar_id=clock.calendar_id,
                target=timedelta(seconds=clock.target_seconds),
                started_at=clock.started_at,
                team=clock.team,
                priority=clock.priority,
                pauses=clock.pauses,
                fired=frozenset(row["fired"]),
                additive=clock.additive,
            )
            for row in rows
            for clock in [_clock(row)]
        ]

    async def _apply(
        self,
        connection: Connection,
        change: ClockChange,
        case: CaseSnapshot,
        policies: PolicySet,
        now: datetime,
        outcome: BatchOutcome,
        records: list[tuple[str, EventRecord]],
    ) -> None:
        if isinstance(change, ClockStart):
            await self._start(connection, change, case, now, outcome, records)
        elif isinstance(change, ClockFulfilment):
            await self._fulfil(connection, change, policies, now, outcome, records)
        elif isinstance(change, ClockPause):
            await self._pause(connection, change, policies, now, outcome, records)
        elif isinstance(change, ClockResume):
            await self._resume(connection, change, policies, now, outcome, records)
        else:
            await self._reselect(connection, change, outcome)

    async def _start(
        self,
        connection: Connection,
        start: ClockStart,
        case: CaseSnapshot,
        now: datetime,
        outcome: BatchOutcome,
        records: list[tuple[str, EventRecord]],
    ) -> None:
        row = await connection.fetchrow(
            f"INSERT INTO {SCHEMA}.clocks AS c (case_id, clock, policy_id, calendar_id,"
            " target_seconds, started_at, due_at, team, priority,"
            " platform, channel, visibility, tags, additive)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            f" ON CONFLICT DO NOTHING RETURNING {_CLOCK_COLUMNS}",
            start.case_id,
            start.clock,
            start.policy_id,
            start.calendar_id,
            max(1, round(start.target.total_seconds())),
            start.started_at,
            start.due_at,
            start.team,
            start.priority,
            case.platform,
            case.channel,
            case.visibility,
            list(case.tags),
            start.additive,
        )
        if row is None:  # this cycle of the clock exists already
            return
        clock = _clock(row)
        await self._add_timers(connection, clock.id, start.warnings, start.due_at, outcome)
        outcome.started.append(clock)
        records.append(alert_record(clock, SLA_CLOCK_STARTED, time=now))

    async def _add_timers(
        self,
        connection: Connection,
        clock_id: int,
        warnings: Sequence[tuple[float, datetime]],
        breach_at: datetime | None,
        outcome: BatchOutcome,
    ) -> None:
        timers = [("warning", fraction, at) for fraction, at in warnings]
        if breach_at is not None:
            timers.append(("breach", BREACH, breach_at))
        if not timers:
            return
        await connection.execute(
            f"INSERT INTO {SCHEMA}.timers (clock_id, kind, fraction, fire_at)"
            " SELECT $1, * FROM unnest($2::text[], $3::float8[], $4::timestamptz[])",
            clock_id,
            [timer[0] for timer in timers],
            [timer[1] for timer in timers],
            [timer[2] for timer in timers],
        )
        earliest = min(timer[2] for timer in timers)
        if outcome.earliest_timer is None or earliest < outcome.earliest_timer:
            outcome.earliest_timer = earliest

    async def _fire_overdue(
        self,
        connection: Connection,
        clock: ClockRecord,
        until: datetime,
        policies: PolicySet,
        now: datetime,
        outcome: BatchOutcome,
        records: list[tuple[str, EventRecord]],
    ) -> None:
        """Fire, late, the timers due by `until` that had not fired when the clock stopped.

        A reply or pause that came after a warning or the breach instant, but was read before
        the timer fired (consumer lag), does not erase it.
        """
        overdue = await connection.fetch(
            f"UPDATE {SCHEMA}.timers SET fired_at = $3"
            " WHERE clock_id = $1 AND fired_at IS NULL AND fire_at <= $2"
            " RETURNING kind, fraction, fire_at",
            clock.id,
            until,
            now,
        )
        for timer in sorted(overdue, key=lambda row: row["fire_at"]):
            fired = FiredAlert(
                clock, timer["kind"], timer["fraction"], now - timer["fire_at"] > LATE_AFTER
            )
            outcome.fired.append(fired)
            records.append(self._alert(policies, fired, now, until=until))
        if any(timer["kind"] == "breach" for timer in overdue):
            await connection.execute(
                f"UPDATE {SCHEMA}.clocks SET breached_at = due_at WHERE id = $1", clock.id
            )
        await connection.execute(
            f"DELETE FROM {SCHEMA}.timers WHERE clock_id = $1 AND fired_at IS NULL", clock.id
        )

    async def _fulfil(
        self,
        connection: Connection,
        fulfilment: ClockFulfilment,
        policies: PolicySet,
        now: datetime,
        outcome: BatchOutcome,
        records: list[tuple[str, EventRecord]],
    ) -> None:
        at = fulfilment.fulfilled_at
        row = await connection.fetchrow(
            f"UPDATE {SCHEMA}.clocks AS c SET status = 'fulfilled', fulfilled_at = $3,"
            " pause_ends = CASE WHEN status = 'paused'"
            " THEN pause_ends[1:cardinality(pause_ends) - 1] || $3::timestamptz"
            " ELSE pause_ends END"
            " WHERE case_id = $1 AND clock = $2 AND slot = $4 AND status IN ('running', 'paused')"
            f" RETURNING {_CLOCK_COLUMNS}",
            fulfilment.case_id,
            fulfilment.clock,
            at,
            _slot(fulfilment.additive_policy),
        )
        if row is None:
            return
        clock = _clock(row)
        await self._fire_overdue(connection, clock, at, policies, now, outcome, records)
        elapsed = self._elapsed(policies, clock, at)
        if fulfilment.by_reply:
            outcome.fulfilled.append(Fulfilment(clock, at, elapsed))
        records.append(alert_record(clock, SLA_CLOCK_FULFILLED, time=now, elapsed=elapsed))

    async def _pause(
        self,
        connection: Connection,
        pause: ClockPause,
        policies: PolicySet,
        now: datetime,
        outcome: BatchOutcome,
        records: list[tuple[str, EventRecord]],
    ) -> None:
        at = pause.paused_at
        row = await connection.fetchrow(
            f"UPDATE {SCHEMA}.clocks AS c SET status = 'paused',"
            " pause_starts = array_append(pause_starts, $3::timestamptz),"
            " pause_ends = array_append(pause_ends, NULL::timestamptz)"
            " WHERE case_id = $1 AND clock = $2 AND slot = $4 AND status = 'running'"
            f" RETURNING {_CLOCK_COLUMNS}",
            pause.case_id,
            pause.clock,
            at,
            _slot(pause.additive_policy),
        )
        if row is None:
            return
        clock = _clock(row)
        await self._fire_overdue(connection, clock, at, policies, now, outcome, records)
        elapsed = self._elapsed(policies, clock, at)
        records.append(alert_record(clock, SLA_CLOCK_PAUSED, time=now, elapsed=elapsed, at=at))

    async def _resume(
        self,
        connection: Connection,
        resume: ClockResume,
        policies: PolicySet,
        now: datetime,
        outcome: BatchOutcome,
        records: list[tuple[str, EventRecord]],
    ) -> None:
        at, timers = resume.resumed_at, resume.schedule
        row = await connection.fetchrow(
            f"UPDATE {SCHEMA}.clocks AS c SET status = 'running', due_at = $4,"
            " pause_ends[cardinality(pause_ends)] = $3"
            " WHERE case_id = $1 AND clock = $2 AND slot = $5 AND status = 'paused'"
            f" RETURNING {_CLOCK_COLUMNS}",
            resume.case_id,
            resume.clock,
            at,
            timers.due_at,
            _slot(resume.additive_policy),
        )
        if row is None:
            return
        clock = _clock(row)
        breach_at = timers.due_at if timers.breach else None
        await self._add_timers(connection, clock.id, timers.warnings, breach_at, outcome)
        elapsed = self._elapsed(policies, clock, at)
        records.append(alert_record(clock, SLA_CLOCK_RESUMED, time=now, elapsed=elapsed, at=at))

    async def _reselect(
        self, connection: Connection, reselection: ClockReselection, outcome: BatchOutcome
    ) -> None:
        timers = reselection.schedule
        clock_id = await connection.fetchval(
            f"UPDATE {SCHEMA}.clocks SET policy_id = $3, calendar_id = $4, target_seconds = $5,"
            " team = $6, priority = $7, due_at = coalesce($8, due_at)"
            " WHERE case_id = $1 AND clock = $2 AND slot = $9 AND status IN ('running', 'paused')"
            " RETURNING id",
            reselection.case_id,
            reselection.clock,
            reselection.policy_id,
            reselection.calendar_id,
            max(1, round(reselection.target.total_seconds())),
            reselection.team,
            reselection.priority,
            None if timers is None else timers.due_at,
            _slot(reselection.additive_policy),
        )
        if clock_id is None or timers is None:
            return
        await connection.execute(
            f"DELETE FROM {SCHEMA}.timers WHERE clock_id = $1 AND fired_at IS NULL", clock_id
        )
        breach_at = timers.due_at if timers.breach else None
        await self._add_timers(connection, clock_id, timers.warnings, breach_at, outcome)

    def _alert(
        self, policies: PolicySet, fired: FiredAlert, now: datetime, *, until: datetime
    ) -> tuple[str, EventRecord]:
        """A warning or breach; `elapsed` is the open time the clock had run by `until`."""
        return alert_record(
            fired.clock,
            SLA_BREACHED if fired.kind == "breach" else SLA_WARNING,
            time=now,
            fraction=fired.fraction,
            late=fired.late,
            elapsed=self._elapsed(policies, fired.clock, until),
        )

    async def fire_due_timers(
        self, policies: PolicySet, now: datetime, limit: int
    ) -> list[FiredAlert]:
        """Fire timers due by `now` of running clocks; replicas never fire the same timer twice."""
        async with self._require_pool().acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                f"SELECT t.id AS timer_id, t.kind, t.fraction, t.fire_at, {_CLOCK_COLUMNS}"
                f" FROM {SCHEMA}.timers AS t JOIN {SCHEMA}.clocks AS c ON c.id = t.clock_id"
                " WHERE t.fired_at IS NULL AND t.fire_at <= $1 AND c.status = 'running'"
                " ORDER BY t.fire_at LIMIT $2"
                " FOR UPDATE OF t SKIP LOCKED",
                now,
                limit,
            )
            if not rows:
                return []
            await connection.execute(
                f"UPDATE {SCHEMA}.timers SET fired_at = $2 WHERE id = ANY($1::bigint[])",
                [row["timer_id"] for row in rows],
                now,
            )
            breached = [row["id"] for row in rows if row["kind"] == "breach"]
            if breached:
                await connection.execute(
                    f"UPDATE {SCHEMA}.clocks SET breached_at = due_at WHERE id = ANY($1::bigint[])",
                    breached,
                )
            fired = [
                FiredAlert(
                    _clock(row), row["kind"], row["fraction"], now - row["fire_at"] > LATE_AFTER
                )
                for row in rows
            ]
            await add_to_outbox(
                connection,
                SCHEMA,
                [self._alert(policies, alert, now, until=now) for alert in fired],
            )
        return fired

    async def recompute(self, policies: PolicySet, *, apply: bool) -> list[Recomputed]:
        """Every open clock re-derived under `policies`; with `apply`, written back with its
        unfired timers rewritten, all in one transaction (the rows stay locked meanwhile)."""
        async with self._require_pool().acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                f"SELECT {_CLOCK_COLUMNS}, coalesce(array(SELECT t.fraction FROM {SCHEMA}.timers"
                " AS t WHERE t.clock_id = c.id AND t.fired_at IS NOT NULL), '{}') AS fired"
                f" FROM {SCHEMA}.clocks AS c WHERE c.status IN ('running', 'paused')"
                " ORDER BY c.id FOR UPDATE OF c"
            )
            results: list[Recomputed] = []
            for row in rows:
                result, timers = self._rederive(policies, _clock(row), frozenset(row["fired"]))
                results.append(result)
                if apply:  # unchanged ones too: a warn_at change moves only warnings
                    await self._write_recomputed(connection, result, timers)
        return results

    @staticmethod
    def _rederive(
        policies: PolicySet, clock: ClockRecord, fired: frozenset[float]
    ) -> tuple[Recomputed, Schedule | None]:
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
        current = OpenClock(
            clock=clock.clock,
            policy_id=clock.policy_id,
            calendar_id=clock.calendar_id,
            target=timedelta(seconds=clock.target_seconds),
            started_at=clock.started_at,
            team=clock.team,
            priority=clock.priority,
            pauses=clock.pauses,
            fired=fired,
            additive=clock.additive,
        )
        moved, timers = rederive(policies, case, current)
        result = Recomputed(
            clock=clock,
            policy_id=moved.policy_id,
            calendar_id=moved.calendar_id,
            target_seconds=max(1, round(moved.target.total_seconds())),
            due_at=None if timers is None else timers.due_at,
            case_known=case is not None,
        )
        return result, timers

    async def _write_recomputed(
        self, connection: Connection, result: Recomputed, timers: Schedule | None
    ) -> None:
        await connection.execute(
            f"UPDATE {SCHEMA}.clocks SET policy_id = $2, calendar_id = $3, target_seconds = $4,"
            " due_at = coalesce($5, due_at) WHERE id = $1",
            result.clock.id,
            result.policy_id,
            result.calendar_id,
            result.target_seconds,
            result.due_at,
        )
        if timers is None:  # paused: no pending timers until it resumes
            return
        await connection.execute(
            f"DELETE FROM {SCHEMA}.timers WHERE clock_id = $1 AND fired_at IS NULL",
            result.clock.id,
        )
        breach_at = timers.due_at if timers.breach else None
        await self._add_timers(
            connection, result.clock.id, timers.warnings, breach_at, BatchOutcome()
        )

    async def next_fire_at(self) -> datetime | None:
        """The instant of the earliest timer not fired yet, written by any replica."""
        pool = self._require_pool()
        value: datetime | None = await pool.fetchval(
            f"SELECT min(fire_at) FROM {SCHEMA}.timers WHERE fired_at IS NULL"
        )
        return value

    async def open_clocks(self) -> dict[str, int]:
        """Open (running or paused) clocks by clock name; a breached clock runs until it ends."""
        return (await self.clock_stats()).open

    async def clock_stats(self) -> ClockStats:
        """Open clocks by name, and the next due_at of running clocks not breached yet."""
        rows = await self._require_pool().fetch(
            f"SELECT clock, count(*) AS n, min(due_at) FILTER"
            " (WHERE status = 'running' AND breached_at IS NULL) AS earliest_due"
            f" FROM {SCHEMA}.clocks WHERE status IN ('running', 'paused') GROUP BY clock"
        )
        return ClockStats(
            open={row["clock"]: row["n"] for row in rows},
            earliest_due={
                row["clock"]: row["earliest_due"] for row in rows if row["earliest_due"] is not None
            },
        )

    async def outbox_backlog(self) -> int:
        """Alerts committed but not yet published by the relay."""
        count: int = await self._require_pool().fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox")
        return count
