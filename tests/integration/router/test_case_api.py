"""The router's case and agent API on the real stack: cases come from messages on Kafka,
every action is checked through the API, PostgreSQL and the case events on Kafka."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import DecodedEvent
from casewire_common.messages import message_id
from casewire_common.pg import migrate
from casewire_dev.identity import LocalIdentity, bearer
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.main import create_app
from casewire_router.settings import RouterSettings

from tests.integration.helpers import (
    SESSION_TIMEOUT_MS,
    EventReader,
    producer,
    running,
    topic_reader,
)
from tests.integration.router.test_threading_incidents import start_at_topic_ends

ADMIN = "test-admin"
# Only this test's messages carry its keywords, so only they reach `shipping` (the topic is
# shared by the whole session and every router reads it from the start).
RULES = """
version: 1
default_team: care
teams: [care, shipping, billing]
rules:
  - id: urgent
    when: {{any: ["outage{unique}"]}}
    then: {{team: shipping, priority: P1, tags: [urgent]}}
  - id: shipping
    when: {{any: ["parcel{unique}"]}}
    then: {{team: shipping, priority: P3, tags: [shipping]}}
  - id: billing
    when: {{any: ["invoice{unique}"]}}
    then: {{team: billing, priority: P3, tags: [billing]}}
"""
SNAPSHOT_FIELDS = set(ev.CaseSnapshot.model_fields)


def settings_for(tmp_path: Path, database_url: str, bootstrap: str, unique: str) -> RouterSettings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(unique=unique), encoding="utf-8")
    return RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        router_rules=rules,
        router_agents=None,  # agents come from the API here
        router_consumer_group=f"router-api-test-{unique}",
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
    )


def customer_message(conversation: str, pid: str, text: str, sent_at: datetime) -> bytes:
    return json.dumps(
        {
            "id": message_id("x", pid),
            "platform": "x",
            "channel": "mention",
            "visibility": "public",
            "direction": "inbound",
            "event": "message",
            "account_id": "brand",
            "platform_message_id": pid,
            "conversation_id": conversation,
            "author": {"id": conversation.rsplit(":", 1)[1]},
            "text": text,
            "language": "en",
            "attachments": [],
            "sent_at": sent_at.isoformat(),
            "received_at": sent_at.isoformat(),
        }
    ).encode()


class Cases:
    """This test's conversations, their case ids once opened, and their events."""

    def __init__(self, reader: EventReader, unique: str) -> None:
        self.reader = reader
        self.unique = unique
        self.ids: dict[str, str] = {}  # name -> case id

    def conversation(self, name: str) -> str:
        customer = f"cust{self.unique}{name}"  # one customer each: no merging, no repeat contact
        return f"x:brand:{self.unique}{name}:{customer}"

    async def opened(self, *names: str) -> list[str]:
        wanted = {self.conversation(name): name for name in names}

        def done(events: list[DecodedEvent]) -> bool:
            created = {
                e.data["case"]["conversation_id"] for e in events if e.type == ev.CASE_CREATED
            }
            return set(wanted) <= created

        await self.reader.read_until(done, keep=self._mine)
        for event in self.reader.events:
            if event.type == ev.CASE_CREATED and event.data["case"]["conversation_id"] in wanted:
                self.ids[wanted[event.data["case"]["conversation_id"]]] = event.data["case"]["id"]
        return [self.ids[name] for name in names]

    async def events_of(self, name: str, count: int) -> list[DecodedEvent]:
        """The case's events once at least `count` arrived (all of them, in order)."""
        case_id = self.ids[name]

        def done(events: list[DecodedEvent]) -> bool:
            return sum(1 for e in events if e.subject == case_id) >= count

        await self.reader.read_until(done, keep=self._mine)
        return [e for e in self.reader.events if e.subject == case_id]

    def _mine(self, event: DecodedEvent) -> bool:
        return str(event.data.get("case", {}).get("conversation_id", "")).startswith(
            f"x:brand:{self.unique}"
        )


def summary(events: list[DecodedEvent]) -> list[tuple[str, str, str | None]]:
    return [(e.type, e.data["case"]["status"], e.data["case"]["assignee"]) for e in events]


async def ok(response: httpx.Response, code: int = 200) -> Any:
    assert response.status_code == code, response.text
    return response.json()


async def test_case_api_drives_cases_drains_queues_and_publishes_every_change(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
) -> None:
    auth = bearer(identity.token(ADMIN, ["admin"]))
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    now = datetime.now(UTC)
    async with (
        running(app) as client,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        cases = Cases(EventReader(events_in), unique)

        async def send(name: str, text: str, minutes_ago: int) -> None:
            conversation = cases.conversation(name)
            body = customer_message(
                conversation, f"{unique}-{name}", text, now - timedelta(minutes=minutes_ago)
            )
            await kafka.send_and_wait(topics.MESSAGES, body, key=conversation.encode())

        # Agents: amal has room for one case; sara is offline with no room.
        amal = {"teams": ["shipping"], "languages": ["en"], "capacity": 1, "online": True}
        created = await ok(await client.put("/v1/agents/amal", json=amal, headers=auth), 201)
        assert created["created"] is True
        assert created["agent"] == {**amal, "id": "amal", "load": 0, "last_assigned_at": None}
        sara = {"teams": ["shipping"], "languages": ["el"], "capacity": 0, "online": False}
        await ok(await client.put("/v1/agents/sara", json=sara, headers=auth), 201)

        # Case A takes amal's only place; B (older, P3 by rule) and C (newer, P1) wait.
        await send("a", f"where is my parcel{unique}?", minutes_ago=30)
        (case_a,) = await cases.opened("a")
        assert summary(await cases.events_of("a", 2))[-1] == (ev.CASE_ASSIGNED, "assigned", "amal")
        await send("b", f"a question about my parcel{unique}", minutes_ago=20)
        await send("c", f"outage{unique} nothing works", minutes_ago=5)
        case_b, case_c = await cases.opened("b", "c")
        queue = await ok(await client.get("/v1/teams/shipping/queue", headers=auth))
        assert [item["id"] for item in queue] == [case_c, case_b]  # P1 before the older P3
        assert queue[0]["priority"] == "P1"
        assert queue[1]["priority"] != "P1"
        assert queue[1]["opened_at"] < queue[0]["opened_at"]  # B has waited longer
        assert queue[1]["waiting_since"] == queue[1]["opened_at"]

        # Resolving A frees amal's place: C, the P1, gets it at once.
        resolved = await ok(await client.post(f"/v1/cases/{case_a}/resolve", headers=auth))
        assert (resolved["case"]["status"], resolved["case"]["assignee"]) == ("resolved", "amal")
        assert resolved["case"]["resolved_at"] is not None
        assert resolved["assigned_from_queue"] == [{"case_id": case_c, "agent_id": "amal"}]
        queue = await ok(await client.get("/v1/teams/shipping/queue", headers=auth))
        assert [item["id"] for item in queue] == [case_b]
        again = await client.post(f"/v1/cases/{case_a}/resolve", headers=auth)
        assert again.status_code == 409
        assert "resolved" in again.json()["detail"]

        # Sara is offline: a claim is refused; going online with room takes B from the queue.
        refused = await client.post(
            f"/v1/cases/{case_b}/claim", json={"agent_id": "sara"}, headers=auth
        )
        assert refused.status_code == 409
        assert "offline" in refused.json()["detail"]
        online = await ok(
            await client.patch(
                "/v1/agents/sara", json={"online": True, "capacity": 1}, headers=auth
            )
        )
        assert online["assigned_from_queue"] == [{"case_id": case_b, "agent_id": "sara"}]
        assert (online["agent"]["load"], online["created"]) == (1, False)

        # D waits (everyone is full); a claim over capacity needs force.
        await send("d", f"parcel{unique} wrong address", minutes_ago=1)
        (case_d,) = await cases.opened("d")
        over = await client.post(
            f"/v1/cases/{case_d}/claim", json={"agent_id": "amal"}, headers=auth
        )
        assert over.status_code == 409
        assert "capacity" in over.json()["detail"]
        claimed = await ok(
            await client.post(
                f"/v1/cases/{case_d}/claim", json={"agent_id": "amal", "force": True}, headers=auth
            )
        )
        assert (claimed["case"]["status"], claimed["case"]["assignee"]) == ("assigned", "amal")

        # C: pending, two replies amal made by phone, then handed to sara (forced), still
        # pending. Amal acts with her own token: the reply is hers.
        as_amal = bearer(identity.token("amal", ["agent"]))
        pending = await ok(await client.post(f"/v1/cases/{case_c}/pending", headers=as_amal))
        assert pending["case"]["status"] == "pending"
        twice = await client.post(f"/v1/cases/{case_c}/pending", headers=auth)
        assert twice.status_code == 409
        first = await ok(
            await client.post(
                f"/v1/cases/{case_c}/replies",
                json={"text": "called the customer"},
                headers=as_amal,
            ),
            201,
        )
        assert first["first_response"] is True
        assert first["case"]["first_response_at"] is not None
        second = await ok(
            await client.post(
                f"/v1/cases/{case_c}/replies",
                json={"text": "sent a voucher by mail"},
                headers=as_amal,
            ),
            201,
        )
        assert second["first_response"] is False
        moved = await ok(
            await client.post(
                f"/v1/cases/{case_c}/reassign",
                json={"agent_id": "sara", "force": True},
                headers=auth,
            )
        )
        assert (moved["case"]["status"], moved["case"]["assignee"]) == ("pending", "sara")

        # A reopens: amal (D, 1/1 once C is handed over) and sara (B and C, 2/1) are full, so
        # A waits as `reopened`, from now on; raising amal's capacity takes it.
        reopened = await ok(await client.post(f"/v1/cases/{case_a}/reopen", headers=auth))
        assert (reopened["case"]["status"], reopened["case"]["assignee"]) == ("reopened", None)
        assert reopened["case"]["resolved_at"] is None
        queue = await ok(await client.get("/v1/teams/shipping/queue", headers=auth))
        assert [item["id"] for item in queue] == [case_a]
        assert queue[0]["waiting_since"] > queue[0]["opened_at"]
        raised = await ok(await client.patch("/v1/agents/amal", json={"capacity": 2}, headers=auth))
        assert raised["assigned_from_queue"] == [{"case_id": case_a, "agent_id": "amal"}]

        # Reads: the case with its messages and decision; the agents with their load.
        detail = await ok(await client.get(f"/v1/cases/{case_c}", headers=auth))
        assert detail["case"]["id"] == case_c
        assert detail["decision"]["matched_rules"] == ["urgent"]
        assert detail["waiting_since"] is None
        assert [(m["direction"], m["author_id"], m["text"]) for m in detail["messages"]] == [
            ("inbound", f"cust{unique}c", f"outage{unique} nothing works"),
            ("outbound", "amal", "called the customer"),
            ("outbound", "amal", "sent a voucher by mail"),
        ]
        assert not any(m["deleted"] or m["edited"] for m in detail["messages"])
        agents = await ok(await client.get("/v1/agents", headers=auth))
        assert [(a["id"], a["load"], a["capacity"], a["online"]) for a in agents] == [
            ("amal", 2, 2, True),  # D and A
            ("sara", 2, 1, True),  # B and C (forced)
        ]

        # Clear refusals.
        unknown_case = "00000000-0000-0000-0000-000000000000"
        assert (await client.get(f"/v1/cases/{unknown_case}", headers=auth)).status_code == 404
        assert (await client.get("/v1/cases/not-a-case", headers=auth)).status_code == 404
        ghost = await client.post(
            f"/v1/cases/{case_b}/reassign", json={"agent_id": "ghost"}, headers=auth
        )
        assert ghost.status_code == 404
        assert (
            await client.patch("/v1/agents/ghost", json={"online": True}, headers=auth)
        ).status_code == 404
        for method, path, body in [
            ("POST", f"/v1/cases/{case_b}/replies", {"agent_id": "amal"}),
            ("PATCH", "/v1/agents/amal", {}),
            ("PUT", "/v1/agents/amal", {**amal, "capacity": -1}),
            ("PUT", "/v1/agents/amal", {**amal, "languages": ["english"]}),
        ]:
            response = await client.request(method, path, json=body, headers=auth)
            assert response.status_code == 422, (path, body, response.text)

        # Every change is on Kafka, in order, each with the whole case.
        events_a = await cases.events_of("a", 5)
        assert summary(events_a) == [
            (ev.CASE_CREATED, "queued", None),
            (ev.CASE_ASSIGNED, "assigned", "amal"),
            (ev.CASE_STATUS_CHANGED, "resolved", "amal"),
            (ev.CASE_STATUS_CHANGED, "reopened", None),
            (ev.CASE_ASSIGNED, "assigned", "amal"),
        ]
        # The SLA service restarts its clocks on this one: reopened, from resolved.
        assert events_a[3].data["previous_status"] == "resolved"
        events_c = await cases.events_of("c", 6)
        assert summary(events_c) == [
            (ev.CASE_CREATED, "queued", None),
            (ev.CASE_ASSIGNED, "assigned", "amal"),
            (ev.CASE_STATUS_CHANGED, "pending", "amal"),
            (ev.CASE_RESPONDED, "pending", "amal"),
            (ev.CASE_RESPONDED, "pending", "amal"),
            (ev.CASE_ASSIGNED, "pending", "sara"),
        ]
        from_queue = events_c[1].data["decision"]
        assert from_queue["assignment_reason"].startswith("from the queue")
        assert [e.data["first_response"] for e in events_c[3:5]] == [True, False]
        events_b = await cases.events_of("b", 2)
        assert summary(events_b) == [
            (ev.CASE_CREATED, "queued", None),
            (ev.CASE_ASSIGNED, "assigned", "sara"),
        ]
        for event in [*events_a, *events_b, *events_c]:
            assert set(event.data["case"]) == SNAPSHOT_FIELDS
        # Message path, API actions and queue drains count one case version each: read back
        # from the case row by the next transaction, they run 1, 2, 3... without a gap.
        for events in (events_a, events_b, events_c):
            versions = [e.data["case"]["version"] for e in events]
            assert versions == list(range(1, len(events) + 1))

    connection = await asyncpg.connect(database_url)
    try:
        replies = await connection.fetch(
            f"SELECT direction, author_id, platform_message_id FROM {SCHEMA}.messages"
            " WHERE case_id = $1 AND direction = 'outbound'",
            case_c,
        )
        loads = {
            row["id"]: row["load"]
            for row in await connection.fetch(f"SELECT id, load FROM {SCHEMA}.agents")
        }
    finally:
        await connection.close()
    assert len(replies) == 2
    assert all(row["platform_message_id"].startswith("casewire-api:") for row in replies)
    assert loads == {"amal": 2, "sara": 2}


async def test_concurrent_resolves_drain_the_queue_once_and_never_over_fill(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
) -> None:
    auth = bearer(identity.token(ADMIN, ["admin"]))
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    now = datetime.now(UTC)
    names = [f"n{index}" for index in range(8)]
    async with (
        running(app) as client,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        cases = Cases(EventReader(events_in), unique)
        for agent_id in ("amal", "sara"):
            agent = {"teams": ["shipping"], "languages": ["en"], "capacity": 2, "online": True}
            await ok(await client.put(f"/v1/agents/{agent_id}", json=agent, headers=auth), 201)
        for minutes_ago, name in enumerate(reversed(names)):
            conversation = cases.conversation(name)
            body = customer_message(
                conversation,
                f"{unique}-{name}",
                f"parcel{unique} {name}",
                now - timedelta(minutes=minutes_ago),
            )
            await kafka.send_and_wait(topics.MESSAGES, body, key=conversation.encode())
        case_ids = await cases.opened(*names)
        agents = await ok(await client.get("/v1/agents", headers=auth))
        assert [a["load"] for a in agents] == [2, 2]
        queue = await ok(await client.get("/v1/teams/shipping/queue", headers=auth))
        waiting = [item["id"] for item in queue]
        owned = [case_id for case_id in case_ids if case_id not in waiting]
        assert (len(waiting), len(owned)) == (4, 4)

        resolved = await asyncio.gather(
            *(client.post(f"/v1/cases/{case_id}/resolve", headers=auth) for case_id in owned)
        )
        assert [response.status_code for response in resolved] == [200] * 4
        drained = [a["case_id"] for r in resolved for a in r.json()["assigned_from_queue"]]
        assert sorted(drained) == sorted(waiting)  # each waiting case went out exactly once
        queue = await ok(await client.get("/v1/teams/shipping/queue", headers=auth))
        assert queue == []

    connection = await asyncpg.connect(database_url)
    try:
        loads = await connection.fetch(
            f"SELECT a.id, a.load, a.capacity, count(c.id) AS owned FROM {SCHEMA}.agents a"
            f" LEFT JOIN {SCHEMA}.cases c ON c.assignee = a.id"
            " AND c.status NOT IN ('resolved', 'no_action') GROUP BY a.id ORDER BY a.id"
        )
    finally:
        await connection.close()
    # The stored load is exactly the open cases each agent owns, and within capacity.
    assert [(row["id"], row["load"], row["owned"]) for row in loads] == [
        ("amal", 2, 2),
        ("sara", 2, 2),
    ]


async def test_a_place_freed_in_one_team_goes_to_the_queue_of_the_agents_other_team(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
) -> None:
    auth = bearer(identity.token(ADMIN, ["admin"]))
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    now = datetime.now(UTC)
    async with (
        running(app) as client,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        cases = Cases(EventReader(events_in), unique)
        amal = {
            "teams": ["shipping", "billing"],
            "languages": ["en"],
            "capacity": 1,
            "online": True,
        }
        await ok(await client.put("/v1/agents/amal", json=amal, headers=auth), 201)
        for name, text in (("s", f"my parcel{unique}"), ("i", f"my invoice{unique}")):
            conversation = cases.conversation(name)
            body = customer_message(conversation, f"{unique}-{name}", text, now)
            await kafka.send_and_wait(topics.MESSAGES, body, key=conversation.encode())
            await cases.opened(name)  # one after the other: the first one takes amal's place
        shipping, billing = cases.ids["s"], cases.ids["i"]
        queue = await ok(await client.get("/v1/teams/billing/queue", headers=auth))
        assert [item["id"] for item in queue] == [billing]

        resolved = await ok(await client.post(f"/v1/cases/{shipping}/resolve", headers=auth))
        assert resolved["assigned_from_queue"] == [{"case_id": billing, "agent_id": "amal"}]
        assert await ok(await client.get("/v1/teams/billing/queue", headers=auth)) == []
