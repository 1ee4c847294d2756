"""The outbox relay on real PostgreSQL: what commits while a pass publishes leaves next."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
from casewire_common.kafka import KafkaRecord
from casewire_common.metrics import new_registry
from casewire_common.outbox import OutboxMetrics, OutboxRelay
from casewire_common.pg import migrate
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA

_INSERT = (
    f"INSERT INTO {SCHEMA}.outbox (topic, key, headers, value)"
    " VALUES ('casewire.case-events.v1', $1, '{}', ''::bytea)"
)


async def test_a_wake_while_a_pass_publishes_is_not_lost(
    database_url: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    await pg.execute(_INSERT, "first")
    published: list[bytes] = []
    second_published = asyncio.Event()

    async def publish(records: Sequence[KafkaRecord]) -> None:
        published.extend(record.key for record in records)
        if published == [b"first"]:
            # A batch commits while the first row is on its way (no NOTIFY: the wake of the
            # service's own commit alone must bring it).
            await pg.execute(_INSERT, "second")
            relay.wake()
        elif b"second" in published:
            second_published.set()

    # An idle poll far longer than the wait below: only the wake can bring the second row.
    relay = OutboxRelay(
        database_url,
        SCHEMA,
        publish,
        OutboxMetrics(new_registry(), "router"),
        idle_poll_seconds=3600,
    )
    await relay.start()
    try:
        await asyncio.wait_for(second_published.wait(), 60)
    finally:
        await relay.stop()
    assert published == [b"first", b"second"]
