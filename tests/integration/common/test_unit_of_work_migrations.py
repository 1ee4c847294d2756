"""The unit of work's tables through each service's migrations, on real PostgreSQL: a new
database gets them once, and a database of an earlier release keeps its markers (a redelivery
after the upgrade still changes nothing) while that release's pods can still write them."""

from __future__ import annotations

import asyncpg
import pytest
from casewire_common.pg import migrate
from casewire_common.unit_of_work import unit_of_work
from casewire_router.adapters import repository as router
from casewire_sla.adapters import store as sla

# What earlier releases created in 0001 (router: processed_messages; sla: processed_events),
# and the statement their pods ran to claim a batch.
LEGACY = {
    router.SCHEMA: (
        "processed_messages",
        "CREATE TABLE router.processed_messages (key text PRIMARY KEY,"
        " processed_at timestamptz NOT NULL DEFAULT now())",
        "INSERT INTO router.processed_messages (key) SELECT unnest($1::text[])"
        " ON CONFLICT DO NOTHING RETURNING key",
    ),
    sla.SCHEMA: (
        "processed_events",
        "CREATE TABLE sla.processed_events (event_id text PRIMARY KEY,"
        " processed_at timestamptz NOT NULL DEFAULT now())",
        "INSERT INTO sla.processed_events (event_id) SELECT unnest($1::text[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
    ),
}
SERVICES = [(router.SCHEMA, router.MIGRATIONS_PACKAGE), (sla.SCHEMA, sla.MIGRATIONS)]


async def _tables(connection: asyncpg.Connection, schema: str) -> list[str]:
    rows = await connection.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
        " AND table_name ~ '^(processed|outbox)' ORDER BY table_name",
        schema,
    )
    return [row["table_name"] for row in rows]


async def _as_an_earlier_release(
    connection: asyncpg.Connection, schema: str, markers: list[str]
) -> None:
    """The schema as an earlier release left it: the legacy marker table, holding `markers`,
    and the unit-of-work step not applied yet."""
    _, create, claim = LEGACY[schema]
    await connection.execute(f"DROP TABLE {schema}.processed_inputs")
    await connection.execute(create)
    await connection.execute(
        f"DELETE FROM {schema}.schema_migrations WHERE name LIKE '%unit_of_work_tables.py'"
    )
    assert await connection.fetch(claim, markers)


@pytest.mark.parametrize(("schema", "package"), SERVICES)
async def test_a_new_database_gets_the_unit_of_work_tables(
    database_url: str, pg: asyncpg.Connection, schema: str, package: str
) -> None:
    await migrate(database_url, schema, package)
    assert await _tables(pg, schema) == ["outbox", "processed_inputs"]


@pytest.mark.parametrize(("schema", "package"), SERVICES)
async def test_an_upgraded_database_keeps_its_markers(
    database_url: str, pg: asyncpg.Connection, schema: str, package: str
) -> None:
    await migrate(database_url, schema, package)
    await _as_an_earlier_release(pg, schema, ["m1", "m2"])

    applied = await migrate(database_url, schema, package)

    assert len(applied) == 1
    assert applied[0].endswith("_unit_of_work_tables.py")
    async with unit_of_work(pg, schema) as work:  # the redelivery after the upgrade
        assert await work.claim(["m1", "m2", "m3"], str) == ["m3"]
    legacy_table, _, old_release_claim = LEGACY[schema]
    assert await _tables(pg, schema) == sorted(["outbox", legacy_table, "processed_inputs"])
    # A pod of the earlier release, still running during the rollout, shares the markers.
    assert [row[0] for row in await pg.fetch(old_release_claim, ["m3", "m4"])] == ["m4"]
    keys = await pg.fetch(f"SELECT key FROM {schema}.processed_inputs ORDER BY key")
    assert [row["key"] for row in keys] == ["m1", "m2", "m3", "m4"]
