"""How the router's outbox relay puts events on Kafka: batched, but in order per case."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from casewire_common.kafka import PRODUCER_BATCH_BYTES, KafkaRecord, OrderedPublisher

from tests.integration.helpers import eventually, topic_reader


async def test_events_of_one_key_keep_their_order_across_full_record_batches(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"publishing.{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    keys = [f"case-{n}".encode() for n in range(5)]
    padding = b"x" * 20_000  # so that every partition needs several record batches
    records = [
        KafkaRecord(topic, keys[n % len(keys)], [("seq", str(n).encode())], padding)
        for n in range(5 * PRODUCER_BATCH_BYTES // len(padding))
    ]
    publisher = OrderedPublisher(kafka_bootstrap, f"test-{unique}")
    await publisher.start()
    try:
        await publisher(records)
    finally:
        await publisher.stop()

    async with topic_reader(kafka_bootstrap, topic) as reader:
        received: list[tuple[bytes, int, int]] = []

        async def read() -> int:
            for batch in (await reader.getmany(timeout_ms=200)).values():
                received.extend(
                    (r.key or b"", r.partition, int(dict(r.headers)["seq"])) for r in batch
                )
            return len(received)

        await eventually(read, lambda count: count >= len(records))
    assert len(received) == len(records)  # every record acknowledged was published, once
    for key in keys:
        sequence = [seq for k, _, seq in received if k == key]
        assert sequence == sorted(sequence)
        assert len({partition for k, partition, _ in received if k == key}) == 1
