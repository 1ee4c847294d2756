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
    SLA_BREACH_RETRACTED,
    SLA_BREACHED,
    SLA_CLOCK_FULFILLED,
    SLA_CLOCK_STARTED,
    WatermarkData,
)
from casewire_router.adapters.watermarks import watermark_records
from casewire_sla.settings import SlaSettings

from tests.integration.sla.conftest import (
    ON_TIME,
    case_on_running_sla,
    policy_text,
    publish,
    sla_settings,
)

pytestmark = pytest.mark.integration

CASE_PARTITIONS = 3  # tests/conftest.py creates the topics with three partitions


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
    async with case_on_running_sla(settings, f"case-held-{unique}") as case:
        opened_at = case.opened_at
        await case.open()
        # The router processed everything up to the opening, and then froze.
        await publish_watermark(case.client, opened_at)
        await case.read_for(3.5)  # due at +2 s
        assert case.alerts.types() == [SLA_CLOCK_STARTED], "the breach must wait for the watermark"
        # The router comes back: the reply it now processes was sent at +1.5 s.
        await case.answer(opened_at + timedelta(seconds=1.5))
        await publish_watermark(case.client, datetime.now(UTC))
        await case.read(lambda a: bool(a.of_type(SLA_CLOCK_FULFILLED)))
        await case.read_for(1.0)
        provisional = case.sla.registry.get_sample_value(
            "casewire_sla_provisional_alerts_total", {"clock": "first_response", "kind": "breach"}
        )

    assert case.alerts.types() == [SLA_CLOCK_STARTED, SLA_CLOCK_FULFILLED]
    assert provisional == 0  # the series starts at 0 (pre-created): no provisional breach
    assert await attainment(migrated_url) == {"met": 1}


async def test_without_a_watermark_the_breach_fires_provisional_and_a_reply_in_time_retracts_it(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    settings = watching_settings(tmp_path, kafka_bootstrap, migrated_url, unique, max_hold=1.0)
    async with case_on_running_sla(settings, f"case-retracted-{unique}") as case:
        opened_at = case.opened_at
        await case.open()
        await case.read(lambda a: bool(a.of_type(SLA_BREACHED)), timeout=10)
        await case.answer(opened_at + timedelta(seconds=1.9))
        await case.read(lambda a: bool(a.of_type(SLA_CLOCK_FULFILLED)))
        labels = {
            "clock": "first_response",
            "policy": "test-fast",
            "team": "care",
            "priority": "P2",
        }
        retracted = case.sla.registry.get_sample_value(
            "casewire_sla_breaches_retracted_total", labels
        )

    assert case.alerts.types() == [
        SLA_CLOCK_STARTED,
        SLA_BREACHED,
        SLA_BREACH_RETRACTED,
        SLA_CLOCK_FULFILLED,
    ]
    ((breach, breach_reached_kafka),) = case.alerts.of_type(SLA_BREACHED)
    due_at = opened_at + timedelta(seconds=2)
    assert breach.data["provisional"] is True
    # Held max_hold (1 s) after its instant, then fired.
    assert timedelta(seconds=1) <= breach_reached_kafka - due_at < timedelta(seconds=1) + ON_TIME
    ((retraction, _),) = case.alerts.of_type(SLA_BREACH_RETRACTED)
    assert retraction.data["retracted_alert_id"] == breach.id
    assert retracted == 1.0
    assert await attainment(migrated_url) == {"met": 1}


async def test_while_the_router_keeps_up_a_breach_fires_at_its_instant_and_stands(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    settings = watching_settings(tmp_path, kafka_bootstrap, migrated_url, unique, max_hold=60)
    async with (
        case_on_running_sla(settings, f"case-on-time-{unique}") as case,
        router_keeping_up(case.client),
    ):
        opened_at = case.opened_at
        await case.open()
        await case.read(lambda a: bool(a.of_type(SLA_BREACHED)), timeout=10)
        # A reply sent after the deadline ends the clock as breached: nothing is retracted.
        await case.answer(datetime.now(UTC))
        await case.read(lambda a: bool(a.of_type(SLA_CLOCK_FULFILLED)))

    assert case.alerts.types() == [SLA_CLOCK_STARTED, SLA_BREACHED, SLA_CLOCK_FULFILLED]
    ((breach, breach_reached_kafka),) = case.alerts.of_type(SLA_BREACHED)
    assert breach.data["provisional"] is False
    assert timedelta(0) <= breach_reached_kafka - (opened_at + timedelta(seconds=2)) < ON_TIME
    assert await attainment(migrated_url) == {"breached": 1}
