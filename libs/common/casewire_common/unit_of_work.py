"""The idempotent consumer, written once: claim the inputs, change the state, queue the events,
commit once.

Modelled on pyeventsourcing's process recorder: an input's "processed" marker is written in
the same transaction as the state change and the outbox rows its processing produced, so a
redelivered input changes nothing and a crash loses nothing. Each consuming service's schema
holds the two tables this module owns (`tables_ddl`, applied by one migration step per
service): `processed_inputs`, one row per input key, and `outbox` (relayed by `outbox.py`).

Markers only serve deduplication, so they are kept for a retention window longer than the
broker's (an input older than that cannot be delivered again) and then pruned in the
background by `RetentionPruner`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import asyncpg
import structlog

from casewire_common.events import EventRecord
from casewire_common.outbox import add_to_outbox
from casewire_common.periodic import Periodic
from casewire_common.pg import Connection

log = structlog.get_logger(__name__)

PROCESSED_TABLE = "processed_inputs"

Input = TypeVar("Input")


def tables_ddl(schema: str) -> str:
    """The unit of work's tables in `schema`; safe to apply where they exist already."""
    return f"""
-- Idempotent consumer: an input (a message, an event) is applied once, in the same
-- transaction as its effects. Pruned by processed_at beyond the retention window.
CREATE TABLE IF NOT EXISTS "{schema}".{PROCESSED_TABLE} (
    key text PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {PROCESSED_TABLE}_processed_at
    ON "{schema}".{PROCESSED_TABLE} (processed_at);

-- Transactional outbox: events committed with the change that caused them, relayed to
-- Kafka in id order and deleted once acknowledged.
CREATE TABLE IF NOT EXISTS "{schema}".outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    key text NOT NULL,
    headers jsonb NOT NULL,
    value bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""


class UnitOfWork:
    """One consumer transaction: the inputs it claimed and the events it will commit."""

    def __init__(self, connection: Connection, schema: str) -> None:
        self.connection = connection
        self.schema = schema
        self.duplicates = 0  # inputs claimed before (redelivery) or twice in one batch
        self._events: list[tuple[str, EventRecord]] = []

    async def claim(self, inputs: Sequence[Input], key: Callable[[Input], str]) -> list[Input]:
        """Mark `inputs` processed in one statement; returns, in order, those not processed
        before (the first of each key)."""
        first_by_key: dict[str, Input] = {}
        for item in inputs:
            first_by_key.setdefault(key(item), item)
        if not first_by_key:
            return []
        rows = await self.connection.fetch(
            f'INSERT INTO "{self.schema}".{PROCESSED_TABLE} (key) SELECT unnest($1::text[])'
            " ON CONFLICT DO NOTHING RETURNING key",
            list(first_by_key),
        )
        new_keys = {row["key"] for row in rows}
        fresh = [item for item_key, item in first_by_key.items() if item_key in new_keys]
        self.duplicates += len(inputs) - len(fresh)
        return fresh

    def add_events(self, records: Iterable[tuple[str, EventRecord]]) -> None:
        """Queue (topic, event) pairs: written to the outbox when the unit commits."""
        self._events.extend(records)

    @property
    def events(self) -> Sequence[tuple[str, EventRecord]]:
        return self._events


@asynccontextmanager
async def unit_of_work(connection: Connection, schema: str) -> AsyncIterator[UnitOfWork]:
    """A transaction on `connection` that commits the claimed markers, the state the body
    wrote and the queued events together, or none of them when the body raises."""
    async with connection.transaction():
        work = UnitOfWork(connection, schema)
        yield work
        await add_to_outbox(connection, schema, work.events)


@dataclass(frozen=True)
class AgedTable:
    """A table that only remembers what was processed, and the column saying since when."""

    schema: str
    name: str
    age_column: str


def processed_inputs(schema: str) -> AgedTable:
    return AgedTable(schema, PROCESSED_TABLE, "processed_at")


class RetentionPruner:
    """Deletes rows older than `retention` from deduplication tables, in small batches on a
    connection of its own: a consumer's insert waits for one batch at most, never for a
    round. With several replicas one prunes at a time (an advisory lock); the others skip."""

    def __init__(
        self,
        dsn: str,
        tables: Sequence[AgedTable],
        retention: timedelta,
        *,
        interval_seconds: float = 60.0,
        batch_size: int = 1000,
        pause_seconds: float = 0.05,
    ) -> None:
        self._dsn = dsn
        self._tables = tables
        self._retention = retention
        self._batch_size = batch_size
        self._pause_seconds = pause_seconds
        self._lock = "prune:" + ",".join(f"{table.schema}.{table.name}" for table in tables)
        self.task = Periodic(self._lock, interval_seconds, self.prune)

    async def prune(self) -> int | None:
        """One round: every row older than the window goes. None when another replica is
        pruning (it holds the lock), else how many rows were deleted."""
        connection = await asyncpg.connect(self._dsn)
        try:
            locked = await connection.fetchval(
                "SELECT pg_try_advisory_lock(hashtext($1))", self._lock
            )
            if not locked:
                return None
            deleted = 0
            for table in self._tables:
                deleted += await self._prune_table(connection, table)
            return deleted
        finally:
            await connection.close()  # the session lock goes with it

    async def _prune_table(self, connection: asyncpg.Connection, table: AgedTable) -> int:
        qualified, column = f'"{table.schema}".{table.name}', table.age_column
        # Oldest first through the column's index, deleted by row address: one short
        # statement per batch, whatever the table's key.
        statement = (
            f"DELETE FROM {qualified} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {qualified}"
            f" WHERE {column} < now() - $1::interval ORDER BY {column} LIMIT $2))"
            f" AND {column} < now() - $1::interval"
        )
        deleted = 0
        while True:
            status = await connection.execute(statement, self._retention, self._batch_size)
            batch = int(status.split()[-1])
            deleted += batch
            if batch < self._batch_size:
                break
            await asyncio.sleep(self._pause_seconds)
        if deleted:
            log.info("old rows pruned", table=qualified, deleted=deleted)
        return deleted
