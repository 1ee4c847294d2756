"""The tools' one database helper (`casewire_dev.stack`) on a real PostgreSQL server: a run's
scratch database goes with the run, and a fresh database starts empty."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from casewire_dev import stack as local_stack

pytestmark = pytest.mark.integration


async def _exists(server_url: str, name: str) -> bool:
    connection = await asyncpg.connect(server_url)
    try:
        return bool(await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await connection.close()


async def test_a_scratch_database_is_dropped_after_its_run_even_when_the_run_fails(
    stack: local_stack.Stack,
) -> None:
    name = f"casewire_scratch_{uuid.uuid4().hex[:10]}"
    left_open: list[asyncpg.Connection] = []

    async def failing_run() -> None:
        async with local_stack.scratch_database(stack.database_url, name) as url:
            assert url == local_stack.database_url(stack.database_url, name)
            assert await _exists(stack.database_url, name)
            left_open.append(await asyncpg.connect(url))
            raise RuntimeError("the run failed")

    with pytest.raises(RuntimeError, match="the run failed"):
        await failing_run()

    assert not await _exists(stack.database_url, name)  # despite the connection left open
    await left_open[0].close()


async def test_a_fresh_database_starts_empty_and_a_kept_one_keeps_its_tables(
    stack: local_stack.Stack,
) -> None:
    name = f"casewire_fresh_{uuid.uuid4().hex[:10]}"
    url = await local_stack.ensure_database(stack.database_url, name)
    try:
        connection = await asyncpg.connect(url)
        await connection.execute("CREATE TABLE left_behind (id int)")

        assert await local_stack.ensure_database(stack.database_url, name) == url
        assert await connection.fetchval("SELECT to_regclass('left_behind') IS NOT NULL")

        await local_stack.ensure_database(stack.database_url, name, fresh=True)
        await connection.close()  # closed by the server already: the drop forced it
        fresh = await asyncpg.connect(url)
        try:
            assert not await fresh.fetchval("SELECT to_regclass('left_behind') IS NOT NULL")
        finally:
            await fresh.close()
    finally:
        await local_stack.drop_database(stack.database_url, url)
    assert not await _exists(stack.database_url, name)
