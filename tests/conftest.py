"""Shared fixtures: the real local stack (broker + PostgreSQL) started by the project's own
`casewire_dev.stack`, once per test session, on free ports in a temporary folder.

Set CASEWIRE_TEST_DATABASE_URL to use an existing PostgreSQL server instead of starting one
(each session then gets its own fresh database on it).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from casewire_dev import stack as local_stack
from casewire_dev.identity import LocalIdentity

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real payloads and corpora, read in place (never copied into the repo)."""
    path = Path(os.environ.get("CASEWIRE_SHARED_DATA", SHARED_DATA))
    assert path.is_dir(), f"shared data not found at {path}: set CASEWIRE_SHARED_DATA"
    return path


@pytest.fixture
def identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalIdentity:
    """A local identity provider that the routers this test creates trust (its settings are in
    the environment); `identity.token(...)` signs a caller's token."""
    provider = LocalIdentity(tmp_path / "identity" / "jwks.json")
    for name, value in provider.router_env().items():
        monkeypatch.setenv(name, value)
    return provider


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_stack.Stack]:
    state_dir = tmp_path_factory.mktemp("stack")
    external = os.environ.get("CASEWIRE_TEST_DATABASE_URL")
    started = local_stack.up(
        state_dir,
        kafka_port=local_stack.free_port(),
        postgres_port=local_stack.free_port(),
        database_url=external,
        partitions=3,
    )
    try:
        yield started
    finally:
        local_stack.down(state_dir)


@pytest.fixture
async def database_url(stack: local_stack.Stack) -> str:
    """A fresh, empty database on the stack's server for one test."""
    name = f"casewire_test_{uuid.uuid4().hex[:12]}"
    return await local_stack.ensure_database(stack.database_url, name)


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def kafka_bootstrap(stack: local_stack.Stack) -> str:
    return stack.kafka_bootstrap_servers


@pytest.fixture
def unique() -> str:
    """A suffix that keeps one test's topics, groups and keys apart from another's."""
    return uuid.uuid4().hex[:10]


async def consume_until(
    consumer: AIOKafkaConsumer,
    done: object,
    *,
    timeout: float = 20.0,
) -> list[object]:
    """Read records until `done(records)` holds or `timeout` passes; returns what was read."""
    records: list[object] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        batch = await consumer.getmany(timeout_ms=200)
        for partition_records in batch.values():
            records.extend(partition_records)
        if callable(done) and done(records):
            return records
    return records
