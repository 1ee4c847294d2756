"""Consumer lag as a Prometheus gauge: how far each partition a consumer owns is behind.

Lag = the partition's high watermark (as last fetched) minus the group's committed offset,
read every few seconds for the partitions assigned to this replica; summed over a
deployment's pods it is the group's lag (each partition is owned by one replica).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

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
        self.task = Periodic("consumer-lag", interval_seconds, self.refresh)

    async def refresh(self) -> None:
        readings: list[tuple[str, str, str, int]] = []
        for group, subscriber in self._subscribers:
            consumer = subscriber.consumer
            if consumer is None:
                continue
            for partition in sorted(consumer.assignment()):
                highwater = consumer.highwater(partition)
                if highwater is None:
                    continue  # nothing fetched from it yet
                committed = await consumer.committed(partition)
                lag = highwater - (committed if committed is not None else 0)
                readings.append((group, partition.topic, str(partition.partition), max(0, lag)))
        self._gauge.clear()  # partitions this replica no longer owns disappear
        for group, topic, partition, lag in readings:
            self._gauge.labels(group, topic, partition).set(lag)
