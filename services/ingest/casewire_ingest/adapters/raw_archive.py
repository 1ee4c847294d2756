"""Reads the bodies kept on a raw topic (`casewire.raw.v1` or its dead-letter topic) for a
replay: every partition, from the first record that can have been received at `since` (the
beginning without one) to where the partition ended when the reading started (by the records'
Kafka timestamps against this machine's clock)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from casewire_ingest.domain.archive import KeptBody

# Records are found by their Kafka timestamp (set by the writing replica, just after it
# received the body) and kept by their `casewire-received-at` header: the search starts this
# much earlier, for replicas whose clocks differ and bodies that waited for Kafka.
_TIMESTAMP_MARGIN = timedelta(minutes=5)


class TopicMissing(Exception):
    """The topic does not exist (or has no partitions) on this cluster."""


class RawTopicReader:
    """`records()` yields the kept bodies; `complete` says whether every partition was read
    to its end (False when the broker sent nothing for `idle_seconds` before that)."""

    def __init__(
        self, bootstrap_servers: str, topic: str, *, since: datetime | None, idle_seconds: float
    ) -> None:
        self._bootstrap_servers = bootstrap_servers.split(",")
        self._topic = topic
        self._since = since
        self._idle_seconds = idle_seconds
        self.complete = False

    async def records(self) -> AsyncIterator[KeptBody]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            client_id="casewire-ingest-replay",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            await consumer.topics()
            partitions = [
                TopicPartition(self._topic, partition)
                for partition in sorted(consumer.partitions_for_topic(self._topic) or ())
            ]
            if not partitions:
                raise TopicMissing(f"topic {self._topic} does not exist")
            consumer.assign(partitions)
            # Some Kafka-protocol brokers (Tansu) answer the start of the last record batch
            # as a partition's end: the end is where reading may stop at the earliest; it
            # stops there once a fetch finds nothing more, or at a record written after the
            # reading started.
            started_ms = int(time.time() * 1000)
            ends = await consumer.end_offsets(partitions)
            starts = await self._start_offsets(consumer, partitions, ends)
            for partition, offset in starts.items():
                consumer.seek(partition, offset)
            reading = set(partitions)
            loop = asyncio.get_running_loop()
            idle_until = loop.time() + self._idle_seconds
            while reading:
                batch = await consumer.getmany(*reading, timeout_ms=500)
                if not any(batch.values()):
                    if all([await consumer.position(p) >= ends[p] for p in reading]):
                        break
                    if loop.time() > idle_until:
                        return
                    continue
                idle_until = loop.time() + self._idle_seconds
                for partition, records in batch.items():
                    for record in records:
                        if record.timestamp > started_ms:
                            reading.discard(partition)
                            consumer.pause(partition)
                            break
                        yield KeptBody(
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            headers={
                                name: value.decode(errors="replace")
                                for name, value in record.headers
                            },
                            body=record.value or b"",
                        )
            self.complete = True
        finally:
            await consumer.stop()

    async def _start_offsets(
        self,
        consumer: AIOKafkaConsumer,
        partitions: list[TopicPartition],
        ends: dict[TopicPartition, int],
    ) -> dict[TopicPartition, int]:
        beginnings: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
        if self._since is None:
            return beginnings
        search_ms = int((self._since - _TIMESTAMP_MARGIN).timestamp() * 1000)
        try:
            found = await consumer.offsets_for_times({p: search_ms for p in partitions})
        except KafkaError:
            return beginnings  # a broker that cannot search by time: read it all, filter
        return {
            partition: ends[partition] if at is None else max(at.offset, beginnings[partition])
            for partition, at in found.items()
        }
