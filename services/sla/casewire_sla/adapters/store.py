"""The `sla` schema in PostgreSQL: clocks, their timers, the router's watermarks, attainment,
processed case events and the outbox (`PostgresClockStore`, the service's `ClockStore`). SQL
only: what to change - which clocks start or end, which timers a clock has, when a fired
timer breaches it, which timers go when it stops - and which alerts that makes, is the
service's decision (`casewire_sla.clock_service`, `casewire_sla.domain`).

Every change of one transaction (`PostgresClockStore.transaction`, a
`casewire_common.unit_of_work`) commits with the alerts it causes (outbox rows) and the
processed markers of its case events, or not at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from casewire_common.events import CaseSnapshot, EventRecord
from casewire_common.pg import create_pool, pending_migrations
from casewire_common.unit_of_work import UnitOfWork, unit_of_work

from casewire_sla.clock_service import (
    ClockStats,
    DueTimer,
    EndedClock,
    StoredClock,
    WatermarkRow,
)
from casewire_sla.domain.calendars import Pause
from casewire_sla.domain.clock_record import ClockRecord
from casewire_sla.domain.clocks import (
    AnsweredClock,
    CaseAbsorption,
    ClockBackdate,
    ClockFulfilment,
    ClockPause,
    ClockRefulfilment,
    ClockReselection,
    ClockResume,
    ClockStart,
)
from casewire_sla.domain.holding import WatermarkCoverage
from casewire_sla.domain.timers import Timer

SCHEMA = "sla"
Input = TypeVar("Input")
# What a pool hands out: a proxy to a connection, used like one.
Connection = asyncpg.Connection | PoolConnectionProxy
MIGRATIONS = "casewire_sla.adapters.migrations"
# Every statement of the service reads or writes a few rows by index. On tables not analyzed
# yet (just loaded or restored, before autovacuum's first analyze), the planner's default
# estimates make some of them look large: then it forked parallel workers (answered clocks:
# 7-15 ms instead of 0.2 at 1,000,000 open clocks) or JIT-compiled them (up to 0.36 s), per
# case event.
SESSION_SETTINGS = {"jit": "off", "max_parallel_workers_per_gather": "0"}

_CLOCK_COLUMNS = (
    "c.id, c.case_id, c.clock, c.policy_id, c.calendar_id, c.target_seconds,"
    " c.started_at, c.due_at, c.team, c.priority, c.pause_starts, c.pause_ends,"
    " c.platform, c.channel, c.visibility, c.tags, c.additive"
)
# What a decision about a clock `c` needs beyond its columns: the fractions it alerted, and
# whether it is the first clock of its name on its track (none started before it).
_DECISION_COLUMNS = (
    f"array(SELECT t.fraction FROM {SCHEMA}.timers AS t"
    " WHERE t.clock_id = c.id AND t.fired_at IS NOT NULL) AS fired,"
    f" NOT EXISTS (SELECT 1 FROM {SCHEMA}.clocks AS cycle WHERE cycle.case_id = c.case_id"
    " AND cycle.clock = c.clock AND cycle.slot = c.slot AND cycle.started_at < c.started_at)"
    " AS first_cycle"
)


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


def _stored(row: asyncpg.Record) -> StoredClock:
    return StoredClock(_clock(row), frozenset(row["fired"]), row["first_cycle"])


def _ended(row: asyncpg.Record) -> EndedClock:
    """An ended clock from a row with its breach columns, and `counted` (the outcome it was
    counted with) and `fulfilled_at` where the statement returns them."""
    return EndedClock(
        _clock(row),
        row["breached_at"],
        row.get("counted"),
        row["breach_started_at"],
        row.get("fulfilled_at"),
    )


def _slot(additive_policy: str | None) -> str:
    """The `slot` column of a clock on this track: '' for the contract's."""
    return additive_policy or ""


def _tags(case: CaseSnapshot) -> list[str]:
    return list(case.tags)


class PostgresClockTransaction:
    """The statements of one unit of work, on its connection (`clock_service.ClockTransaction`)."""

    def __init__(self, work: UnitOfWork) -> None:
        self._work = work
        self._connection = work.connection

    async def claim(self, inputs: Sequence[Input], key: Callable[[Input], str]) -> list[Input]:
        """Processed markers for these inputs; returns, in order, those not processed before."""
        return await self._work.claim(inputs, key)

    @property
    def duplicates(self) -> int:
        """Inputs claimed before (redelivery), or twice in one batch."""
        return self._work.duplicates

    async def open_clocks(self, case_ids: Sequence[str]) -> dict[str, list[StoredClock]]:
        if not case_ids:  # a batch of watermarks only
            return {}
        rows = await self._connection.fetch(
            f"SELECT {_CLOCK_COLUMNS}, {_DECISION_COLUMNS} FROM {SCHEMA}.clocks AS c"
            " WHERE c.case_id = ANY($1::text[]) AND c.status IN ('running', 'paused')",
            list(case_ids),
        )
        clocks: dict[str, list[StoredClock]] = {case_id: [] for case_id in case_ids}
        for row in rows:
            clocks[row["case_id"]].append(_stored(row))
        return clocks

    async def copy_case_fields(self, case: CaseSnapshot) -> None:
        await self._connection.execute(
            f"UPDATE {SCHEMA}.clocks SET platform = $2, channel = $3, visibility = $4,"
            " tags = $5 WHERE case_id = $1 AND status IN ('running', 'paused')",
            case.id,
            case.platform,
            case.channel,
            case.visibility,
            _tags(case),
        )

    async def start(
        self, start: ClockStart, case: CaseSnapshot, timers: Sequence[Timer]
    ) -> ClockRecord | None:
        """A new clock with its timers, in one statement; None when this cycle of it exists
        already (and no timer is added)."""
        row = await self._connection.fetchrow(
            f"WITH c AS (INSERT INTO {SCHEMA}.clocks AS c (case_id, clock, policy_id,"
            " calendar_id, target_seconds, started_at, due_at, team, priority,"
            " platform, channel, visibility, tags, additive)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            f" ON CONFLICT DO NOTHING RETURNING {_CLOCK_COLUMNS}),"
            f" timers AS (INSERT INTO {SCHEMA}.timers (clock_id, kind, fraction, fire_at)"
            " SELECT c.id, t.* FROM c,"
            " unnest($15::text[], $16::float8[], $17::timestamptz[]) AS t)"
            " SELECT * FROM c",
            start.case_id,
            start.clock,
            start.policy_id,
            start.calendar_id,
            start.target_seconds,
            start.started_at,
            start.due_at,
            start.team,
            start.priority,
            case.platform,
            case.channel,
            case.visibility,
            _tags(case),
            start.additive,
            [timer.kind for timer in timers],
            [timer.fraction for timer in timers],
            [timer.fire_at for timer in timers],
        )
        return None if row is None else _clock(row)

    async def _add_timers(self, clock_id: int, timers: Sequence[Timer]) -> None:
        if not timers:
            return
        await self._connection.execute(
            f"INSERT INTO {SCHEMA}.timers (clock_id, kind, fraction, fire_at)"
            " SELECT $1, * FROM unnest($2::text[], $3::float8[], $4::timestamptz[])",
            clock_id,
            [timer.kind for timer in timers],
            [timer.fraction for timer in timers],
            [timer.fire_at for timer in timers],
        )

    async def replace_timers(self, clock_id: int, timers: Sequence[Timer]) -> None:
        await self._connection.execute(
            f"DELETE FROM {SCHEMA}.timers WHERE clock_id = $1 AND fired_at IS NULL", clock_id
        )
        await self._add_timers(clock_id, timers)

    async def stop_timers(
        self, clock_id: int, until: datetime, now: datetime, up_to: datetime | None = None
    ) -> list[Timer]:
        # Strictly before: a reply at the very instant of a deadline is in time. The two parts
        # touch disjoint timers (due before `until`, due from it on), so one statement does.
        rows = await self._connection.fetch(
            f"WITH dropped AS (DELETE FROM {SCHEMA}.timers WHERE clock_id = $1"
            " AND fired_at IS NULL AND fire_at >= $2)"
            f" UPDATE {SCHEMA}.timers SET fired_at = $3"
            " WHERE clock_id = $1 AND fired_at IS NULL AND fire_at < $2"
            " AND ($4::timestamptz IS NULL OR fire_at <= $4)"
            " RETURNING kind, fraction, fire_at",
            clock_id,
            until,
            now,
            up_to,
        )
        return [Timer(row["kind"], row["fraction"], row["fire_at"]) for row in rows]

    async def drop_timers(self, clock_id: int, since: datetime) -> None:
        await self._connection.execute(
            f"DELETE FROM {SCHEMA}.timers WHERE clock_id = $1 AND fired_at IS NULL"
            " AND fire_at >= $2",
            clock_id,
            since,
        )

    async def cancel_timers(self, clock_ids: Sequence[int]) -> None:
        await self._connection.execute(
            f"DELETE FROM {SCHEMA}.timers WHERE clock_id = ANY($1::bigint[]) AND fired_at IS NULL",
            list(clock_ids),
        )

    async def mark_breached(self, clock_ids: Sequence[int]) -> None:
        await self._connection.execute(
            f"UPDATE {SCHEMA}.clocks SET breached_at = due_at WHERE id = ANY($1::bigint[])",
            list(clock_ids),
        )

    async def fulfil(self, fulfilment: ClockFulfilment) -> EndedClock | None:
        at = fulfilment.fulfilled_at
        row = await self._connection.fetchrow(
            f"UPDATE {SCHEMA}.clocks AS c SET status = 'fulfilled', fulfilled_at = $3,"
            " pause_ends = CASE WHEN status = 'paused'"
            " THEN pause_ends[1:cardinality(pause_ends) - 1] || $3::timestamptz"
            " ELSE pause_ends END"
            " WHERE case_id = $1 AND clock = $2 AND slot = $4 AND status IN ('running', 'paused')"
            f" RETURNING {_CLOCK_COLUMNS}, c.breached_at, c.breach_started_at",
            fulfilment.case_id,
            fulfilment.clock,
            at,
            _slot(fulfilment.additive_policy),
        )
        return None if row is None else _ended(row)

    async def record_outcome(self, clock_id: int, outcome: str) -> None:
        """The outcome attainment counts the clock with."""
        await self._connection.execute(
            f"UPDATE {SCHEMA}.clocks SET outcome = $2 WHERE id = $1", clock_id, outcome
        )

    async def answered_clocks(self, case_id: str) -> list[AnsweredClock]:
        """Per clock name and track, the case's latest clock if it ended by what it waited
        for, with the fractions it alerted and whether it is the only one of its name and
        track."""
        rows = await self._connection.fetch(
            f"SELECT DISTINCT ON (c.clock, c.slot) {_CLOCK_COLUMNS}, c.outcome, c.fulfilled_at,"
            f" {_DECISION_COLUMNS} FROM {SCHEMA}.clocks AS c WHERE c.case_id = $1"
            " ORDER BY c.clock, c.slot, c.started_at DESC",
            case_id,
        )
        return [
            AnsweredClock(_stored(row).as_open(), row["fulfilled_at"])
            for row in rows
            if row["outcome"] is not None
        ]

    async def refulfil(self, refulfilment: ClockRefulfilment) -> EndedClock | None:
        """The latest answered clock of the name and track ends earlier; its pending (held)
        timers due from then on are dropped. None: no such clock ended later."""
        row = await self._connection.fetchrow(
            f"WITH ended AS (SELECT id, outcome FROM {SCHEMA}.clocks"
            " WHERE case_id = $1 AND clock = $2 AND slot = $4"
            " ORDER BY started_at DESC LIMIT 1 FOR UPDATE)"
            f" UPDATE {SCHEMA}.clocks AS c SET fulfilled_at = $3 FROM ended"
            " WHERE c.id = ended.id AND c.status = 'fulfilled' AND c.outcome IS NOT NULL"
            " AND c.fulfilled_at > $3"
            f" RETURNING {_CLOCK_COLUMNS}, c.breached_at, c.breach_started_at,"
            " ended.outcome AS counted",
            refulfilment.case_id,
            refulfilment.clock,
            refulfilment.fulfilled_at,
            _slot(refulfilment.additive_policy),
        )
        return None if row is None else _ended(row)

    async def backdate(self, backdate: ClockBackdate) -> EndedClock | None:
        """The latest answered clock of the name and track starts earlier: its due_at moves
        with it, and a breach fired for it stands, now for the new due_at, remembering the
        start its alert was named by. None: no such clock started later (a redelivery), or
        another cycle of it started then."""
        timers = backdate.schedule
        row = await self._connection.fetchrow(
            f"WITH ended AS (SELECT id, outcome FROM {SCHEMA}.clocks"
            " WHERE case_id = $1 AND clock = $2 AND slot = $3"
            " ORDER BY started_at DESC LIMIT 1 FOR UPDATE)"
            f" UPDATE {SCHEMA}.clocks AS c SET started_at = $4, due_at = $5,"
            " breach_started_at = CASE WHEN c.breached_at IS NOT NULL"
            " THEN coalesce(c.breach_started_at, c.started_at) END,"
            " breached_at = CASE WHEN c.breached_at IS NOT NULL THEN $5::timestamptz END"
            " FROM ended WHERE c.id = ended.id AND c.status = 'fulfilled'"
            " AND c.outcome IS NOT NULL AND c.started_at > $4"
            f" AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.clocks AS cycle WHERE cycle.case_id = $1"
            " AND cycle.clock = $2 AND cycle.slot = $3 AND cycle.started_at = $4)"
            f" RETURNING {_CLOCK_COLUMNS}, c.breached_at, c.breach_started_at, c.fulfilled_at,"
            " ended.outcome AS counted",
            backdate.case_id,
            backdate.clock,
            _slot(backdate.additive_policy),
            backdate.started_at,
            timers.due_at,
        )
        return None if row is None else _ended(row)

    async def absorb(self, absorption: CaseAbsorption) -> list[EndedClock]:
        """Every clock of the case not absorbed yet ends 'absorbed' with no outcome (an open
        one at the absorption), its pending timers dropped."""
        rows = await self._connection.fetch(
            "WITH ended AS (SELECT id, outcome, breached_at, breach_started_at"
            f" FROM {SCHEMA}.clocks"
            " WHERE case_id = $1 AND status <> 'absorbed' FOR UPDATE)"
            f" UPDATE {SCHEMA}.clocks AS c SET status = 'absorbed', outcome = NULL,"
            " fulfilled_at = coalesce(c.fulfilled_at, $2),"
            " pause_ends = CASE WHEN c.status = 'paused'"
            " THEN c.pause_ends[1:cardinality(c.pause_ends) - 1] || $2::timestamptz"
            " ELSE c.pause_ends END"
            " FROM ended WHERE c.id = ended.id"
            f" RETURNING {_CLOCK_COLUMNS}, ended.breached_at, ended.breach_started_at,"
            " ended.outcome AS counted",
            absorption.case_id,
            absorption.at,
        )
        return [_ended(row) for row in rows]

    async def clear_breach(self, clock_id: int) -> None:
        await self._connection.execute(
            f"UPDATE {SCHEMA}.clocks SET breached_at = NULL, breach_started_at = NULL"
            " WHERE id = $1",
            clock_id,
        )

    async def pause(self, pause: ClockPause) -> ClockRecord | None:
        row = await self._connection.fetchrow(
            f"UPDATE {SCHEMA}.clocks AS c SET status = 'paused',"
            " pause_starts = array_append(pause_starts, $3::timestamptz),"
            " pause_ends = array_append(pause_ends, NULL::timestamptz)"
            " WHERE case_id = $1 AND clock = $2 AND slot = $4 AND status = 'running'"
            f" RETURNING {_CLOCK_COLUMNS}",
            pause.case_id,
            pause.clock,
            pause.paused_at,
            _slot(pause.additive_policy),
        )
        return None if row is None else _clock(row)

    async def resume(self, resume: ClockResume) -> ClockRecord | None:
        row = await self._connection.fetchrow(
            f"UPDATE {SCHEMA}.clocks AS c SET status = 'running', due_at = $4,"
            " pause_ends[cardinality(pause_ends)] = $3"
            " WHERE case_id = $1 AND clock = $2 AND slot = $5 AND status = 'paused'"
            f" RETURNING {_CLOCK_COLUMNS}",
            resume.case_id,
            resume.clock,
            resume.resumed_at,
            resume.schedule.due_at,
            _slot(resume.additive_policy),
        )
        return None if row is None else _clock(row)

    async def reselect(self, reselection: ClockReselection) -> int | None:
        """The open clock under its new policy; returns its id (None: no such open clock)."""
        timers = reselection.schedule
        clock_id: int | None = await self._connection.fetchval(
            f"UPDATE {SCHEMA}.clocks SET policy_id = $3, calendar_id = $4, target_seconds = $5,"
            " team = $6, priority = $7, due_at = coalesce($8, due_at),"
            " started_at = CASE WHEN $10::timestamptz IS NULL OR EXISTS (SELECT 1 FROM"
            f" {SCHEMA}.clocks AS cycle WHERE cycle.case_id = $1 AND cycle.clock = $2"
            " AND cycle.slot = $9 AND cycle.started_at = $10) THEN started_at ELSE $10 END"
            " WHERE case_id = $1 AND clock = $2 AND slot = $9 AND status IN ('running', 'paused')"
            " RETURNING id",
            reselection.case_id,
            reselection.clock,
            reselection.policy_id,
            reselection.calendar_id,
            reselection.target_seconds,
            reselection.team,
            reselection.priority,
            None if timers is None else timers.due_at,
            _slot(reselection.additive_policy),
            reselection.started_at,
        )
        return clock_id

    async def record_watermarks(self, rows: Sequence[WatermarkRow]) -> None:
        """Each (case partition, input partition) keeps the highest watermark written to it
        (`rows` must name each pair once)."""
        if not rows:
            return
        await self._connection.execute(
            f"INSERT INTO {SCHEMA}.watermarks AS w"
            " (case_partition, topic, source_partition, partitions, watermark)"
            " SELECT * FROM unnest($1::int[], $2::text[], $3::int[], $4::int[], $5::timestamptz[])"
            " ON CONFLICT (topic, case_partition, source_partition) DO UPDATE SET"
            " watermark = greatest(w.watermark, excluded.watermark),"
            " partitions = excluded.partitions, updated_at = now()",
            [row.case_partition for row in rows],
            [row.topic for row in rows],
            [row.source_partition for row in rows],
            [row.partitions for row in rows],
            [row.watermark for row in rows],
        )

    async def count_attainment(self, counts: Mapping[tuple[str, str, str], int]) -> None:
        """Adds clocks ended by what they waited for, by (clock, policy, outcome)."""
        if not counts:
            return
        await self._connection.execute(
            f"INSERT INTO {SCHEMA}.attainment AS a (clock, policy_id, outcome, clocks)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])"
            " ON CONFLICT (clock, policy_id, outcome)"
            " DO UPDATE SET clocks = a.clocks + excluded.clocks",
            [key[0] for key in counts],
            [key[1] for key in counts],
            [key[2] for key in counts],
            list(counts.values()),
        )

    async def watermark_coverage(self, topic: str, case_partitions: int) -> WatermarkCoverage:
        return await _coverage(self._connection, topic, case_partitions)

    async def claim_due_timers(self, until: datetime, limit: int) -> list[DueTimer]:
        """Unfired timers due by `until` of running clocks, and of ended ones that held them
        for the watermark, earliest first, locked; those another replica holds are skipped
        (it fires them)."""
        rows = await self._connection.fetch(
            f"SELECT t.id AS timer_id, t.kind, t.fraction, t.fire_at, {_CLOCK_COLUMNS},"
            " CASE WHEN c.status = 'fulfilled' THEN c.fulfilled_at END AS ended_at"
            f" FROM {SCHEMA}.timers AS t JOIN {SCHEMA}.clocks AS c ON c.id = t.clock_id"
            " WHERE t.fired_at IS NULL AND t.fire_at <= $1"
            " AND c.status IN ('running', 'fulfilled')"
            " ORDER BY t.fire_at LIMIT $2"
            " FOR UPDATE OF t SKIP LOCKED",
            until,
            limit,
        )
        return [
            DueTimer(
                row["timer_id"],
                Timer(row["kind"], row["fraction"], row["fire_at"]),
                _clock(row),
                row["ended_at"],
            )
            for row in rows
        ]

    async def mark_fired(self, timer_ids: Sequence[int], now: datetime) -> None:
        await self._connection.execute(
            f"UPDATE {SCHEMA}.timers SET fired_at = $2 WHERE id = ANY($1::bigint[])",
            list(timer_ids),
            now,
        )

    async def lock_open_clocks(self) -> list[StoredClock]:
        """Every open clock, locked until the transaction ends (recompute)."""
        rows = await self._connection.fetch(
            f"SELECT {_CLOCK_COLUMNS}, {_DECISION_COLUMNS} FROM {SCHEMA}.clocks AS c"
            " WHERE c.status IN ('running', 'paused') ORDER BY c.id FOR UPDATE OF c"
        )
        return [_stored(row) for row in rows]

    async def move_clock(
        self,
        clock_id: int,
        policy_id: str,
        calendar_id: str,
        target_seconds: int,
        due_at: datetime | None,
    ) -> None:
        """A clock's policy, target and (unless None: paused) due_at rewritten."""
        await self._connection.execute(
            f"UPDATE {SCHEMA}.clocks SET policy_id = $2, calendar_id = $3, target_seconds = $4,"
            " due_at = coalesce($5, due_at) WHERE id = $1",
            clock_id,
            policy_id,
            calendar_id,
            target_seconds,
            due_at,
        )

    def add_to_outbox(self, records: Sequence[tuple[str, EventRecord]]) -> None:
        """Alerts written to the outbox when the unit of work commits."""
        self._work.add_events(records)


async def _coverage(connection: Connection, topic: str, case_partitions: int) -> WatermarkCoverage:
    row = await connection.fetchrow(
        "SELECT count(*) AS pairs, max(partitions) AS partitions, min(watermark) AS lowest"
        f" FROM {SCHEMA}.watermarks WHERE topic = $1 AND case_partition < $2",
        topic,
        case_partitions,
    )
    assert row is not None  # an aggregate always has a row
    return WatermarkCoverage(row["pairs"], row["partitions"], row["lowest"])


class PendingMigrationsError(RuntimeError):
    """The database schema is older than this code: it must be migrated first."""


class PostgresClockStore:
    """The clock store (`clock_service.ClockStore`) in PostgreSQL. Open it before use; the
    pool lives as long as the service."""

    def __init__(self, dsn: str, *, pool_size: int = 10) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool | None:
        return self._pool

    async def open(self) -> None:
        self._pool = await create_pool(
            self._dsn,
            min_size=1,
            max_size=self._pool_size,
            server_settings=SESSION_SETTINGS,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def require_migrated(self) -> None:
        """Refuse to start on a schema older than the code: `casewire-sla migrate` first."""
        async with self._require_pool().acquire() as connection:
            pending = await pending_migrations(connection, SCHEMA, MIGRATIONS)
        if pending:
            raise PendingMigrationsError(
                f"the {SCHEMA!r} schema has {pending} pending migration(s):"
                " run `casewire-sla migrate` (same CASEWIRE_DATABASE_URL) before serving"
            )

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresClockStore is not open")
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresClockTransaction]:
        """One transaction: it commits when the block ends, or rolls back on an error."""
        async with (
            self._require_pool().acquire() as connection,
            unit_of_work(connection, SCHEMA) as work,
        ):
            yield PostgresClockTransaction(work)

    async def next_fire_at(self) -> datetime | None:
        """The instant of the earliest timer not fired yet, written by any replica."""
        value: datetime | None = await self._require_pool().fetchval(
            f"SELECT min(fire_at) FROM {SCHEMA}.timers WHERE fired_at IS NULL"
        )
        return value

    async def clock_stats(self) -> ClockStats:
        """Open clocks by name (a breached clock runs until it ends), and the next due_at of
        running clocks not breached yet."""
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

    async def attainment(self) -> dict[tuple[str, str, str], int]:
        """Clocks ended by what they waited for, by (clock, policy, final outcome)."""
        rows = await self._require_pool().fetch(
            f"SELECT clock, policy_id, outcome, clocks FROM {SCHEMA}.attainment"
        )
        return {(row["clock"], row["policy_id"], row["outcome"]): row["clocks"] for row in rows}

    async def watermark_coverage(self, topic: str, case_partitions: int) -> WatermarkCoverage:
        async with self._require_pool().acquire() as connection:
            return await _coverage(connection, topic, case_partitions)

    async def outbox_backlog(self) -> int:
        """Alerts committed but not yet published by the relay."""
        count: int = await self._require_pool().fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox")
        return count
