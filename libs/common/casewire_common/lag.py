"""Consumer lag as a Prometheus gauge: how far each partition a consumer owns is behind.

Lag = the partition's high watermark (as last fetched) minus the group's committed offset,
read every few seconds for the partitions assigned to this replica; summed over a
deployment's pods it is the group's lag (each partition is owned by one replica).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from casewire_common.periodic import Periodic


class _Subscriber(Protocol):
    @property
    def consumer(self) -> Any: ...  # aiokafka.AIOKafkaConsumer while started, else None


class ConsumerLag:
    def __init__(
        self,
        registry: CollectorRegistry,
        subscribers: Sequence[tuple[str, _Subscriber]],
        interval_seconds: float = 10.0,
    ) -> None:
        self._gauge = Gauge(
            "casewire_consumer_lag",
            "Records not yet processed and committed, by consumer group, topic and partition"
            " (the partitions this replica owns).",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self._subscribers = subscribers
        # Reading committed offsets waits for the group coordinator as long as the broker is
        # away: a round is cut off so that the next one starts afresh.
        self.task = Periodic(
            "consumer-lag", interval_seconds, self.refresh, round_timeout=3 * interval_seconds
        )

    async def refresh(self) -> None:
        readings: list[tuple[str, str, str, int]] = []
        for group, subscriber in self._subscribers:
            consumer = subscriber.consumer
            if consumer is None:
                continue
            for partition, lag in await partition_lags(consumer):
                readings.append((group, partition.topic, str(partition.partition), lag))
        self._gauge.clear()  # partitions this replica no longer owns disappear
        for group, topic, partition, lag in readings:
            self._gauge.labels(group, topic, partition).set(lag)


async def partition_lags(consumer: Any) -> list[tuple[TopicPartition, int]]:
    """The lag of each partition `consumer` owns before and after reading it.

    A rebalance can revoke a partition whenever this awaits, and aiokafka's `highwater` fails
    on a partition that is not assigned: every high watermark is taken before the first
    await, and a partition revoked meanwhile is left out (its new owner reports it).
    """
    highwaters: dict[TopicPartition, int] = {}
    for partition in consumer.assignment():
        highwater = consumer.highwater(partition)
        if highwater is not None:  # None: nothing fetched from it yet
            highwaters[partition] = highwater
    lags: list[tuple[TopicPartition, int]] = []
    for partition, highwater in sorted(highwaters.items()):
        committed = await consumer.committed(partition)
        lags.append((partition, max(0, highwater - (committed or 0))))
    still_owned = consumer.assignment()
    return [(partition, lag) for partition, lag in lags if partition in still_owned]
