"""Consumer lag read from a real consumer on the real broker."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer
from casewire_common.lag import ConsumerLag
from casewire_common.metrics import new_registry
from prometheus_client import generate_latest

from tests.integration.helpers import metric_value, producer


class _Held:
    """A subscriber stand-in holding a real, started aiokafka consumer."""

    def __init__(self, kafka_consumer: object) -> None:
        self.consumer = kafka_consumer


async def test_lag_is_what_the_group_has_not_committed(kafka_bootstrap: str, unique: str) -> None:
    topic = f"lag-{unique}"
    async with producer(kafka_bootstrap) as kafka:
        for n in range(7):
            await kafka.send_and_wait(topic, f"m{n}".encode(), partition=0)
    group = f"lag-reader-{unique}"
    reader = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await reader.start()
    try:
        registry = new_registry()
        lag = ConsumerLag(registry, [(group, _Held(reader))])
        fetched = 0
        while fetched < 7:  # read without committing: everything is still lag
            batch = await reader.getmany(timeout_ms=500)
            fetched += sum(len(records) for records in batch.values())
        await lag.refresh()
        labels = {"group": group, "topic": topic, "partition": "0"}
        assert (
            metric_value(generate_latest(registry).decode(), "casewire_consumer_lag", labels) == 7
        )
        await reader.commit()
        await lag.refresh()
        assert (
            metric_value(generate_latest(registry).decode(), "casewire_consumer_lag", labels) == 0
        )
    finally:
        await reader.stop()
