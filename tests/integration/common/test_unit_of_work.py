"""The shared idempotent consumer on real PostgreSQL: markers, events and state commit
together; a redelivery inside the retention window changes nothing; older markers are pruned
in batches and the table stays bounded."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from casewire_common.events import EventRecord, encode_event
from casewire_common.unit_of_work import (
    RetentionPruner,
    processed_inputs,
    tables_ddl,
    unit_of_work,
)
from pydantic import BaseModel

from tests.unit.router.factories import T0

SCHEMA = "consumer_test"
RETENTION = timedelta(days=8)


class _Applied(BaseModel):
    key: str


@pytest.fixture
async def tables(pg: asyncpg.Connection) -> asyncpg.Connection:
    await pg.execute(f"CREATE SCHEMA {SCHEMA}")
    await pg.execute(tables_ddl(SCHEMA))
    await pg.execute(f"CREATE TABLE {SCHEMA}.applied (key text PRIMARY KEY)")  # the "state"
    return pg


def _event(key: str) -> EventRecord:
    return encode_event(
        event_id=key,
        event_type="test.applied",
        source="test",
        subject=key,
        time=T0,
        data=_Applied(key=key),
    )


async def _consume(connection: asyncpg.Connection, keys: list[str]) -> tuple[list[str], int]:
    """A consumer's batch: claim, change the state, queue one event per new input."""
    async with unit_of_work(connection, SCHEMA) as work:
        fresh = await work.claim(keys, str)
        await connection.executemany(
            f"INSERT INTO {SCHEMA}.applied (key) VALUES ($1)", [(key,) for key in fresh]
        )
        work.add_events(("topic", _event(key)) for key in fresh)
    return fresh, work.duplicates


async def _count(connection: asyncpg.Connection, table: str) -> int:
    count: int = await connection.fetchval(f"SELECT count(*) FROM {SCHEMA}.{table}")
    return count


async def _age_markers(connection: asyncpg.Connection, keys: list[str], age: timedelta) -> None:
    await connection.execute(
        f"UPDATE {SCHEMA}.processed_inputs SET processed_at = now() - $2::interval"
        " WHERE key = ANY($1::text[])",
        keys,
        age,
    )


def _pruner(database_url: str, batch_size: int = 1000) -> RetentionPruner:
    return RetentionPruner(
        database_url, [processed_inputs(SCHEMA)], RETENTION, batch_size=batch_size
    )


async def test_a_redelivery_inside_the_window_changes_nothing(
    tables: asyncpg.Connection, database_url: str
) -> None:
    assert await _consume(tables, ["a", "b", "a"]) == (["a", "b"], 1)
    await _age_markers(tables, ["a"], RETENTION - timedelta(hours=1))  # old, still inside
    await _pruner(database_url).prune()

    assert await _consume(tables, ["b", "a", "c"]) == (["c"], 2)
    assert await _count(tables, "applied") == 3
    events = await tables.fetch(f"SELECT headers->>'ce_id' AS id FROM {SCHEMA}.outbox ORDER BY id")
    assert [row["id"] for row in events] == ["a", "b", "c"]


async def test_a_failed_batch_leaves_no_marker_no_event_and_no_state(
    tables: asyncpg.Connection,
) -> None:
    async def failing_batch() -> None:
        async with unit_of_work(tables, SCHEMA) as work:
            await work.claim(["a"], str)
            await tables.execute(f"INSERT INTO {SCHEMA}.applied (key) VALUES ('a')")
            work.add_events([("topic", _event("a"))])
            raise RuntimeError("routing failed")

    with pytest.raises(RuntimeError, match="routing failed"):
        await failing_batch()
    assert [await _count(tables, name) for name in ("processed_inputs", "applied", "outbox")] == [
        0,
        0,
        0,
    ]
    assert await _consume(tables, ["a"]) == (["a"], 0)  # the retry is applied


async def test_markers_older_than_the_window_are_pruned_in_batches(
    tables: asyncpg.Connection, database_url: str
) -> None:
    await tables.execute(
        f"INSERT INTO {SCHEMA}.processed_inputs (key, processed_at)"
        " SELECT 'old' || n, now() - interval '9 days' - n * interval '1 second'"
        " FROM generate_series(1, 2500) n"
    )
    assert await _consume(tables, ["young"]) == (["young"], 0)

    assert await _pruner(database_url, batch_size=1000).prune() == 2500
    assert [
        row["key"] for row in await tables.fetch(f"SELECT key FROM {SCHEMA}.processed_inputs")
    ] == ["young"]


async def test_the_markers_stay_bounded_under_steady_traffic(
    tables: asyncpg.Connection, database_url: str
) -> None:
    """Twenty days of 100 inputs a day, pruned daily: never more than the window holds."""
    pruner = _pruner(database_url, batch_size=64)
    sizes = []
    for day in range(20):
        keys = [f"d{day}-{n}" for n in range(100)]
        assert (await _consume(tables, keys))[0] == keys
        await _age_markers(tables, keys, timedelta(days=19 - day, minutes=1))
        await pruner.prune()
        sizes.append(await _count(tables, "processed_inputs"))
    assert max(sizes) == 800  # ages of 0 to 7 days (and a minute) stay, older ones go
    assert sizes[-1] == 800


async def test_one_replica_prunes_at_a_time(tables: asyncpg.Connection, database_url: str) -> None:
    await _consume(tables, ["a"])
    await _age_markers(tables, ["a"], timedelta(days=9))
    other = await asyncpg.connect(database_url)
    try:
        await other.execute(
            "SELECT pg_advisory_lock(hashtext($1))", f"prune:{SCHEMA}.processed_inputs"
        )
        assert await _pruner(database_url).prune() is None  # another replica is at it
        assert await _count(tables, "processed_inputs") == 1
    finally:
        await other.close()
    assert await _pruner(database_url).prune() == 1


async def test_pruning_does_not_wait_for_a_consumer_batch_in_progress(
    tables: asyncpg.Connection, database_url: str
) -> None:
    await _consume(tables, ["old"])
    await _age_markers(tables, ["old"], timedelta(days=9))
    async with unit_of_work(tables, SCHEMA) as work:  # open, holding its new marker
        await work.claim(["new"], str)
        assert await asyncio.wait_for(_pruner(database_url).prune(), timeout=5) == 1
    assert [
        row["key"] for row in await tables.fetch(f"SELECT key FROM {SCHEMA}.processed_inputs")
    ] == ["new"]
