"""Writes accepted bodies and their canonical messages to Kafka, and answers only once written."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from casewire_common import topics
from casewire_common.messages import CanonicalMessage
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Histogram


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "casewire_ingest_messages_total",
            "Canonical messages published, by platform, channel, direction and event.",
            ["platform", "channel", "direction", "event"],
            registry=registry,
        )
        self.rejections = Counter(
            "casewire_ingest_rejections_total",
            "Request bodies rejected, by endpoint and reason.",
            ["endpoint", "reason"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "casewire_ingest_publish_seconds",
            "Time to write one accepted body and its messages to Kafka (acknowledged).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )


class IngestPublisher(Protocol):
    async def publish(
        self, raw_body: bytes, raw_key: str, source: str, messages: Sequence[CanonicalMessage]
    ) -> None:
        """Return only once the body and its messages are acknowledged by Kafka."""


class KafkaIngestPublisher:
    """Raw body first (so normalisation can be replayed), then its messages; both acknowledged."""

    def __init__(self, broker: KafkaBroker, metrics: IngestMetrics) -> None:
        self._broker = broker
        self._metrics = metrics

    async def publish(
        self, raw_body: bytes, raw_key: str, source: str, messages: Sequence[CanonicalMessage]
    ) -> None:
        started = time.perf_counter()
        await self._broker.publish(
            raw_body,
            topic=topics.RAW,
            key=raw_key.encode(),
            headers={"content-type": "application/json", "casewire-source": source},
        )
        futures = [
            await self._broker.publish(
                message.model_dump_json().encode(),
                topic=topics.MESSAGES,
                key=message.conversation_id.encode(),
                headers={"content-type": "application/json"},
                no_confirm=True,
            )
            for message in messages
        ]
        for future in futures:
            await future
        self._metrics.publish_seconds.observe(time.perf_counter() - started)
        for message in messages:
            self._metrics.messages.labels(
                message.platform, message.channel, message.direction, message.event
            ).inc()
