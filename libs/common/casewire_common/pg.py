"""PostgreSQL plumbing every service shares: the pool and versioned schema migrations."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger(__name__)

# A connection of one's own or one borrowed from a pool: repositories accept either.
Connection = asyncpg.Connection | PoolConnectionProxy

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.(sql|py)$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str, schema: str) -> list[Migration]:
    """Migrations shipped inside `package`, in version order: `NNNN_name.sql` files, and
    `NNNN_name.py` modules whose `sql(schema)` renders DDL that several services share
    (written once in `casewire_common`, e.g. `unit_of_work.tables_ddl`)."""
    root: Traversable = resources.files(package)
    migrations = []
    for entry in root.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        if match.group(2) == "sql":
            sql = entry.read_text("utf-8")
        else:
            sql = importlib.import_module(f"{package}.{entry.name.removesuffix('.py')}").sql(schema)
            if not isinstance(sql, str):
                raise TypeError(f"{package}.{entry.name}: sql(schema) must return a str")
        migrations.append(Migration(int(match.group(1)), entry.name, sql))
    migrations.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {package}: {versions}")
    return migrations


async def migrate(dsn: str, schema: str, package: str) -> list[str]:
    """Apply the pending migrations of one service's schema; safe to run from several pods."""
    migrations = load_migrations(package, schema)
    applied: list[str] = []
    connection = await asyncpg.connect(dsn)
    try:
        # One migrator at a time per schema; the others wait, then find nothing left to do.
        await connection.execute("SELECT pg_advisory_lock(hashtext($1))", f"migrate:{schema}")
        await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await connection.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row["version"]
            for row in await connection.fetch(f'SELECT version FROM "{schema}".schema_migrations')
        }
        for migration in migrations:
            if migration.version in done:
                continue
            async with connection.transaction():
                await connection.execute(f'SET LOCAL search_path TO "{schema}"')
                await connection.execute(migration.sql)
                await connection.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)',
                    migration.version,
                    migration.name,
                )
            log.info("migration applied", schema=schema, migration=migration.name)
            applied.append(migration.name)
    finally:
        await connection.execute("SELECT pg_advisory_unlock_all()")
        await connection.close()
    return applied


async def pending_migrations(connection: Connection, schema: str, package: str) -> int:
    """How many migrations are not applied yet: a service refuses to start on an old schema."""
    exists = await connection.fetchval("SELECT to_regclass($1)", f"{schema}.schema_migrations")
    known = {migration.version for migration in load_migrations(package, schema)}
    if exists is None:
        return len(known)
    done = {
        row["version"]
        for row in await connection.fetch(f'SELECT version FROM "{schema}".schema_migrations')
    }
    return len(known - done)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool connections are returned as they are: the services keep no session state (no SET,
    LISTEN or advisory locks on pooled connections; transactions always end), so asyncpg's
    default reset would only cost a round trip per use."""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: Mapping[str, str] | None = None,
) -> asyncpg.Pool:
    """`server_settings`: PostgreSQL settings for every session of the pool."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        server_settings=dict(server_settings or {}),
    )
    assert pool is not None
    return pool


class Database:
    """A pool opened inside the running event loop (the app's lifespan), shared by the parts
    of one service that were wired before the loop existed."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._server_settings = server_settings
        self._pool: asyncpg.Pool | None = None

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database pool is not open (the app has not started)")
        return self._pool

    async def open(self) -> None:
        self._pool = await create_pool(
            self._dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            server_settings=self._server_settings,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
