"""The router's low watermark (DESIGN.md, "Event time and late data").

Every few hundred milliseconds the router says, for each partition of the messages topic it
owns, up to which instant it has processed everything the broker had received: the instant
of its last fetch when nothing was left to process, else the broker timestamp of the last
record it processed. The mark is written to the outbox, so it leaves after every event it
vouches for, once to each partition of the case-events topic. The SLA service reads the
marks of every partition and holds a breach until the lowest has passed its instant.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import ConsumerRecord, TopicPartition
from casewire_common import topics
from casewire_common.events import ROUTER_WATERMARK, EventRecord, WatermarkData, encode_event
from casewire_common.kafka import keys_for_partitions
from casewire_common.outbox import OutboxRelay, queue_alone
from casewire_common.periodic import Periodic
from casewire_common.pg import Database

EVENT_SOURCE = "casewire/router"
KEY_PREFIX = "casewire-router-watermark-"


class _Subscriber(Protocol):
    @property
    def consumer(self) -> Any: ...  # aiokafka.AIOKafkaConsumer while started, else None


class _Partitions(Protocol):
    async def partitions(self, topic: str) -> int: ...


@dataclass(frozen=True)
class PartitionReading:
    """What this replica knows of one partition it owns."""

    processed_next: int | None  # the offset after the last record processed and committed
    processed_until: datetime | None  # broker timestamp of that record
    highwater: int | None  # the partition's end offset, as of the last fetch
    polled_at: datetime | None  # when that fetch answered


def partition_watermark(reading: PartitionReading) -> tuple[datetime, bool] | None:
    """Up to which instant everything the broker received on the partition is processed, and
    whether nothing was left (caught up); None when this replica cannot vouch for anything."""
    if reading.highwater is None or reading.polled_at is None or reading.processed_next is None:
        return None
    if reading.processed_next >= reading.highwater:
        return reading.polled_at, True
    if reading.processed_until is None:
        return None
    return reading.processed_until, False


def _instant(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


class WatermarkHeartbeat:
    """Tracks what the message consumer has processed and writes the marks."""

    def __init__(
        self,
        database: Database,
        relay: OutboxRelay,
        partitions: _Partitions,
        subscriber: _Subscriber,
        schema: str,
        interval_seconds: float,
    ) -> None:
        self._database = database
        self._relay = relay
        self._partitions = partitions
        self._subscriber = subscriber
        self._schema = schema
        self._replica = uuid.uuid4().hex[:12]
        self._processed: dict[TopicPartition, tuple[int, datetime | None]] = {}
        self._assignment: frozenset[TopicPartition] = frozenset()
        self.task = Periodic("router-watermark", interval_seconds, self.beat)

    def processed(self, records: Iterable[ConsumerRecord[bytes, bytes]]) -> None:
        """Records whose effects (and offsets) are committed: called after each batch."""
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            known = self._processed.get(partition)
            if known is None or record.offset >= known[0]:
                self._processed[partition] = (record.offset + 1, _instant(record.timestamp))

    async def beat(self) -> None:
        """Write one mark (a copy per case-events partition) for the partitions owned now."""
        data = await self.mark()
        if data is None:
            return
        count = await self._partitions.partitions(topics.CASE_EVENTS)
        records = watermark_records(data, count, datetime.now(UTC))
        async with self._database.pool.acquire() as connection:
            await queue_alone(connection, self._schema, records)
        self._relay.wake()

    async def mark(self) -> WatermarkData | None:
        consumer = self._subscriber.consumer
        if consumer is None:
            return None
        assignment = frozenset(consumer.assignment())
        for partition in self._assignment - assignment:
            self._processed.pop(partition, None)  # another replica's now; ours may be stale
        self._assignment = assignment
        total = len(consumer.partitions_for_topic(topics.MESSAGES) or ())
        watermarks: dict[int, datetime] = {}
        caught_up: list[int] = []
        for partition in sorted(assignment):
            reading = await self._reading(consumer, partition)
            if reading is None:
                continue
            watermark = partition_watermark(reading)
            if watermark is None:
                continue
            watermarks[partition.partition], done = watermark
            if done:
                caught_up.append(partition.partition)
        if not watermarks or total == 0:
            return None
        return WatermarkData(
            topic=topics.MESSAGES,
            partitions=total,
            watermarks=watermarks,
            caught_up=caught_up,
            replica=self._replica,
        )

    async def _reading(self, consumer: Any, partition: TopicPartition) -> PartitionReading | None:
        try:
            highwater = consumer.highwater(partition)
            polled = consumer.last_poll_timestamp(partition)
            if partition not in self._processed:
                # Nothing processed here yet (just assigned): the group's committed offset is
                # where the previous owner's processing ended.
                committed = await consumer.committed(partition)
                if partition not in self._processed:  # no batch finished meanwhile
                    self._processed[partition] = (committed or 0, None)
        except (AssertionError, KeyError):  # revoked meanwhile (a rebalance)
            return None
        processed_next, processed_until = self._processed[partition]
        return PartitionReading(
            processed_next=processed_next,
            processed_until=processed_until,
            highwater=highwater,
            polled_at=_instant(polled) if polled and polled > 0 else None,
        )


def watermark_records(
    data: WatermarkData, partitions: int, now: datetime
) -> Sequence[tuple[str, EventRecord]]:
    """The mark as outbox records: one per case-events partition, in partition order."""
    return [
        (
            topics.CASE_EVENTS,
            encode_event(
                event_id=str(uuid.uuid4()),
                event_type=ROUTER_WATERMARK,
                source=EVENT_SOURCE,
                subject=key,
                time=now,
                data=data,
            ),
        )
        for key in keys_for_partitions(KEY_PREFIX, partitions)
    ]
