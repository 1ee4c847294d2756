"""The router against the real broker and PostgreSQL: cases, events, redelivery, dead letters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import decode_event
from casewire_common.messages import message_id
from casewire_common.pg import migrate
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.main import create_app
from casewire_router.settings import RouterSettings

from tests.integration.helpers import (
    SESSION_TIMEOUT_MS,
    EventReader,
    eventually,
    metric_value,
    producer,
    running,
    topic_reader,
)
from tests.integration.router.test_threading_incidents import start_at_topic_ends

# The topic is shared by every test of the session, and each test's router reads it from the
# start: only this test's messages carry its own keyword, so only they reach `shipping`.
RULES = """
version: 1
default_team: care
teams: [care, shipping]
rules:
  - id: shipping
    when: {{any: ["{keyword}"]}}
    then: {{team: shipping, priority: P3, tags: [shipping]}}
"""
AGENTS = """
agents:
  - {id: amal, teams: [shipping], languages: [ar, en], capacity: 1, online: true}
  - {id: nikos, teams: [care], languages: [el, en], capacity: 1000, online: true}
"""


def canonical(
    conversation: str, pid: str, text: str, *, direction: str = "inbound", minutes: int = 0
) -> bytes:
    sent = datetime.now(UTC) + timedelta(minutes=minutes)
    return json.dumps(
        {
            "id": message_id("x", pid),
            "platform": "x",
            "channel": "mention",
            "visibility": "public",
            "direction": direction,
            "event": "message",
            "account_id": "brand",
            "platform_message_id": pid,
            "conversation_id": conversation,
            "in_reply_to": None,
            "author": {"id": "brand" if direction == "outbound" else "cust"},
            "text": text,
            "language": "ar" if "حالة" in text else "en",
            "attachments": [],
            "sent_at": sent.isoformat(),
            "received_at": sent.isoformat(),
        }
    ).encode()


def settings_for(tmp_path: Path, database_url: str, bootstrap: str, unique: str) -> RouterSettings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(keyword=f"parcel{unique}"), encoding="utf-8")
    agents = tmp_path / "agents.yaml"
    agents.write_text(AGENTS, encoding="utf-8")
    return RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        router_rules=rules,
        router_agents=agents,
        router_consumer_group=f"router-test-{unique}",
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
    )


async def test_messages_become_cases_with_events_once_even_when_redelivered(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    conv_a = f"x:brand:{unique}a:cust"
    conv_b = f"x:brand:{unique}b:cust"
    first = canonical(conv_a, f"{unique}-1", f"ما هي حالة الطلب؟ parcel{unique}")
    async with (
        running(app) as client,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        await kafka.send_and_wait(topics.MESSAGES, first, key=conv_a.encode())
        await kafka.send_and_wait(
            topics.MESSAGES,
            canonical(conv_a, f"{unique}-2", "any news?", minutes=1),
            key=conv_a.encode(),
        )
        await kafka.send_and_wait(
            topics.MESSAGES,
            canonical(conv_a, f"{unique}-3", "On it!", direction="outbound", minutes=2),
            key=conv_a.encode(),
        )
        reader = EventReader(events_in)
        mine = {conv_a, conv_b}
        await reader.read_until(
            lambda got: len(got) >= 4,
            keep=lambda event: event.data["case"]["conversation_id"] in mine,
        )
        # Only after the first case is assigned (conversations on other partitions may be
        # applied in any order relative to each other).
        await kafka.send_and_wait(
            topics.MESSAGES,
            canonical(conv_b, f"{unique}-4", f"parcel{unique} too"),
            key=conv_b.encode(),
        )
        await reader.read_until(
            lambda got: len(got) >= 5,
            keep=lambda event: event.data["case"]["conversation_id"] in mine,
        )
        types_a = [e.type for e in reader.events if e.data["case"]["conversation_id"] == conv_a]
        assert types_a == [
            ev.CASE_CREATED,
            ev.CASE_ASSIGNED,
            ev.CASE_MESSAGE_ADDED,
            ev.CASE_RESPONDED,
        ]
        assigned = next(e for e in reader.events if e.type == ev.CASE_ASSIGNED)
        assert assigned.data["case"]["assignee"] == "amal"  # speaks Arabic
        assert assigned.data["decision"]["matched_rules"] == ["shipping"]
        responded = next(e for e in reader.events if e.type == ev.CASE_RESPONDED)
        assert responded.data["first_response"] is True
        case_b = [e for e in reader.events if e.data["case"]["conversation_id"] == conv_b]
        # amal is full (capacity 1) and nikos is not in shipping: the case waits in the queue.
        assert [e.type for e in case_b] == [ev.CASE_CREATED]
        assert case_b[0].data["case"]["status"] == "queued"
        # Every event is a CloudEvent in Kafka binary mode: all of its attributes in headers.
        record = reader.records[0]
        created = decode_event(record.headers, record.value or b"", record.key)
        case_id = created.data["case"]["id"]
        assert record.key == case_id.encode()
        assert set(dict(record.headers)) == {
            "ce_id",
            "ce_type",
            "ce_source",
            "ce_subject",
            "ce_time",
            "ce_specversion",
            "content-type",
        }
        assert dict(record.headers)["ce_specversion"] == b"1.0"
        assert dict(record.headers)["content-type"] == b"application/json"
        assert (created.type, created.source, created.subject) == (
            ev.CASE_CREATED,
            "casewire/router",
            case_id,
        )
        assert created.time is not None
        assert created.data["decision"]["matched_rules"] == ["shipping"]
        assert len({event.id for event in reader.events}) == len(reader.events)

        # Redelivery of the first message: nothing new in PostgreSQL nor on Kafka.
        await kafka.send_and_wait(topics.MESSAGES, first, key=conv_a.encode())
        metrics = await eventually(
            lambda: client.get("/metrics"),
            lambda response: metric_value(response.text, "casewire_router_duplicates_total") >= 1,
        )
        assert metric_value(metrics.text, "casewire_router_duplicates_total") >= 1
        await reader.read_until(
            lambda got: False, keep=lambda e: e.data["case"]["conversation_id"] in mine, timeout=2
        )
        assert len(reader.events) == 5
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text

    connection = await asyncpg.connect(database_url)
    try:
        cases = await connection.fetch(
            f"SELECT id::text, conversation_id, status, team, assignee, first_response_at,"
            f" decision->>'assignee' AS decided_for FROM {SCHEMA}.cases"
            " WHERE conversation_id = ANY($1::text[])"
            " ORDER BY conversation_id",
            sorted(mine),
        )
        messages = await connection.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.messages WHERE conversation_id = ANY($1::text[])",
            sorted(mine),
        )
        outbox = await connection.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.outbox WHERE key = ANY($1::text[])",
            [case["id"] for case in cases],
        )
        load = await connection.fetchval(f"SELECT load FROM {SCHEMA}.agents WHERE id = 'amal'")
    finally:
        await connection.close()
    assert [(c["conversation_id"], c["status"], c["team"], c["assignee"]) for c in cases] == [
        (conv_a, "assigned", "shipping", "amal"),
        (conv_b, "queued", "shipping", None),
    ]
    assert cases[0]["first_response_at"] is not None
    assert [c["decided_for"] for c in cases] == ["amal", None]  # the decision that opened it
    assert messages == 4
    assert outbox == 0
    assert load == 1


async def test_unreadable_message_goes_to_the_dead_letter_topic_and_the_consumer_moves_on(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    conversation = f"x:brand:{unique}:cust"
    async with (
        running(app),
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.dlq(topics.MESSAGES)) as dlq_in,
    ):
        await kafka.send_and_wait(topics.MESSAGES, b"{not json", key=unique.encode())
        await kafka.send_and_wait(topics.MESSAGES, b'{"id": "x"}', key=f"{unique}-2".encode())
        await kafka.send_and_wait(
            topics.MESSAGES,
            canonical(conversation, f"{unique}-ok", "hello"),
            key=conversation.encode(),
        )
        dead: list[tuple[bytes | None, dict[str, bytes]]] = []

        async def read_dead() -> int:
            batch = await dlq_in.getmany(timeout_ms=200)
            for records in batch.values():
                dead.extend(
                    (r.key, dict(r.headers))
                    for r in records
                    if (r.key or b"").startswith(unique.encode())
                )
            return len(dead)

        await eventually(read_dead, lambda count: count >= 2)
        assert len(dead) == 2
        for _, headers in dead:
            assert headers["casewire-dlq-reason"] == b"invalid_message"
            assert headers["casewire-dlq-source"].startswith(topics.MESSAGES.encode())
            assert headers["casewire-dlq-error"]

        async def cases() -> int:
            connection = await asyncpg.connect(database_url)
            try:
                return int(
                    await connection.fetchval(
                        f"SELECT count(*) FROM {SCHEMA}.cases WHERE conversation_id = $1",
                        conversation,
                    )
                )
            finally:
                await connection.close()

        assert await eventually(cases, lambda count: count == 1) == 1
