"""Alerts by event time on the real broker and PostgreSQL: a breach waits for the router's low
watermark, fires provisional after max_hold, and is retracted by a reply sent in time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from casewire_common import topics
from casewire_common.events import (
    CASE_CREATED,
    CASE_RESPONDED,
    SLA_BREACH_RETRACTED,
    SLA_BREACHED,
    SLA_CLOCK_FULFILLED,
    SLA_CLOCK_STARTED,
    WatermarkData,
)
from casewire_router.adapters.watermarks import watermark_records
from casewire_sla.settings import SlaSettings

from tests.integration.sla.conftest import (
    Alerts,
    policy_text,
    producer,
    publish,
    read_alerts,
    running_sla,
    sla_settings,
    topic_reader,
)
from tests.unit.sla.factories import case_event, snapshot

pytestmark = pytest.mark.integration

CASE_PARTITIONS = 3  # tests/conftest.py creates the topics with three partitions
ON_TIME = timedelta(milliseconds=500)


def watching_settings(
    tmp_path: Path, bootstrap: str, url: str, unique: str, *, max_hold: float
) -> SlaSettings:
    settings = sla_settings(
        tmp_path, bootstrap, url, unique, policy_text("2s"), wait_for_watermark=True
    )
    return settings.model_copy(
        update={"sla_max_hold_seconds": max_hold, "sla_watermark_lease_seconds": 0.5}
    )


async def publish_watermark(client: AIOKafkaProducer, watermark: datetime) -> None:
    """A mark as a router owning both messages partitions would write it."""
    mark = WatermarkData(
        topic=topics.MESSAGES,
        partitions=2,
        watermarks={0: watermark, 1: watermark},
        caught_up=[0, 1],
        replica="test",
    )
    for topic, record in watermark_records(mark, CASE_PARTITIONS, datetime.now(UTC)):
        await publish(client, topic, record)


@contextlib.asynccontextmanager
async def router_keeping_up(client: AIOKafkaProducer) -> AsyncIterator[None]:
    """Marks every 200 ms saying everything received until now is processed."""

    async def beat() -> None:
        while True:
            await publish_watermark(client, datetime.now(UTC))
            await asyncio.sleep(0.2)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def attainment(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT outcome, clocks FROM sla.attainment")
    finally:
        await connection.close()
    return {row["outcome"]: row["clocks"] for row in rows}


async def test_a_breach_waits_for_the_watermark_and_a_reply_sent_in_time_read_late_prevents_it(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    settings = watching_settings(tmp_path, kafka_bootstrap, migrated_url, unique, max_hold=60)
    case_id = f"case-held-{unique}"
    alerts = Alerts(case_id)
    async with (
        running_sla(settings) as sla,
        topic_reader(kafka_bootstrap, topics.SLA_ALERTS) as reader,
        producer(kafka_bootstrap) as client,
    ):
        opened_at = datetime.now(UTC)
        await publish(
            client, topics.CASE_EVENTS, case_event(CASE_CREATED, snapshot(case_id, opened_at))
        )
        # The router processed everything up to the opening, and then froze.
        await publish_watermark(client, opened_at)
        await read_alerts(reader, alerts, lambda _: False, timeout=3.5)  # due at +2 s
        assert alerts.types() == [SLA_CLOCK_STARTED], "the breach must wait for the watermark"
        # The router comes back: the reply it now processes was sent at +1.5 s.
        replied = snapshot(
            case_id,
            opened_at,
            status="assigned",
            first_response_at=opened_at + timedelta(seconds=1.5),
        )
        await publish(
            client, topics.CASE_EVENTS, case_event(CASE_RESPONDED, replied, first_response=True)
        )
        await publish_watermark(client, datetime.now(UTC))
        await read_alerts(reader, alerts, lambda a: bool(a.of_type(SLA_CLOCK_FULFILLED)), 15)
        await read_alerts(reader, alerts, lambda _: False, timeout=1.0)
        provisional = sla.registry.get_sample_value(
            "casewire_sla_provisional_alerts_total", {"clock": "first_response", "kind": "breach"}
        )

    assert alerts.types() == [SLA_CLOCK_STARTED, SLA_CLOCK_FULFILLED]
    assert provisional is None
    assert await attainment(migrated_url) == {"met": 1}


async def test_without_a_watermark_the_breach_fires_provisional_and_a_reply_in_time_retracts_it(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    settings = watching_settings(tmp_path, kafka_bootstrap, migrated_url, unique, max_hold=1.0)
    case_id = f"case-retracted-{unique}"
    alerts = Alerts(case_id)
    async with (
        running_sla(settings) as sla,
        topic_reader(kafka_bootstrap, topics.SLA_ALERTS) as reader,
        producer(kafka_bootstrap) as client,
    ):
        opened_at = datetime.now(UTC)
        await publish(
            client, topics.CASE_EVENTS, case_event(CASE_CREATED, snapshot(case_id, opened_at))
        )
        await read_alerts(reader, alerts, lambda a: bool(a.of_type(SLA_BREACHED)), timeout=10)
        replied = snapshot(
            case_id,
            opened_at,
            status="assigned",
            first_response_at=opened_at + timedelta(seconds=1.9),
        )
        await publish(
            client, topics.CASE_EVENTS, case_event(CASE_RESPONDED, replied, first_response=True)
        )
        await read_alerts(reader, alerts, lambda a: bool(a.of_type(SLA_CLOCK_FULFILLED)), 15)
        labels = {
            "clock": "first_response",
            "policy": "test-fast",
            "team": "care",
            "priority": "P2",
        }
        retracted = sla.registry.get_sample_value("casewire_sla_breaches_retracted_total", labels)

    assert alerts.types() == [
        SLA_CLOCK_STARTED,
        SLA_BREACHED,
        SLA_BREACH_RETRACTED,
        SLA_CLOCK_FULFILLED,
    ]
    ((breach, breach_reached_kafka),) = alerts.of_type(SLA_BREACHED)
    due_at = opened_at + timedelta(seconds=2)
    assert breach.data["provisional"] is True
    # Held max_hold (1 s) after its instant, then fired.
    assert timedelta(seconds=1) <= breach_reached_kafka - due_at < timedelta(seconds=1) + ON_TIME
    ((retraction, _),) = alerts.of_type(SLA_BREACH_RETRACTED)
    assert retraction.data["retracted_alert_id"] == breach.id
    assert retracted == 1.0
    assert await attainment(migrated_url) == {"met": 1}


async def test_while_the_router_keeps_up_a_breach_fires_at_its_instant_and_stands(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    settings = watching_settings(tmp_path, kafka_bootstrap, migrated_url, unique, max_hold=60)
    case_id = f"case-on-time-{unique}"
    alerts = Alerts(case_id)
    async with (
        running_sla(settings),
        topic_reader(kafka_bootstrap, topics.SLA_ALERTS) as reader,
        producer(kafka_bootstrap) as client,
        router_keeping_up(client),
    ):
        opened_at = datetime.now(UTC)
        await publish(
            client, topics.CASE_EVENTS, case_event(CASE_CREATED, snapshot(case_id, opened_at))
        )
        await read_alerts(reader, alerts, lambda a: bool(a.of_type(SLA_BREACHED)), timeout=10)
        # A reply sent after the deadline ends the clock as breached: nothing is retracted.
        replied = snapshot(
            case_id, opened_at, status="assigned", first_response_at=datetime.now(UTC)
        )
        await publish(
            client, topics.CASE_EVENTS, case_event(CASE_RESPONDED, replied, first_response=True)
        )
        await read_alerts(reader, alerts, lambda a: bool(a.of_type(SLA_CLOCK_FULFILLED)), 15)

    assert alerts.types() == [SLA_CLOCK_STARTED, SLA_BREACHED, SLA_CLOCK_FULFILLED]
    ((breach, breach_reached_kafka),) = alerts.of_type(SLA_BREACHED)
    assert breach.data["provisional"] is False
    assert timedelta(0) <= breach_reached_kafka - (opened_at + timedelta(seconds=2)) < ON_TIME
    assert await attainment(migrated_url) == {"breached": 1}
