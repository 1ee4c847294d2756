"""The Kafka clients every service builds (faststream's broker; a plain producer for the
outbox), ordered batch publishing, and the dead-letter path for what cannot be processed."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple, TypedDict

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, Counter

from casewire_common import topics
from casewire_common.metrics import precreate
from casewire_common.settings import ServiceSettings

log = structlog.get_logger(__name__)


def build_broker(bootstrap_servers: str, registry: CollectorRegistry, service: str) -> KafkaBroker:
    """A broker with faststream's Prometheus middleware on the service's registry."""
    return KafkaBroker(
        bootstrap_servers.split(","),
        client_id=f"casewire-{service}",
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=f"casewire-{service}")],
        acks="all",
        linger_ms=2,
        logger=None,
    )


# Big enough that a relay pass mostly sends one record batch per partition, well below the
# 1 MiB that Kafka accepts by default (`message.max.bytes`).
PRODUCER_BATCH_BYTES = 256 * 1024


class KafkaRecord(NamedTuple):
    topic: str
    key: bytes
    headers: list[tuple[str, bytes]]
    value: bytes


_PARTITIONER = DefaultPartitioner()


@functools.lru_cache(maxsize=16_384)
def _partition_of(key: bytes, partitions: tuple[int, ...]) -> int:
    # Kafka's default partitioner (murmur2, as every Kafka client does it) is pure Python in
    # aiokafka: a case's many events hash once.
    return int(_PARTITIONER(key, list(partitions), list(partitions)))


@functools.lru_cache(maxsize=64)
def keys_for_partitions(prefix: str, count: int) -> tuple[str, ...]:
    """One key per partition `0..count-1` that Kafka's default partitioner sends there: a
    record meant for every partition of a topic (a watermark) is written once with each."""
    partitions = tuple(range(count))
    keys: dict[int, str] = {}
    index = 0
    while len(keys) < count:
        key = f"{prefix}{index}"
        keys.setdefault(_partition_of(key.encode(), partitions), key)
        index += 1
    return tuple(keys[partition] for partition in partitions)


class OrderedPublisher:
    """Publishes records in order per key on a plain aiokafka producer of its own (the outbox
    relay's): aiokafka's batch API costs half of faststream's `publish` or a `send` per record.
    `start` creates the producer: aiokafka clients belong to the loop they are created in."""

    def __init__(self, bootstrap_servers: str, service: str) -> None:
        self._bootstrap_servers = bootstrap_servers.split(",")
        self._client_id = f"casewire-{service}-outbox"
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            acks="all",
            linger_ms=2,
            max_batch_size=PRODUCER_BATCH_BYTES,
        )
        await producer.start()
        self._producer = producer

    async def partitions(self, topic: str) -> int:
        """How many partitions `topic` has (from the producer's metadata)."""
        if self._producer is None:
            raise RuntimeError("the publisher is not started")
        return len(await self._producer.partitions_for(topic))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop with the same bound as `stop_broker`."""
        if self._producer is not None:
            await _stop_within(self._producer.stop(), timeout)
            self._producer = None

    async def __call__(self, records: Sequence[KafkaRecord]) -> None:
        """Publish `records`; returns once the broker acknowledged every one of them.

        Records of one key keep their order: each goes to its key's partition, appended to that
        partition's record batch in the order given, and a partition's batches leave in turn.
        """
        producer = self._producer
        if producer is None:
            raise RuntimeError("the publisher is not started")
        partitions: dict[str, tuple[int, ...]] = {}
        batches: dict[tuple[str, int], BatchBuilder] = {}
        acknowledgements: list[Awaitable[Any]] = []
        for record in records:
            topic_partitions = partitions.get(record.topic)
            if topic_partitions is None:
                topic_partitions = tuple(sorted(await producer.partitions_for(record.topic)))
                partitions[record.topic] = topic_partitions
            destination = (record.topic, _partition_of(record.key, topic_partitions))
            batch = batches.get(destination)
            if batch is None:
                batch = batches[destination] = producer.create_batch()
            if _append(batch, record):
                continue
            # The batch is full: it leaves, and the partition's next one takes any record.
            acknowledgements.append(await _send(producer, batch, *destination))
            batch = batches[destination] = producer.create_batch()
            _append(batch, record)
        for destination, batch in batches.items():
            acknowledgements.append(await _send(producer, batch, *destination))
        await asyncio.gather(*acknowledgements)


def _append(batch: BatchBuilder, record: KafkaRecord) -> bool:
    metadata = batch.append(
        timestamp=None, key=record.key, value=record.value, headers=record.headers
    )
    return metadata is not None


async def _send(
    producer: AIOKafkaProducer, batch: BatchBuilder, topic: str, partition: int
) -> Awaitable[Any]:
    batch.close()  # once queued, nothing else may join it
    acknowledgement: Awaitable[Any] = await producer.send_batch(batch, topic, partition=partition)
    return acknowledgement


# How long a batch poll waits for records: it returns the moment the consumer's fetcher has
# some (`wait_on_fetches`), so this bounds only how often an idle consumer wakes up.
POLL_TIMEOUT_MS = 1000


class BatchConsumerOptions(TypedDict):
    batch_timeout_ms: int
    max_records: int
    fetch_max_wait_ms: int
    fetch_min_bytes: int
    auto_offset_reset: Literal["earliest"]
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int
    rebalance_timeout_ms: int
    group_instance_id: str | None
    ack_policy: AckPolicy


def batch_consumer_options(settings: ServiceSettings) -> BatchConsumerOptions:
    """What every batch subscriber (`batch=True`) of the services shares: how it polls and
    fetches, how its group notices it joined, left or died (docs/operations/scaling.md,
    "Failover"), and that a failed batch is not acknowledged (it is read again)."""
    return {
        "batch_timeout_ms": POLL_TIMEOUT_MS,
        "max_records": settings.consumer_max_records,
        "fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms,
        "fetch_min_bytes": 1,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.consumer_session_timeout_ms,
        "heartbeat_interval_ms": settings.consumer_heartbeat_interval_ms,
        "max_poll_interval_ms": settings.consumer_max_poll_interval_ms,
        "rebalance_timeout_ms": settings.consumer_rebalance_timeout_ms,
        "group_instance_id": settings.consumer_group_instance_id,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
    }


def wait_on_fetches(subscriber: Any) -> None:
    """Let a FastStream batch subscriber wait on its consumer's fetches instead of spinning.

    FastStream 0.7's batch subscriber polls (`getmany`) for `batch_timeout_ms` and, when the
    poll was empty, sleeps as long again: a record arriving during that sleep waits for it, so
    the timeout had to be short (10 ms), and an idle subscriber woke 50 times a second —
    measured, most of an idle router's and SLA service's CPU. Without the sleep, the poll
    returns as soon as the fetcher (which long-polls the broker on its own) has records, and
    the timeout only bounds how often an idle subscriber wakes (`POLL_TIMEOUT_MS`)."""

    async def get_msg(consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[bytes, bytes], ...]:
        batches = await consumer.getmany(
            timeout_ms=subscriber.batch_timeout_ms, max_records=subscriber.max_records
        )
        return tuple(record for records in batches.values() for record in records)

    subscriber.get_msg = get_msg


@contextlib.contextmanager
def fetching_paused(
    consumer: AIOKafkaConsumer | None, batch_size: int, max_records: int
) -> Iterator[None]:
    """No fetch while a partial batch is processed, so the next one starts when it is done.

    aiokafka fetches the next batch as soon as one is taken. Under a steady load that fetch
    comes back within a few milliseconds, and what arrives after it waits for the batch after
    next: 1.5 batch durations on average instead of 0.5 (measured in the e2e benchmark). A
    full batch says more is waiting: then the early fetch is worth having.
    """
    if consumer is None or batch_size >= max_records:
        yield
        return
    consumer.pause(*consumer.assignment())
    try:
        yield
    finally:
        consumer.resume(*consumer.paused())  # a rebalance may have taken some meanwhile


def records_of(raw_message: Any) -> tuple[ConsumerRecord[bytes, bytes], ...]:
    """The consumer records behind a faststream message (one, or a batch)."""
    if isinstance(raw_message, tuple):
        return raw_message
    return (raw_message,)


def dead_letter_counter(registry: CollectorRegistry) -> Counter:
    """`casewire_dead_letters_total`, the same family in every service that dead-letters."""
    return Counter(
        "casewire_dead_letters_total",
        "Records sent to a dead-letter topic, by component (the service), source topic and reason.",
        # Not `service`: a target label of that name (a ServiceMonitor's) would overwrite it.
        ["component", "topic", "reason"],
        registry=registry,
    )


class DeadLetters:
    """Sends records that cannot be processed to `<topic>.dlq`, with the reason in headers."""

    def __init__(
        self,
        broker: KafkaBroker,
        registry: CollectorRegistry,
        service: str,
        reasons: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        """`reasons`: the reasons this service dead-letters each topic's records for; their
        series start at 0, so the first dead letter of each is seen by increase()."""
        self._broker = broker
        self._service = service
        self._counter = dead_letter_counter(registry)
        precreate(
            self._counter,
            [
                (service, topic, reason)
                for topic, names in (reasons or {}).items()
                for reason in names
            ],
        )

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str, error: str) -> None:
        await self.send_many([(record, reason, error)])

    async def send_many(
        self, rejected: Iterable[tuple[ConsumerRecord[bytes, bytes], str, str]]
    ) -> None:
        futures = []
        for record, reason, error in rejected:
            headers = {name: value.decode(errors="replace") for name, value in record.headers}
            headers.update(
                {
                    topics.DLQ_REASON_HEADER: reason,
                    topics.DLQ_ERROR_HEADER: error[:1000],
                    topics.DLQ_SOURCE_HEADER: f"{record.topic}/{record.partition}/{record.offset}",
                }
            )
            futures.append(
                await self._broker.publish(
                    record.value or b"",
                    topic=topics.dlq(record.topic),
                    key=record.key,
                    headers=headers,
                    no_confirm=True,
                )
            )
            self._counter.labels(self._service, record.topic, reason).inc()
            log.warning(
                "record dead-lettered",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                reason=reason,
            )
        await asyncio.gather(*futures)


async def stop_broker(broker: KafkaBroker, timeout: float = 10.0) -> None:
    """Stop consumers and producer, but never hang on a broker that went away: what is still
    unsent was never acknowledged to anyone (ingest answered 503, the outbox keeps its rows)."""
    await _stop_within(broker.stop(), timeout)


async def _stop_within(stopping: Awaitable[Any], timeout: float) -> None:
    try:
        await asyncio.wait_for(stopping, timeout)
    except TimeoutError:
        log.warning("Kafka did not acknowledge pending records before shutdown", timeout=timeout)
