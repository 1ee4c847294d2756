"""Consumer lag read from a real consumer on the real broker."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from casewire_common.lag import ConsumerLag
from casewire_common.metrics import new_registry
from prometheus_client import generate_latest

from tests.integration.helpers import eventually, metric_value, producer


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


class _RebalancedWhileReading:
    """A real consumer whose first committed-offset read lets a second member join the
    group and waits until the broker took partitions away: the race that made aiokafka's
    `highwater` fail with "Partition is not assigned" inside the lag gauge."""

    def __init__(self, kafka_consumer: AIOKafkaConsumer, joining: AIOKafkaConsumer) -> None:
        self._consumer = kafka_consumer
        self._joining: AIOKafkaConsumer | None = joining

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    def highwater(self, partition: TopicPartition) -> int | None:
        return self._consumer.highwater(partition)

    async def committed(self, partition: TopicPartition) -> int | None:
        if self._joining is not None:
            before = self.assignment()
            await self._joining.start()
            self._joining = None
            await eventually(
                self._settled_assignment, lambda now: bool(now) and now != before, timeout=30
            )
        return await self._consumer.committed(partition)

    async def _settled_assignment(self) -> set[TopicPartition]:
        return self.assignment()


async def test_lag_survives_a_rebalance_between_reading_and_committed(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"lag-rebalance-{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    async with producer(kafka_bootstrap) as kafka:
        for partition in range(4):
            await kafka.send_and_wait(topic, b"m", partition=partition)
    group = f"lag-rebalance-reader-{unique}"
    members = [
        AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=200,
        )
        for _ in range(2)
    ]
    first, joining = members
    await first.start()
    try:
        fetched = 0
        while fetched < 4:  # the first member owns and has fetched every partition
            batch = await first.getmany(timeout_ms=500)
            fetched += sum(len(records) for records in batch.values())
        registry = new_registry()
        lag = ConsumerLag(registry, [(group, _Held(_RebalancedWhileReading(first, joining)))])
        await lag.refresh()
        reported = {
            int(sample.labels["partition"])
            for family in registry.collect()
            if family.name == "casewire_consumer_lag"
            for sample in family.samples
        }
        assert reported <= {tp.partition for tp in first.assignment()}
        assert len(first.assignment()) < 4  # the rebalance did happen during the read
    finally:
        for member in members:
            await member.stop()
