"""Threading across conversations, reopening, incidents and escalation, on the real broker and
PostgreSQL: the router app in this process, messages and SLA alerts in through Kafka."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import DecodedEvent, SlaAlertData, encode_event
from casewire_common.messages import message_id
from casewire_common.pg import migrate
from casewire_dev import stack as local_stack
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.main import create_app
from casewire_router.settings import RouterSettings

from tests.integration.helpers import (
    SESSION_TIMEOUT_MS,
    EventReader,
    eventually,
    producer,
    running,
    topic_reader,
)

RULES = """
version: 1
default_team: care
teams: [care, leads]
rules: []
urgency:
  crisis:
    outage{unique}: ["meltdown{unique}"]
escalation:
  - id: breach-to-leads
    when: {{alerts: [breached], clocks: [first_response]}}
    then: {{priority: P1, team: leads, assign_to: lena{unique}, tags: [escalated]}}
"""
AGENTS = """
agents:
  - {{id: amal{unique}, teams: [care], languages: [en], capacity: 100, online: true}}
  - {{id: lena{unique}, teams: [leads], languages: [en], capacity: 5, online: true}}
"""


def canonical(
    conversation: str,
    pid: str,
    text: str,
    *,
    customer: str,
    channel: str = "mention",
    at: datetime | None = None,
    direction: str = "inbound",
    in_reply_to: str | None = None,
) -> bytes:
    sent = at or datetime.now(UTC)
    return json.dumps(
        {
            "id": message_id("x", pid),
            "platform": "x",
            "channel": channel,
            "visibility": "private" if channel == "dm" else "public",
            "direction": direction,
            "event": "message",
            "account_id": "brand",
            "platform_message_id": pid,
            "conversation_id": conversation,
            "in_reply_to": in_reply_to,
            "author": {"id": customer},
            "text": text,
            "language": "en",
            "sent_at": sent.isoformat(),
            "received_at": sent.isoformat(),
        }
    ).encode()


def settings_for(tmp_path: Path, database_url: str, bootstrap: str, unique: str) -> RouterSettings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(unique=unique), encoding="utf-8")
    agents = tmp_path / "agents.yaml"
    agents.write_text(AGENTS.format(unique=unique), encoding="utf-8")
    return RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        router_rules=rules,
        router_agents=agents,
        router_consumer_group=f"router-test-{unique}",
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
        router_incident_threshold=3,
    )


async def start_at_topic_ends(settings: RouterSettings) -> None:
    """The router's consumer groups start where their topics end now: a new group would read
    every message earlier tests left on the shared broker first (and give them its agents)."""
    group = settings.router_consumer_group
    bootstrap = settings.kafka_bootstrap_servers
    await local_stack.start_group_at_topic_end(bootstrap, group, topics.MESSAGES)
    await local_stack.start_group_at_topic_end(bootstrap, f"{group}-escalation", topics.SLA_ALERTS)


def about(unique: str) -> object:
    def keep(event: DecodedEvent) -> bool:
        if event.type.startswith("casewire.incident."):
            return str(event.data["topic"]).endswith(unique)
        return unique in str(event.data["case"]["conversation_id"])

    return keep


async def test_dm_merges_into_public_case_and_a_later_message_reopens_it(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    pg: asyncpg.Connection,
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    customer = f"cust{unique}"
    public = f"x:brand:tweet{unique}:{customer}"
    dm = f"x:brand:{customer}"
    async with (
        running(app),
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        reader = EventReader(events_in)
        keep = about(unique)
        await kafka.send_and_wait(
            topics.MESSAGES,
            canonical(public, f"{unique}-1", "my order is late", customer=customer),
            key=public.encode(),
        )
        await reader.read_until(lambda got: len(got) >= 2, keep=keep)  # created, assigned
        await kafka.send_and_wait(
            topics.MESSAGES,
            canonical(dm, f"{unique}-2", "order 1234", customer=customer, channel="dm"),
            key=dm.encode(),
        )
        events = await reader.read_until(
            lambda got: any(e.type == ev.CASE_MERGED for e in got), keep=keep
        )
        case_id = events[0].data["case"]["id"]
        merged = next(e for e in events if e.type == ev.CASE_MERGED)
        assert merged.data["case"]["id"] == case_id
        assert merged.data["merged_conversation_id"] == dm
        linked = await pg.fetch(
            f"SELECT conversation_id FROM {SCHEMA}.case_conversations WHERE case_id = $1",
            uuid.UUID(case_id),
        )
        assert {row["conversation_id"] for row in linked} == {public, dm}
        assert (
            await pg.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.cases WHERE customer_id = $1", customer
            )
            == 1
        )

        # Resolved (as the case API would), then the customer writes again in the DM.
        await pg.execute(
            f"UPDATE {SCHEMA}.cases SET status = 'resolved', resolved_at = now() WHERE id = $1",
            uuid.UUID(case_id),
        )
        await pg.execute(
            f"UPDATE {SCHEMA}.agents SET load = load - 1 WHERE id = $1", f"amal{unique}"
        )
        await kafka.send_and_wait(
            topics.MESSAGES,
            canonical(
                dm,
                f"{unique}-3",
                "it broke again",
                customer=customer,
                channel="dm",
                at=datetime.now(UTC) + timedelta(minutes=1),
            ),
            key=dm.encode(),
        )
        events = await reader.read_until(
            lambda got: any(e.type == ev.CASE_STATUS_CHANGED for e in got), keep=keep
        )
        reopened = next(e for e in events if e.type == ev.CASE_STATUS_CHANGED)
        assert reopened.data["case"]["id"] == case_id
        assert (reopened.data["previous_status"], reopened.data["case"]["status"]) == (
            "resolved",
            "reopened",
        )
        row = await eventually(
            lambda: pg.fetchrow(
                f"SELECT status, assignee, resolved_at FROM {SCHEMA}.cases WHERE id = $1",
                uuid.UUID(case_id),
            ),
            lambda row: row is not None and row["status"] == "assigned",
        )
        assert row is not None
        assert (row["status"], row["assignee"], row["resolved_at"]) == (
            "assigned",
            f"amal{unique}",
            None,
        )


async def test_burst_opens_one_incident_raises_its_cases_and_breach_escalates(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    pg: asyncpg.Connection,
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    async with (
        running(app),
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        reader = EventReader(events_in)
        keep = about(unique)
        for n in range(4):
            conversation = f"x:brand:t{n}{unique}:c{n}{unique}"
            await kafka.send_and_wait(
                topics.MESSAGES,
                canonical(
                    conversation, f"{unique}-o{n}", f"meltdown{unique} here", customer=f"c{n}"
                ),
                key=conversation.encode(),
            )
            # One message at a time: the incident must also gather cases of earlier batches.
            await reader.read_until(
                lambda got, n=n: sum(e.type == ev.CASE_CREATED for e in got) > n,
                keep=keep,
                types=("casewire.case.", "casewire.incident.", "casewire.sla."),
            )
        events = await reader.read_until(
            lambda got: any(e.type == ev.INCIDENT_UPDATED for e in got),
            keep=keep,
            types=("casewire.case.", "casewire.incident.", "casewire.sla."),
        )
        incidents = [e for e in events if e.type.startswith("casewire.incident.")]
        assert [e.type for e in incidents] == [ev.INCIDENT_OPENED, ev.INCIDENT_UPDATED]
        opened, updated = incidents
        created = [e.data["case"]["id"] for e in events if e.type == ev.CASE_CREATED]
        assert sorted(opened.data["added_case_ids"]) == sorted(created[:3])
        assert updated.data["added_case_ids"] == [created[3]]
        assert (opened.data["case_count"], updated.data["case_count"]) == (3, 4)
        assert opened.subject == updated.subject == opened.data["incident_id"]
        priorities = await pg.fetch(
            f"SELECT priority, tags FROM {SCHEMA}.cases WHERE id = ANY($1::uuid[])", created
        )
        assert [row["priority"] for row in priorities] == ["P1"] * 4
        assert all("incident" in row["tags"] for row in priorities)
        linked = await pg.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.incident_cases WHERE incident_id = $1",
            uuid.UUID(opened.data["incident_id"]),
        )
        assert linked == 4

        # The SLA service says the first case breached its first response target.
        case_id = created[0]
        alert = SlaAlertData(
            case_id=case_id,
            policy_id="standard",
            clock="first_response",
            target_seconds=900,
            started_at=datetime.now(UTC) - timedelta(minutes=15),
            due_at=datetime.now(UTC),
            fraction=1.0,
            team="care",
            priority="P1",
        )
        record = encode_event(
            event_id=f"alert-{unique}",
            event_type=ev.SLA_BREACHED,
            source="casewire/sla",
            subject=case_id,
            time=datetime.now(UTC),
            data=alert,
        )
        for _ in range(2):  # redelivered: escalates once
            await kafka.send_and_wait(
                topics.SLA_ALERTS,
                record.value,
                key=record.key.encode(),
                headers=list(record.headers.items()),
            )
        events = await reader.read_until(
            lambda got: any(
                e.type == ev.CASE_ASSIGNED and e.data["agent_id"] == f"lena{unique}" for e in got
            ),
            keep=keep,
            types=("casewire.case.", "casewire.incident.", "casewire.sla."),
        )
        escalated = [e for e in events if e.type == ev.CASE_ESCALATED]
        assert len(escalated) == 1
        assert escalated[0].data["case"]["team"] == "leads"
        assert escalated[0].data["sla_alert_id"] == f"alert-{unique}"
        row = await pg.fetchrow(
            f"SELECT team, assignee FROM {SCHEMA}.cases WHERE id = $1", uuid.UUID(case_id)
        )
        assert row is not None
        assert (row["team"], row["assignee"]) == ("leads", f"lena{unique}")


async def test_brand_reply_naming_no_customer_finds_its_case_through_in_reply_to(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    pg: asyncpg.Connection,
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    customer = f"cust{unique}"
    thread = f"x:brand:post{unique}:{customer}"
    brand_thread = f"x:brand:post{unique}:brand"  # as ingest keys a reply Meta gives no target
    async with (
        running(app),
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        reader = EventReader(events_in)
        keep = about(unique)
        await kafka.send_and_wait(
            topics.MESSAGES,
            canonical(thread, f"{unique}-c", "my order is late", customer=customer),
            key=thread.encode(),
        )
        events = await reader.read_until(lambda got: len(got) >= 2, keep=keep)
        case_id = events[0].data["case"]["id"]
        await kafka.send_and_wait(
            topics.MESSAGES,
            canonical(
                brand_thread,
                f"{unique}-r",
                "Sorry! We are on it",
                customer="brand",
                direction="outbound",
                in_reply_to=f"{unique}-c",
                at=datetime.now(UTC) + timedelta(seconds=5),
            ),
            key=brand_thread.encode(),
        )
        events = await reader.read_until(
            lambda got: any(e.type == ev.CASE_RESPONDED for e in got),
            keep=lambda event: event.data["case"]["id"] == case_id,
        )
        responded = next(e for e in events if e.type == ev.CASE_RESPONDED)
        assert responded.data["first_response"] is True
        stored = await pg.fetchval(
            f"SELECT case_id FROM {SCHEMA}.messages WHERE platform_message_id = $1",
            f"{unique}-r",
        )
        assert str(stored) == case_id
        # The customer answers the brand's reply: X names that reply as the thread's root, a
        # new conversation key, which the case takes over rather than opening another.
        next_hop = f"x:brand:{unique}-r:{customer}"
        await kafka.send_and_wait(
            topics.MESSAGES,
            canonical(
                next_hop,
                f"{unique}-f",
                "still nothing arrived",
                customer=customer,
                channel="reply",
                in_reply_to=f"{unique}-r",
                at=datetime.now(UTC) + timedelta(seconds=10),
            ),
            key=next_hop.encode(),
        )
        events = await reader.read_until(
            lambda got: any(e.type == ev.CASE_MESSAGE_ADDED for e in got),
            keep=keep,
        )
        # (the reader keeps every event so far: the one case created is the first one)
        assert [e.data["case"]["id"] for e in events if e.type == ev.CASE_CREATED] == [case_id]
        added = next(e for e in events if e.type == ev.CASE_MESSAGE_ADDED)
        assert added.data["case"]["id"] == case_id
        linked = await pg.fetchval(
            f"SELECT case_id FROM {SCHEMA}.case_conversations WHERE conversation_id = $1",
            next_hop,
        )
        assert str(linked) == case_id
