"""The Kafka broker every service builds, and the dead-letter path for what cannot be processed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, Counter

from casewire_common import topics

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


def records_of(raw_message: Any) -> tuple[ConsumerRecord[bytes, bytes], ...]:
    """The consumer records behind a faststream message (one, or a batch)."""
    if isinstance(raw_message, tuple):
        return raw_message
    return (raw_message,)


class DeadLetters:
    """Sends records that cannot be processed to `<topic>.dlq`, with the reason in headers."""

    def __init__(self, broker: KafkaBroker, registry: CollectorRegistry, service: str) -> None:
        self._broker = broker
        self._service = service
        self._counter = Counter(
            "casewire_dead_letters_total",
            "Records sent to a dead-letter topic, by source topic and reason.",
            ["service", "topic", "reason"],
            registry=registry,
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
    try:
        await asyncio.wait_for(broker.stop(), timeout)
    except TimeoutError:
        log.warning("Kafka did not acknowledge pending records before shutdown", timeout=timeout)
