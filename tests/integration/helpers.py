"""Helpers for tests against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from casewire_common.events import DecodedEvent, decode_event
from casewire_dev.webhooks import IntegrationAuth
from fastapi import FastAPI

T = TypeVar("T")

# The consumer session timeout of the services these tests start. The local broker lets a
# member join its group after about half of it (LOCAL_STACK.md): every start of a service
# waits that long for each of its groups, 2 s at 3 s instead of 3 s at the services' 6 s
# default. Heartbeats (every 0.5 s) still leave a member six chances per session.
SESSION_TIMEOUT_MS = 3000

# The generic channel's caller in these tests: `running` signs every request as it, and an
# ingest configured with `TEST_INTEGRATIONS` accepts it.
TEST_INTEGRATION = IntegrationAuth("tests", "casewire-tests-integration-secret")
TEST_INTEGRATIONS = [{"name": "tests", "secrets": ["casewire-tests-integration-secret"]}]


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan (broker, pool, relay) and give an HTTP client for it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://app", auth=TEST_INTEGRATION
        ) as client:
            yield client


@asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


@asynccontextmanager
async def topic_reader(
    bootstrap: str, topic: str, *, from_end: bool = False
) -> AsyncIterator[AIOKafkaConsumer]:
    """Reads every partition of a topic from the start, as a new consumer group would, but
    without a group: the local broker lets a member join after half its session timeout (3 s
    at 6 s), a wait a consumer that only reads does not need. With `from_end`, from where the
    topic ends now; the local broker's end is where its last record batch starts, so a few
    earlier records may come too (the caller keeps its own), never fewer."""
    kafka = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await kafka.start()
    try:
        await kafka.topics()
        partitions = kafka.partitions_for_topic(topic) or set()
        assert partitions, f"topic {topic} has no partitions"
        kafka.assign([TopicPartition(topic, partition) for partition in partitions])
        await (kafka.seek_to_end() if from_end else kafka.seek_to_beginning())
        yield kafka
    finally:
        await kafka.stop()


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 30.0
) -> T:
    """Poll `probe` until `done(result)`; returns the last result (the caller asserts on it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    result = await probe()
    while not done(result) and loop.time() < deadline:
        await asyncio.sleep(0.1)
        result = await probe()
    return result


class EventReader:
    """Collects CloudEvents from a topic, keeping those whose subject a test cares about."""

    def __init__(self, kafka: AIOKafkaConsumer) -> None:
        self._kafka = kafka
        self.events: list[DecodedEvent] = []
        self.records: list[ConsumerRecord[bytes, bytes]] = []

    async def read_until(
        self,
        done: Callable[[list[DecodedEvent]], bool],
        keep: Callable[[DecodedEvent], bool],
        timeout: float = 30.0,
        *,
        types: tuple[str, ...] = ("casewire.case.", "casewire.sla."),
    ) -> list[DecodedEvent]:
        """Read until `done`; only events whose type starts with one of `types` reach `keep`
        (case and SLA events by default: incident events share the case-events topic and
        carry no `case`). Records that are not CloudEvents (other tests' dead-letter cases
        share the topic) are passed over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done(self.events) and loop.time() < deadline:
            batch = await self._kafka.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    try:
                        event = decode_event(record.headers, record.value or b"", record.key)
                    except ValueError:
                        continue
                    if event.type.startswith(types) and keep(event):
                        self.events.append(event)
                        self.records.append(record)
        return self.events


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of a metric's samples (optionally those carrying `labels`) in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if not match:
            continue
        if labels and not all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            continue
        total += float(match.group(2))
    return total
