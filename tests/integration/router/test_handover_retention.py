"""The handovers table on real PostgreSQL: saved through the routing path, pruned with the
processed markers. A handover goes once a later one of its conversation took over longer ago
than the window; a conversation's latest handover stays, however old (it says who answers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from casewire_common.pg import migrate
from casewire_common.unit_of_work import RetentionPruner
from casewire_router.adapters import repository
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.domain.handover import Handover, Owner
from casewire_router.domain.outcome import RoutingOutcome

pytestmark = pytest.mark.integration

WINDOW = timedelta(days=8)
NOW = datetime.now(UTC)


def handover(conversation: str, source: str, days_ago: float, owner: Owner) -> Handover:
    return Handover(conversation, NOW - timedelta(days=days_ago), owner, "pass", source)


async def save(pg: asyncpg.Connection, *handovers: Handover) -> None:
    async with pg.transaction():
        await repository.save_outcome(pg, RoutingOutcome(handovers=list(handovers)), NOW)


async def kept(pg: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await pg.fetch(
        f"SELECT conversation_id, source_id FROM {SCHEMA}.handovers"
        " ORDER BY conversation_id, at, source_id"
    )
    return [(row["conversation_id"], row["source_id"]) for row in rows]


async def test_handovers_superseded_longer_ago_than_the_window_are_pruned(
    database_url: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    pruner = RetentionPruner(database_url, [*repository.PRUNED_WITH_MARKERS], WINDOW, batch_size=1)
    # Back and forth between a bot and humans for three weeks.
    await save(
        pg,
        handover("a", "a1", 20, "human"),
        handover("a", "a2", 15, "bot"),
        handover("a", "a3", 10, "human"),
        handover("a", "a4", 1, "bot"),
    )
    await save(pg, handover("b", "b1", 30, "human"))  # alone: who answers b, however old
    await save(pg, handover("c", "c1", 30, "human"))
    await save(pg, handover("c", "c2", 2, "bot"))  # c1 superseded only two days ago
    # Read late: d2 comes between d1 and d3; d1 is superseded by it, ten days ago.
    await save(pg, handover("d", "d1", 11, "human"), handover("d", "d3", 1, "bot"))
    await save(pg, handover("d", "d2", 10, "bot"))
    superseded = await pg.fetch(
        f"SELECT source_id, superseded_at FROM {SCHEMA}.handovers WHERE conversation_id = 'd'"
        " ORDER BY at"
    )
    assert [(row["source_id"], row["superseded_at"]) for row in superseded] == [
        ("d1", NOW - timedelta(days=10)),
        ("d2", NOW - timedelta(days=1)),
        ("d3", None),
    ]

    assert await pruner.prune() == 3
    assert await kept(pg) == [
        ("a", "a3"),  # superseded a day ago: a message sent since 8 days ago may need it
        ("a", "a4"),
        ("b", "b1"),
        ("c", "c1"),
        ("c", "c2"),
        ("d", "d2"),
        ("d", "d3"),
    ]
    assert await pruner.prune() == 0


async def test_the_migration_marks_the_handovers_recorded_before_it(
    database_url: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    # As a database was before migration 0016.
    await pg.execute(f"ALTER TABLE {SCHEMA}.handovers DROP COLUMN superseded_at")
    await pg.execute(f"DELETE FROM {SCHEMA}.schema_migrations WHERE version = 16")
    await pg.executemany(
        f"INSERT INTO {SCHEMA}.handovers (conversation_id, source_id, at, owner, reason)"
        " VALUES ($1, $2, $3, 'human', 'pass')",
        [
            ("a", "a2", NOW - timedelta(days=9)),
            ("a", "a1", NOW - timedelta(days=9)),
            ("a", "a3", NOW - timedelta(days=1)),
            ("b", "b1", NOW - timedelta(days=30)),
        ],
    )

    assert await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE) == [
        "0016_handover_retention.sql"
    ]
    rows = await pg.fetch(
        f"SELECT source_id, superseded_at FROM {SCHEMA}.handovers ORDER BY source_id"
    )
    assert [(row["source_id"], row["superseded_at"]) for row in rows] == [
        ("a1", NOW - timedelta(days=9)),  # the same time as a2: the source id orders them
        ("a2", NOW - timedelta(days=1)),
        ("a3", None),
        ("b1", None),
    ]
