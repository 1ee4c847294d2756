"""The local stack the project starts: a real Kafka-protocol broker and a real PostgreSQL."""

from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from casewire_common import topics
from casewire_dev.stack import Stack

from tests.conftest import consume_until


async def test_stack_creates_every_topic_and_its_dead_letter_topic(stack: Stack) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    for topic in topics.ALL:
        assert topic in existing
        assert topics.dlq(topic) in existing


async def test_broker_round_trips_a_keyed_record_with_headers(stack: Stack, unique: str) -> None:
    topic = topics.dlq(topics.RAW)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"body", key=unique.encode(), headers=[("h", b"v")])
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap_servers,
        group_id=f"stack-test-{unique}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        records = await consume_until(
            consumer, lambda rs: any(r.key == unique.encode() for r in rs)
        )
    finally:
        await consumer.stop()
    mine = [r for r in records if r.key == unique.encode()]
    assert len(mine) == 1
    assert mine[0].value == b"body"
    assert list(mine[0].headers) == [("h", b"v")]


async def test_postgres_answers_and_gives_each_test_its_own_database(
    database_url: str, stack: Stack
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        name = await connection.fetchval("SELECT current_database()")
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await connection.close()
    assert name.startswith("casewire_test_")
    assert tables == 0
