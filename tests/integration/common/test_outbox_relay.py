"""The outbox on real PostgreSQL: rows queued alone leave like the others; what commits while
a pass publishes leaves next."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
from casewire_common.events import EventRecord, encode_event
from casewire_common.kafka import KafkaRecord
from casewire_common.metrics import new_registry
from casewire_common.outbox import (
    OutboxMetrics,
    OutboxRelay,
    add_to_outbox,
    notify_channel,
    queue_alone,
)
from casewire_common.pg import migrate
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from pydantic import BaseModel

from tests.unit.router.factories import T0

_INSERT = (
    f"INSERT INTO {SCHEMA}.outbox (topic, key, headers, value)"
    " VALUES ('casewire.case-events.v1', $1, '{}', ''::bytea)"
)


class _Data(BaseModel):
    n: int


def _records(first: int) -> list[tuple[str, EventRecord]]:
    return [
        (
            f"topic-{n % 2}",
            encode_event(
                event_id=f"e{n}",
                event_type="casewire.router.watermark",
                source="test",
                subject=f"key-{n}",
                time=T0,
                data=_Data(n=n),
            ),
        )
        for n in range(first, first + 3)
    ]


async def test_rows_queued_alone_notify_and_leave_in_order_like_the_others(
    database_url: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    notified = asyncio.Event()
    await pg.add_listener(notify_channel(SCHEMA), lambda *_: notified.set())
    writer = await asyncpg.connect(database_url)
    try:
        await queue_alone(writer, SCHEMA, _records(0))
        await asyncio.wait_for(notified.wait(), 60)  # the relay wakes on it
        async with writer.transaction():
            await add_to_outbox(writer, SCHEMA, _records(3))
    finally:
        await writer.close()
    published: list[KafkaRecord] = []

    async def publish(records: Sequence[KafkaRecord]) -> None:
        published.extend(records)

    relay = OutboxRelay(database_url, SCHEMA, publish, OutboxMetrics(new_registry(), "router"))
    assert await relay.relay_once(pg) == 6
    expected = [*_records(0), *_records(3)]
    assert [(r.topic, r.key, r.value) for r in published] == [
        (topic, record.key.encode(), record.value) for topic, record in expected
    ]
    assert [dict(r.headers) for r in published] == [record.headers for _, record in expected]


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
