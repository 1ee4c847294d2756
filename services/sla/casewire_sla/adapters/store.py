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
    SLA_CLOCK_STARTED,
    SLA_WARNING,
    CaseEventData,
    EventRecord,
)
from casewire_common.outbox import add_to_outbox
from casewire_common.pg import create_pool

from casewire_sla.adapters.alerts import LATE_AFTER, ClockRecord, alert_record
from casewire_sla.domain.clocks import ClockFulfilment, ClockStart, clock_changes
from casewire_sla.domain.policies import PolicySet, open_time_between

SCHEMA = "sla"
# What a pool hands out: a proxy to a connection, used like one.
Connection = asyncpg.Connection | PoolConnectionProxy
MIGRATIONS = "casewire_sla.adapters.migrations"

_CLOCK_COLUMNS = (
    "c.id, c.case_id, c.clock, c.policy_id, c.calendar_id, c.target_seconds,"
    " c.started_at, c.due_at, c.team, c.priority"
)


@dataclass(frozen=True)
class CaseEvent:
    """A decoded case event: its CloudEvent id and type, and its data when this service uses it."""

    id: str
    type: str
    data: CaseEventData | None


@dataclass(frozen=True)
class FiredAlert:
    clock: ClockRecord
    kind: str  # "warning" or "breach"
    fraction: float
    late: bool


@dataclass
class BatchOutcome:
    """What a committed batch changed: for metrics and to wake the timer scheduler."""

    applied: int = 0
    duplicates: int = 0
    started: list[ClockRecord] = field(default_factory=list)
    fulfilled: list[tuple[ClockRecord, datetime]] = field(default_factory=list)
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
    )


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
        calendar = policies.find_calendar(clock.calendar_id)
        if calendar is None:  # the calendar left the policy file: count wall-clock time
            return max(until - clock.started_at, timedelta(0))
        return open_time_between(calendar, clock.started_at, until)

    async def apply_case_events(
        self, events: Sequence[CaseEvent], policies: PolicySet, now: datetime
    ) -> BatchOutcome:
        """Apply a batch of case events in one transaction; already processed ids are skipped."""
        outcome = BatchOutcome()
        if not events:
            return outcome
        async with self._require_pool().acquire() as connection, connection.transaction():
            fresh_rows = await connection.fetch(
                f"INSERT INTO {SCHEMA}.processed_events (event_id)"
                " SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING event_id",
                [event.id for event in events],
            )
            fresh = {row["event_id"] for row in fresh_rows}
            starts: list[ClockStart] = []
            fulfilments: dict[tuple[str, str], ClockFulfilment] = {}
            for event in events:
                if event.id not in fresh:
                    outcome.duplicates += 1
                    continue
                fresh.discard(event.id)  # the same id twice in one batch counts once
                outcome.applied += 1
                if event.data is None:
                    continue
                for change in clock_changes(policies, event.type, event.data):
                    if isinstance(change, ClockStart):
                        starts.append(change)
                    else:
                        fulfilments.setdefault((change.case_id, change.clock), change)
            records: list[tuple[str, EventRecord]] = []
            if starts:
                await self._start_clocks(connection, starts, now, outcome, records)
            if fulfilments:
                await self._fulfil_clocks(
                    connection, list(fulfilments.values()), policies, now, outcome, records
                )
            await add_to_outbox(connection, SCHEMA, records)
        return outcome

    async def _start_clocks(
        self,
        connection: Connection,
        starts: Sequence[ClockStart],
        now: datetime,
        outcome: BatchOutcome,
        records: list[tuple[str, EventRecord]],
    ) -> None:
        rows = await connection.fetch(
            f"INSERT INTO {SCHEMA}.clocks AS c (case_id, clock, policy_id, calendar_id,"
            " target_seconds, started_at, due_at, team, priority)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],"
            " $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[])"
            f" ON CONFLICT (case_id, clock) DO NOTHING RETURNING {_CLOCK_COLUMNS}",
            [start.case_id for start in starts],
            [start.clock for start in starts],
            [start.policy_id for start in starts],
            [start.calendar_id for start in starts],
            [max(1, round(start.target.total_seconds())) for start in starts],
            [start.started_at for start in starts],
            [start.due_at for start in starts],
            [start.team for start in starts],
            [start.priority for start in starts],
        )
        by_key = {(start.case_id, start.clock): start for start in starts}
        timers: list[tuple[int, str, float, datetime]] = []
        for row in rows:
            clock = _clock(row)
            start = by_key[(clock.case_id, clock.clock)]
            timers.extend((clock.id, "warning", fraction, at) for fraction, at in start.warnings)
            timers.append((clock.id, "breach", 1.0, start.due_at))
            outcome.started.append(clock)
            records.append(alert_record(clock, SLA_CLOCK_STARTED, time=now))
        if timers:
            await connection.execute(
                f"INSERT INTO {SCHEMA}.timers (clock_id, kind, fraction, fire_at)"
                " SELECT * FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::timestamptz[])",
                [timer[0] for timer in timers],
                [timer[1] for timer in timers],
                [timer[2] for timer in timers],
                [timer[3] for timer in timers],
            )
            outcome.earliest_timer = min(timer[3] for timer in timers)

    async def _fulfil_clocks(
        self,
        connection: Connection,
        fulfilments: Sequence[ClockFulfilment],
        policies: PolicySet,
        now: datetime,
        outcome: BatchOutcome,
        records: list[tuple[str, EventRecord]],
    ) -> None:
        rows = await connection.fetch(
            f"UPDATE {SCHEMA}.clocks AS c SET status = 'fulfilled', fulfilled_at = f.at"
            " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS f(case_id, clock, at)"
            " WHERE c.case_id = f.case_id AND c.clock = f.clock AND c.status = 'running'"
            f" RETURNING {_CLOCK_COLUMNS}, c.fulfilled_at",
            [fulfilment.case_id for fulfilment in fulfilments],
            [fulfilment.clock for fulfilment in fulfilments],
            [fulfilment.fulfilled_at for fulfilment in fulfilments],
        )
        if not rows:
            return
        clocks = {row["id"]: (_clock(row), row["fulfilled_at"]) for row in rows}
        # A reply that came after a warning or the breach instant, but was read before the
        # timer fired (consumer lag), does not erase it: those alerts fire now, late.
        overdue = await connection.fetch(
            f"UPDATE {SCHEMA}.timers AS t SET fired_at = $2 FROM {SCHEMA}.clocks AS c"
            " WHERE t.clock_id = c.id AND c.id = ANY($1::bigint[])"
            " AND t.fired_at IS NULL AND t.fire_at <= c.fulfilled_at"
            " RETURNING t.clock_id, t.kind, t.fraction, t.fire_at",
            list(clocks),
            now,
        )
        for timer in sorted(overdue, key=lambda row: row["fire_at"]):
            clock, fulfilled_at = clocks[timer["clock_id"]]
            fired = FiredAlert(
                clock, timer["kind"], timer["fraction"], now - timer["fire_at"] > LATE_AFTER
            )
            outcome.fired.append(fired)
            records.append(self._alert(policies, fired, now, until=fulfilled_at))
        breached = [row["clock_id"] for row in overdue if row["kind"] == "breach"]
        if breached:
            await connection.execute(
                f"UPDATE {SCHEMA}.clocks SET breached_at = due_at WHERE id = ANY($1::bigint[])",
                breached,
            )
        await connection.execute(
            f"DELETE FROM {SCHEMA}.timers WHERE clock_id = ANY($1::bigint[]) AND fired_at IS NULL",
            list(clocks),
        )
        for clock, fulfilled_at in clocks.values():
            outcome.fulfilled.append((clock, fulfilled_at))
            records.append(
                alert_record(
                    clock,
                    SLA_CLOCK_FULFILLED,
                    time=now,
                    elapsed=self._elapsed(policies, clock, fulfilled_at),
                )
            )

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

    async def next_fire_at(self) -> datetime | None:
        """The instant of the earliest timer not fired yet, written by any replica."""
        pool = self._require_pool()
        value: datetime | None = await pool.fetchval(
            f"SELECT min(fire_at) FROM {SCHEMA}.timers WHERE fired_at IS NULL"
        )
        return value

    async def open_clocks(self) -> dict[str, int]:
        """Running clocks by clock name (a breached clock runs until the reply comes)."""
        rows = await self._require_pool().fetch(
            f"SELECT clock, count(*) AS n FROM {SCHEMA}.clocks WHERE status = 'running'"
            " GROUP BY clock"
        )
        return {row["clock"]: row["n"] for row in rows}

    async def outbox_backlog(self) -> int:
        """Alerts committed but not yet published by the relay."""
        count: int = await self._require_pool().fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox")
        return count
