"""The timer statements stay index lookups of a few rows however many clocks are open, with
or without planner statistics (tables just bulk-loaded or restored are not analyzed yet).

A reply, pause, resume or policy change drops or fires the pending timers of ONE clock. With
only an index by clock and one of every pending timer by instant, a planner without statistics
ANDed both and read the whole pending index for each of them: 25-80 ms per statement at
1,000,000 open clocks, and the case-event consumer, and with it the watermark every alert waits
for, fell behind (breaches 26 s late in `make bench`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from casewire_common.unit_of_work import unit_of_work
from casewire_sla.adapters.store import SCHEMA, PostgresClockStore, PostgresClockTransaction
from casewire_sla.domain.timers import Timer

pytestmark = pytest.mark.integration

SEEDED = 20_000  # open clocks, each with a pending breach timer due tomorrow or later
CLOCK_ID = SEEDED // 2


async def _seed(pg: asyncpg.Connection) -> None:
    """As a bulk load writes them, and not analyzed after (nor by autovacuum meanwhile)."""
    for table in ("clocks", "timers"):
        await pg.execute(f"ALTER TABLE sla.{table} SET (autovacuum_enabled = false)")
    await pg.execute(
        "INSERT INTO sla.clocks (id, case_id, clock, policy_id, calendar_id, target_seconds,"
        " started_at, due_at, team, priority)"
        " SELECT i, 'seeded-' || i, 'first_response', 'p', 'always', 3600, now(),"
        " now() + interval '1 day' + i * interval '1 second', 'care', 'P3'"
        " FROM generate_series(1, $1) AS i",
        SEEDED,
    )
    await pg.execute(
        "INSERT INTO sla.timers (clock_id, kind, fraction, fire_at)"
        " SELECT id, 'breach', 1.0, due_at FROM sla.clocks"
    )


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _timer_scans(
    pg: asyncpg.Connection, query: str, args: tuple[object, ...]
) -> list[tuple[str, str | None]]:
    """(node type, index) of each scan of sla.timers in the statement's plan."""
    document = json.loads(await pg.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args))
    return [
        (node["Node Type"], node.get("Index Name"))
        for node in _nodes(document[0]["Plan"])
        if node.get("Relation Name") == "timers" or "timers" in str(node.get("Index Name"))
    ]


async def test_a_clocks_timer_statements_use_an_index_by_clock_without_statistics(
    migrated_url: str, pg: asyncpg.Connection
) -> None:
    await _seed(pg)
    assert await pg.fetchval("SELECT count(*) FROM pg_stats WHERE tablename = 'timers'") == 0
    logged: list[tuple[str, tuple[object, ...]]] = []
    pg.add_query_logger(lambda query: logged.append((query.query, tuple(query.args))))
    now = datetime.now(UTC)
    async with unit_of_work(pg, SCHEMA) as work:
        tx = PostgresClockTransaction(work)
        await tx.open_clocks([f"seeded-{CLOCK_ID}"])
        await tx.stop_timers(CLOCK_ID, now, now, now)
        await tx.drop_timers(CLOCK_ID, now)
        await tx.replace_timers(CLOCK_ID, [Timer("breach", 1.0, now + timedelta(hours=1))])
        await tx.cancel_timers([CLOCK_ID, CLOCK_ID + 1])
        await asyncio.sleep(0)  # query loggers are called soon after, not during, the call
        by_clock = [(query, args) for query, args in logged if "clock_id = " in query]
        logged.clear()
        assert await tx.claim_due_timers(now, 500) == []
        await asyncio.sleep(0)
        (claim,) = logged
    # open_clocks' alerted fractions, stop_timers, drop_timers, replace_timers, cancel
    assert len(by_clock) == 5
    for query, args in by_clock:
        scans = await _timer_scans(pg, query, args)
        assert scans, query
        for node, index in scans:
            assert node != "Seq Scan", (query, scans)
            assert index != "timers_pending", (query, scans)
    # Due timers, by instant: the pending index, never every timer.
    scans = await _timer_scans(pg, *claim)
    assert ("Seq Scan", None) not in scans
    assert any(index == "timers_pending" for _, index in scans), scans


async def test_the_stores_sessions_never_fork_workers_nor_compile_a_statement(
    store: PostgresClockStore,
) -> None:
    # Per case event, on tables not analyzed yet: a parallel plan cost 7-15 ms instead of 0.2,
    # a JIT-compiled one up to 0.36 s (PostgreSQL 15, 1,000,000 open clocks).
    pool = store.pool
    assert pool is not None
    async with pool.acquire() as connection:
        assert await connection.fetchval("SHOW jit") == "off"
        assert await connection.fetchval("SHOW max_parallel_workers_per_gather") == "0"
