"""Helpers for SLA integration tests: a migrated database, the app in-process, topic readers,
and one case's events in and alerts out (`case_on_running_sla`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from casewire_common import topics
from casewire_common.events import (
    CASE_CREATED,
    CASE_RESPONDED,
    CaseEventData,
    CaseSnapshot,
    DecodedEvent,
    EventRecord,
    decode_event,
)
from casewire_common.pg import migrate
from casewire_dev.stack import start_group_at_topic_end
from casewire_sla.adapters.store import MIGRATIONS, SCHEMA, PostgresClockStore
from casewire_sla.clock_service import IncomingCaseEvent
from casewire_sla.main import SlaRuntime, create_app
from casewire_sla.settings import SlaSettings

from tests.integration.helpers import SESSION_TIMEOUT_MS, topic_reader
from tests.unit.sla.factories import case_event, snapshot

# Alerts take milliseconds from their instant to Kafka here; a poll of once a second would
# miss this bound about half of the time.
ON_TIME = timedelta(milliseconds=500)


def instant(value: str) -> datetime:
    """An instant as alerts write it."""
    return datetime.fromisoformat(value)


def policy_text(first_response: str, warn_at: str = "[]") -> str:
    return f"""
version: 1
calendars: [{{id: always, always_open: true}}]
policies:
  - {{id: test-fast, match: {{}}, calendar: always, first_response: {first_response},
     warn_at: {warn_at}}}
"""


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    await migrate(database_url, SCHEMA, MIGRATIONS)
    return database_url


@pytest.fixture
async def store(migrated_url: str) -> AsyncIterator[PostgresClockStore]:
    opened = PostgresClockStore(migrated_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def event(
    event_type: str, case: CaseSnapshot, *, at: datetime, event_id: str = "", **data: object
) -> IncomingCaseEvent:
    """A case event that happened at `at`, as the consumer hands it to the service."""
    return IncomingCaseEvent(
        event_id or str(uuid.uuid4()),
        event_type,
        CaseEventData.model_validate({"case": case, **data}),
        at,
    )


def sla_settings(
    tmp_path: Path,
    kafka_bootstrap: str,
    database_url: str,
    unique: str,
    policies: str,
    *,
    wait_for_watermark: bool = False,
) -> SlaSettings:
    """Settings for an SLA app fed by the test itself. No router runs here, so alerts fire at
    their instant unless a test asks for the watermark (and then publishes the marks)."""
    path = tmp_path / f"sla-policies-{unique}.yaml"
    path.write_text(policies, encoding="utf-8")
    return SlaSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        sla_policies=path,
        sla_consumer_group=f"sla-test-{unique}",
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
        log_level="WARNING",
        sla_wait_for_watermark=wait_for_watermark,
    )


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_sla(settings: SlaSettings) -> AsyncIterator[SlaRuntime]:
    """The whole app, lifespan included, with its consumer joined to its group."""
    await start_group_at_topic_end(
        settings.kafka_bootstrap_servers, settings.sla_consumer_group, topics.CASE_EVENTS
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime: SlaRuntime = app.state.sla
        await wait_for(runtime.consumer_assigned, "the case-event consumer to be assigned")
        yield runtime


@asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def publish(client: AIOKafkaProducer, topic: str, record: EventRecord) -> None:
    await client.send_and_wait(
        topic, record.value, key=record.key.encode(), headers=list(record.headers.items())
    )


class Alerts:
    """The SLA alerts of one case read so far, with when each reached Kafka."""

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        self.events: list[tuple[DecodedEvent, datetime]] = []

    def add(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            if record.key != self.case_id.encode():
                continue
            event = decode_event(record.headers, record.value or b"", record.key)
            self.events.append((event, datetime.fromtimestamp(record.timestamp / 1000, UTC)))

    def types(self) -> list[str]:
        return [event.type for event, _ in self.events]

    def of_type(self, event_type: str) -> list[tuple[DecodedEvent, datetime]]:
        return [(event, at) for event, at in self.events if event.type == event_type]


async def read_alerts(
    reader: AIOKafkaConsumer,
    alerts: Alerts,
    until: Callable[[Alerts], bool],
    timeout: float,
) -> None:
    """Read until `until(alerts)` holds or `timeout` passes (a timeout is not a failure here)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and not until(alerts):
        batch = await reader.getmany(timeout_ms=100)
        for records in batch.values():
            alerts.add(records)


@dataclass
class Case:
    """One case's events in, its alerts out, on a running SLA service."""

    id: str
    opened_at: datetime
    alerts: Alerts
    client: AIOKafkaProducer
    reader: AIOKafkaConsumer
    sla: SlaRuntime

    async def send(self, record: EventRecord) -> None:
        await publish(self.client, topics.CASE_EVENTS, record)

    async def open(self, **fields: Any) -> None:
        """The router opened the case at `opened_at`."""
        await self.send(case_event(CASE_CREATED, snapshot(self.id, self.opened_at, **fields)))

    async def answer(self, at: datetime, *, time: datetime | None = None, **fields: Any) -> None:
        """The brand's first reply, sent at `at`, on the case now assigned."""
        replied = snapshot(
            self.id, self.opened_at, status="assigned", first_response_at=at, **fields
        )
        await self.send(case_event(CASE_RESPONDED, replied, first_response=True, time=time))

    async def read(self, until: Callable[[Alerts], bool], timeout: float = 15) -> None:
        await read_alerts(self.reader, self.alerts, until, timeout)

    async def read_for(self, seconds: float) -> None:
        """Read whatever comes for `seconds`."""
        await read_alerts(self.reader, self.alerts, lambda _: False, seconds)

    async def read_past(self, instant: datetime) -> None:
        """Read everything published until a moment after `instant`."""
        remaining = (instant + timedelta(seconds=1) - datetime.now(UTC)).total_seconds()
        await self.read_for(max(remaining, 0.5))

    def clocks(self, event_type: str) -> list[str]:
        return [event.data["clock"] for event, _ in self.alerts.of_type(event_type)]

    def of(self, event_type: str, policy: str) -> list[tuple[DecodedEvent, datetime]]:
        """The alerts of `event_type` of one policy's clocks."""
        return [
            (event, at)
            for event, at in self.alerts.of_type(event_type)
            if event.data["policy_id"] == policy
        ]


@asynccontextmanager
async def case_on_running_sla(settings: SlaSettings, case_id: str) -> AsyncIterator[Case]:
    """The app running with `settings`, a reader of the alerts and a producer of case events,
    for the case `case_id`, opened now."""
    bootstrap = settings.kafka_bootstrap_servers
    async with (
        running_sla(settings) as sla,
        topic_reader(bootstrap, topics.SLA_ALERTS) as reader,
        producer(bootstrap) as client,
    ):
        yield Case(case_id, datetime.now(UTC), Alerts(case_id), client, reader, sla)
