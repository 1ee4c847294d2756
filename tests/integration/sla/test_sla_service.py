"""The SLA service against the real broker and PostgreSQL: case events in, alerts out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from casewire_common import topics
from casewire_common.events import (
    CASE_CREATED,
    CASE_RESPONDED,
    SLA_BREACHED,
    SLA_CLOCK_FULFILLED,
    SLA_CLOCK_STARTED,
    SLA_WARNING,
)
from casewire_sla.adapters.store import PendingMigrationsError
from casewire_sla.main import create_app

from tests.integration.helpers import topic_reader
from tests.integration.sla.conftest import (
    ON_TIME,
    case_on_running_sla,
    instant,
    policy_text,
    sla_settings,
)
from tests.unit.sla.factories import case_event, snapshot

pytestmark = pytest.mark.integration


async def test_created_case_gets_clock_started_then_warning_and_breach_at_their_instants(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    settings = sla_settings(
        tmp_path, kafka_bootstrap, migrated_url, unique, policy_text("3s", "[0.5]")
    )
    team = f"team-{unique}"  # metrics of this case alone, whatever else the topic holds
    async with case_on_running_sla(settings, f"case-breach-{unique}") as case:
        opened_at = case.opened_at
        await case.open(team=team)
        await case.read(lambda a: bool(a.of_type(SLA_BREACHED)))
        labels = {"clock": "first_response", "policy": "test-fast", "team": team, "priority": "P2"}
        breaches = case.sla.registry.get_sample_value("casewire_sla_breaches_total", labels)
        warnings = case.sla.registry.get_sample_value("casewire_sla_warnings_total", labels)

    assert case.alerts.types() == [SLA_CLOCK_STARTED, SLA_WARNING, SLA_BREACHED]
    due_at = opened_at + timedelta(seconds=3)
    ((breach, breach_reached_kafka),) = case.alerts.of_type(SLA_BREACHED)
    assert breach.data["policy_id"] == "test-fast"
    assert breach.data["clock"] == "first_response"
    assert breach.data["fraction"] == 1.0
    assert breach.data["late"] is False
    assert instant(breach.data["due_at"]) == due_at
    # Fired at due_at, not at the next poll.
    assert timedelta(0) <= breach_reached_kafka - due_at < ON_TIME
    assert breach.time is not None
    assert timedelta(0) <= breach.time - due_at < ON_TIME
    ((warning, warning_reached_kafka),) = case.alerts.of_type(SLA_WARNING)
    assert warning.data["fraction"] == 0.5
    warn_at = opened_at + timedelta(seconds=1.5)
    assert timedelta(0) <= warning_reached_kafka - warn_at < ON_TIME
    started, _ = case.alerts.events[0]
    assert instant(started.data["started_at"]) == opened_at
    assert len({event.id for event, _ in case.alerts.events}) == 3
    assert (breaches, warnings) == (1.0, 1.0)


async def test_first_brand_reply_before_due_fulfils_the_clock_and_no_breach_follows(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    settings = sla_settings(
        tmp_path, kafka_bootstrap, migrated_url, unique, policy_text("4s", "[0.5]")
    )
    team = f"team-{unique}"
    case_id = f"case-replied-{unique}"
    async with case_on_running_sla(settings, case_id) as case:
        replied_at = case.opened_at + timedelta(milliseconds=500)
        await case.open(team=team)
        await case.answer(replied_at, team=team)
        await case.read(lambda a: bool(a.of_type(SLA_CLOCK_FULFILLED)))
        # Then keep reading past the would-be breach instant (+4 s): nothing may come.
        await case.read_past(case.opened_at + timedelta(seconds=4.5))
        connection = await asyncpg.connect(migrated_url)
        try:
            clock = await connection.fetchrow(
                "SELECT status, fulfilled_at, breached_at FROM sla.clocks WHERE case_id = $1",
                case_id,
            )
            pending_timers = await connection.fetchval(
                "SELECT count(*) FROM sla.timers t JOIN sla.clocks c ON c.id = t.clock_id"
                " WHERE c.case_id = $1 AND t.fired_at IS NULL",
                case_id,
            )
        finally:
            await connection.close()
        labels = {
            "clock": "first_response",
            "time": "business",
            "policy": "test-fast",
            "team": team,
            "priority": "P2",
            "platform": "x",
            "channel": "mention",
        }
        responses = case.sla.registry.get_sample_value(
            "casewire_sla_response_seconds_count", labels
        )
        response_seconds = case.sla.registry.get_sample_value(
            "casewire_sla_response_seconds_sum", labels
        )
        within_target = case.sla.registry.get_sample_value(
            "casewire_sla_clocks_fulfilled_total",
            {
                "clock": "first_response",
                "policy": "test-fast",
                "team": team,
                "priority": "P2",
                "within_target": "true",
            },
        )

    assert case.alerts.types() == [SLA_CLOCK_STARTED, SLA_CLOCK_FULFILLED]
    assert responses == 1.0
    assert response_seconds == pytest.approx(0.5)
    assert within_target == 1.0
    fulfilled, _ = case.alerts.of_type(SLA_CLOCK_FULFILLED)[0]
    assert fulfilled.data["elapsed_seconds"] == pytest.approx(0.5)
    assert clock is not None
    assert clock["status"] == "fulfilled"
    assert clock["fulfilled_at"] == replied_at
    assert clock["breached_at"] is None
    assert pending_timers == 0


async def test_redelivered_case_event_with_the_same_id_creates_nothing_new(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    settings = sla_settings(tmp_path, kafka_bootstrap, migrated_url, unique, policy_text("1h"))
    case_id = f"case-redelivered-{unique}"
    async with case_on_running_sla(settings, case_id) as case:
        opened_at = case.opened_at
        created = case_event(CASE_CREATED, snapshot(case_id, opened_at), event_id=f"evt-{unique}")
        await case.send(created)
        await case.read(lambda a: bool(a.of_type(SLA_CLOCK_STARTED)))
        connection = await asyncpg.connect(migrated_url)
        try:
            timers_of_case = (
                "SELECT count(*) FROM sla.timers t JOIN sla.clocks c ON c.id = t.clock_id"
                " WHERE c.case_id = $1"
            )
            before = await connection.fetchval(timers_of_case, case_id)
            # The same event again (same ce_id); then a reply on the same key, which is read
            # after it, so seeing the reply's effect proves the duplicate was read too.
            await case.send(created)
            replied = snapshot(
                case_id, opened_at, first_response_at=opened_at + timedelta(seconds=1)
            )
            await case.send(case_event(CASE_RESPONDED, replied, first_response=True))
            await case.read(lambda a: bool(a.of_type(SLA_CLOCK_FULFILLED)))
            await case.read_for(0.5)
            clocks = await connection.fetchval(
                "SELECT count(*) FROM sla.clocks WHERE case_id = $1", case_id
            )
            marked = await connection.fetchval(
                "SELECT count(*) FROM sla.processed_inputs WHERE key = $1", f"evt-{unique}"
            )
        finally:
            await connection.close()

    assert before == 1  # one breach timer, no warnings in this policy
    assert case.alerts.types() == [SLA_CLOCK_STARTED, SLA_CLOCK_FULFILLED]
    assert clocks == 1
    assert marked == 1


async def test_bad_records_go_to_the_dead_letter_topic_and_later_records_are_processed(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    settings = sla_settings(tmp_path, kafka_bootstrap, migrated_url, unique, policy_text("1h"))
    case_id = f"case-after-garbage-{unique}"
    # A valid case event that PostgreSQL cannot store (text with a NUL character).
    unstorable = case_event(CASE_CREATED, snapshot(case_id, datetime.now(UTC), team="care\x00team"))
    async with (
        case_on_running_sla(settings, case_id) as case,
        topic_reader(kafka_bootstrap, topics.dlq(topics.CASE_EVENTS)) as dlq_reader,
    ):
        # Same key for all three: same partition, so the good one is read after the others.
        await case.client.send_and_wait(
            topics.CASE_EVENTS, b"\x00 not a cloud event", key=case_id.encode()
        )
        await case.send(unstorable)
        await case.open()
        await case.read(lambda a: bool(a.of_type(SLA_CLOCK_STARTED)))
        dead: list[ConsumerRecord[bytes, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(dead) < 2 and loop.time() < deadline:
            batch = await dlq_reader.getmany(timeout_ms=200)
            dead.extend(
                record
                for records in batch.values()
                for record in records
                if record.key == case_id.encode()
            )

    assert case.alerts.types() == [SLA_CLOCK_STARTED]
    started, _ = case.alerts.events[0]
    assert started.data["team"] == "care"
    assert [record.value for record in dead] == [b"\x00 not a cloud event", unstorable.value]
    reasons = [dict(record.headers)[topics.DLQ_REASON_HEADER] for record in dead]
    assert reasons == [b"not_a_cloudevent", b"unprocessable_case_event"]
    for record in dead:
        assert dict(record.headers)[topics.DLQ_SOURCE_HEADER].startswith(
            topics.CASE_EVENTS.encode()
        )


async def test_service_refuses_to_start_until_migrations_are_applied(
    tmp_path: Path, kafka_bootstrap: str, database_url: str, unique: str
) -> None:
    settings = sla_settings(tmp_path, kafka_bootstrap, database_url, unique, policy_text("1h"))
    app = create_app(settings)
    with pytest.raises(PendingMigrationsError, match="casewire-sla migrate"):
        async with app.router.lifespan_context(app):
            pass
