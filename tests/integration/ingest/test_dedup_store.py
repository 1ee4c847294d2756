"""The dedup memory on the real PostgreSQL, with concurrent requests sharing statements: a key
brought by several requests at once is owned by exactly one of them, and marks survive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from casewire_common.pg import Database, migrate
from casewire_common.unit_of_work import RetentionPruner
from casewire_ingest.adapters.dedup import (
    MIGRATIONS_PACKAGE,
    SCHEMA,
    SEEN_MESSAGES,
    PostgresDedupStore,
)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    opened = Database(database_url, min_size=1, max_size=4)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_concurrent_claims_of_one_key_give_it_to_exactly_one_request(
    database: Database, unique: str
) -> None:
    store = PostgresDedupStore(database, timedelta(seconds=60))
    shared, own = f"{unique}:shared", [f"{unique}:own-{n}" for n in range(8)]
    # Eight requests at once, as a redelivery racing the first delivery: one statement.
    claims = await asyncio.gather(*(store.claim([shared, key]) for key in own))
    assert [claimed - {shared} for claimed in claims] == [{key} for key in own]
    assert sum(shared in claimed for claimed in claims) == 1


async def test_published_keys_are_never_claimed_again_and_released_ones_are(
    database: Database, unique: str
) -> None:
    store = PostgresDedupStore(database, timedelta(seconds=60))
    published, failed = f"{unique}:published", f"{unique}:failed"
    assert await store.claim([published]) == {published}
    assert await store.claim([failed]) == {failed}
    store.mark_published([published])  # written in the background
    await store.release([failed])
    await store.flush()
    # A new store: the memory is in PostgreSQL, not in the process (a restart, a replica).
    again = PostgresDedupStore(database, timedelta(seconds=60))
    assert await again.claim([published, failed]) == {failed}


async def test_a_claim_of_a_request_that_never_finished_expires(
    database: Database, unique: str
) -> None:
    store = PostgresDedupStore(database, timedelta(milliseconds=50))
    key = f"{unique}:abandoned"
    assert await store.claim([key]) == {key}
    assert await store.claim([key]) == set()  # still held by the first request
    await asyncio.sleep(0.1)
    assert await store.claim([key]) == {key}


async def test_marks_land_in_the_background_without_anyone_waiting(
    database: Database, unique: str
) -> None:
    store = PostgresDedupStore(database, timedelta(milliseconds=50))
    keys = [f"{unique}:answered-{n}" for n in range(5)]
    assert await store.claim(keys) == set(keys)
    for key in keys:  # five requests answered one after the other
        store.mark_published([key])
    await asyncio.sleep(0.3)  # longer than the claims live: only the marks keep the keys out
    assert await PostgresDedupStore(database, timedelta(milliseconds=50)).claim(keys) == set()


async def test_keys_older_than_the_retention_are_forgotten_younger_ones_still_drop_redeliveries(
    database: Database, database_url: str, unique: str
) -> None:
    store = PostgresDedupStore(database, timedelta(seconds=60))
    old, young = f"{unique}:old", f"{unique}:young"
    assert await store.claim([old, young]) == {old, young}
    store.mark_published([old, young])
    await store.flush()
    await database.pool.execute(
        f"UPDATE {SCHEMA}.seen_messages SET claimed_at = now() - interval '15 days' WHERE key = $1",
        old,
    )
    pruner = RetentionPruner(database_url, [SEEN_MESSAGES], timedelta(days=14), batch_size=1)

    assert await pruner.prune() == 1
    assert await store.claim([old, young]) == {old}  # forgotten: a redelivery this late is new
