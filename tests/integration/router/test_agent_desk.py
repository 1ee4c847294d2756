"""An agent's own work and collision avoidance on the real stack: router replicas served by
uvicorn in this process (the stream is real HTTP), cases from messages on Kafka, PostgreSQL
holding the feed, the leases and the echoes, case events read back from Kafka."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import DecodedEvent
from casewire_common.messages import message_id
from casewire_common.pg import migrate
from casewire_dev import stack as local_stack
from casewire_dev.identity import LocalIdentity, bearer
from casewire_router.adapters import case_feed
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.domain.desk import LEASE_RELEASED, LEASE_TAKEN, Desk, sees
from casewire_router.main import create_app
from casewire_router.settings import RouterSettings
from fastapi import FastAPI

from tests.integration.helpers import (
    SESSION_TIMEOUT_MS,
    EventReader,
    eventually,
    metric_value,
    producer,
    topic_reader,
)
from tests.integration.router.test_threading_incidents import start_at_topic_ends

ADMIN = "desk-admin"
RULES = """
version: 1
default_team: care
teams: [care, shipping, billing]
rules:
  - id: urgent
    when: {{any: ["outage{unique}"]}}
    then: {{team: shipping, priority: P1}}
  - id: shipping
    when: {{any: ["parcel{unique}"]}}
    then: {{team: shipping, priority: P3}}
  - id: billing
    when: {{any: ["invoice{unique}"]}}
    then: {{team: billing, priority: P3}}
"""


def desk_settings(
    tmp_path: Path, database_url: str, bootstrap: str, unique: str, **overrides: Any
) -> RouterSettings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(unique=unique), encoding="utf-8")
    settings: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        "router_rules": rules,
        "router_agents": None,  # agents come from the API
        "router_consumer_group": f"router-desk-{unique}",
        "consumer_session_timeout_ms": SESSION_TIMEOUT_MS,
        "router_desk_check_seconds": 0.2,
        "router_stream_poll_seconds": 0.5,
        "router_stream_keepalive_seconds": 1.0,
        **overrides,
    }
    return RouterSettings(**settings)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app served by uvicorn on a free port (its lifespan included): its base URL."""
    port = local_stack.free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Sse:
    """One Server-Sent Event as a client parses it."""

    event: str | None = None
    id: str | None = None
    data: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.data or "null")

    @property
    def case_id(self) -> str:
        data = self.json
        return str(data["case"]["id"] if "case" in data else data["case_id"])


class SseClient:
    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()
        self.events: list[Sse] = []  # those with an event type, in order

    async def next(self, timeout: float = 30.0) -> Sse:
        """The next block (an event, or an id/comment block)."""
        block = Sse()
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "":
                    if block.event or block.id or block.data or block.comments:
                        if block.event:
                            self.events.append(block)
                        return block
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    block.comments.append(value)
                elif name == "data":
                    block.data = value if block.data is None else f"{block.data}\n{value}"
                elif name in ("event", "id"):
                    setattr(block, name, value)
        raise AssertionError("the stream ended")

    async def until(self, done: Callable[[list[Sse]], bool], timeout: float = 30.0) -> list[Sse]:
        async with asyncio.timeout(timeout):
            while not done(self.events):
                await self.next(timeout)
        return self.events

    async def opened(self) -> Sse:
        """Read up to the `live` marker: the stream has caught up."""
        while True:
            block = await self.next()
            if "live" in block.comments:
                return block


@asynccontextmanager
async def stream(
    base_url: str, headers: dict[str, str], last_event_id: str | None = None
) -> AsyncIterator[SseClient]:
    if last_event_id is not None:
        headers = {**headers, "Last-Event-ID": last_event_id}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30.0)) as client,
        client.stream("GET", "/v1/me/stream", headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseClient(response)


def conversation(unique: str, name: str) -> str:
    return f"x:brand:{unique}{name}:cust{unique}{name}"


def canonical(
    unique: str, name: str, pid: str, text: str, *, direction: str = "inbound", minutes: int = 0
) -> bytes:
    thread = conversation(unique, name)
    sent = datetime.now(UTC) - timedelta(minutes=minutes)
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
            "conversation_id": thread,
            "author": {"id": "brand" if direction == "outbound" else thread.rsplit(":", 1)[1]},
            "text": text,
            "language": "en",
            "attachments": [],
            "sent_at": sent.isoformat(),
            "received_at": sent.isoformat(),
        }
    ).encode()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def ok(response: httpx.Response, code: int = 200) -> Any:
    assert response.status_code == code, response.text
    return response.json() if response.content else None


class Stage:
    """One test's router (its HTTP API), its Kafka producer and its case-events reader."""

    def __init__(self, api: httpx.AsyncClient, kafka: Any, reader: EventReader, unique: str):
        self.api = api
        self.kafka = kafka
        self.reader = reader
        self.unique = unique
        self.ids: dict[str, str] = {}  # conversation name -> case id

    async def send(self, name: str, pid: str, text: str, **options: Any) -> None:
        body = canonical(self.unique, name, f"{self.unique}-{pid}", text, **options)
        await self.kafka.send_and_wait(
            topics.MESSAGES, body, key=conversation(self.unique, name).encode()
        )

    async def events(
        self, done: Callable[[list[DecodedEvent]], bool], timeout: float = 30.0
    ) -> list[DecodedEvent]:
        return await self.reader.read_until(done, keep=self._mine, timeout=timeout)

    async def case_where(self, name: str, check: Callable[[DecodedEvent], bool]) -> str:
        """Wait for an event of the named conversation's case that passes `check`."""
        thread = conversation(self.unique, name)

        def done(events: list[DecodedEvent]) -> bool:
            return any(e.data["case"]["conversation_id"] == thread and check(e) for e in events)

        events = await self.events(done)
        (case_id,) = {
            e.data["case"]["id"] for e in events if e.data["case"]["conversation_id"] == thread
        }
        self.ids[name] = case_id
        return case_id

    async def assigned(self, name: str, agent: str) -> str:
        return await self.case_where(
            name, lambda e: e.type == ev.CASE_ASSIGNED and e.data["case"]["assignee"] == agent
        )

    async def agent(self, headers: dict[str, str], agent_id: str, **body: Any) -> None:
        definition = {"teams": ["shipping"], "languages": ["en"], "capacity": 5, **body}
        await ok(
            await self.api.put(f"/v1/agents/{agent_id}", json=definition, headers=headers), 201
        )

    def _mine(self, event: DecodedEvent) -> bool:
        return str(event.data.get("case", {}).get("conversation_id", "")).startswith(
            f"x:brand:{self.unique}"
        )


@asynccontextmanager
async def staged(app_url: str, bootstrap: str, unique: str) -> AsyncIterator[Stage]:
    async with (
        httpx.AsyncClient(base_url=app_url, timeout=30.0) as api,
        producer(bootstrap) as kafka,
        topic_reader(bootstrap, topics.CASE_EVENTS, from_end=True) as events_in,
    ):
        yield Stage(api, kafka, EventReader(events_in), unique)


async def test_the_stream_resumes_on_another_replica_after_a_disconnect_missing_nothing(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = desk_settings(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    replica_a, replica_b = create_app(settings), create_app(settings)
    admin = bearer(identity.token(ADMIN, ["admin"]))
    amal = bearer(identity.token("amal", ["agent"]))
    lee = bearer(identity.token("lee", ["lead"], teams=["shipping"]))
    async with (
        serving(replica_a) as url_a,
        serving(replica_b) as url_b,
        staged(url_a, kafka_bootstrap, unique) as stage,
    ):
        await stage.agent(admin, "amal", online=True)
        await stage.agent(admin, "sara", online=False)

        async with stream(url_a, amal) as first:
            opened = await first.opened()
            assert opened.id is not None
            await stage.send("a", "a1", f"where is my parcel{unique}?")
            await stage.send("b", "b1", f"my parcel{unique} is late")
            await stage.send("d", "d1", f"wrong invoice{unique}")  # billing: not amal's
            case_a = await stage.assigned("a", "amal")
            case_b = await stage.assigned("b", "amal")
            await stage.case_where("d", lambda e: e.type == ev.CASE_CREATED)
            await ok(await stage.api.post(f"/v1/cases/{case_a}/reply-lease", headers=amal))

            def seen(kind: str, case_id: str) -> Callable[[list[Sse]], bool]:
                return lambda events: any(e.event == kind and e.case_id == case_id for e in events)

            await first.until(seen(LEASE_TAKEN, case_a))
            before = list(first.events)

        # Disconnected: the replica forgets the stream (no task, no subscription left behind).
        async def streams_served() -> int:
            return int(replica_a.state.feed_hub.subscriptions)

        assert await eventually(streams_served, lambda served: served == 0) == 0
        # Cases a and b may be routed in either order (two partitions); each case's in order.
        assert len(before) == 5
        assert [e.event for e in before if e.case_id == case_a] == [
            ev.CASE_CREATED,
            ev.CASE_ASSIGNED,
            LEASE_TAKEN,
        ]
        assert [e.event for e in before if e.case_id == case_b] == [
            ev.CASE_CREATED,
            ev.CASE_ASSIGNED,
        ]

        # While amal is away: her case resolved, the lease released, a case taken from her
        # by a lead, a new case given to her.
        await ok(await stage.api.post(f"/v1/cases/{case_a}/resolve", headers=amal))
        await ok(await stage.api.delete(f"/v1/cases/{case_a}/reply-lease", headers=amal), 204)
        moved = {"agent_id": "sara", "force": True}
        await ok(await stage.api.post(f"/v1/cases/{case_b}/reassign", json=moved, headers=lee))
        await stage.send("c", "c1", f"parcel{unique} never came")
        case_c = await stage.assigned("c", "amal")
        mine = await ok(await stage.api.get("/v1/me/cases", headers=amal))
        assert [case["id"] for case in mine] == [case_c]

        async with stream(url_b, amal, last_event_id=before[-1].id) as second:
            await second.until(seen(ev.CASE_ASSIGNED, case_c))
            resumed = list(second.events)
            assert [(e.event, e.case_id) for e in resumed] == [
                (ev.CASE_STATUS_CHANGED, case_a),
                (LEASE_RELEASED, case_a),
                (ev.CASE_ASSIGNED, case_b),
                (ev.CASE_CREATED, case_c),
                (ev.CASE_ASSIGNED, case_c),
            ]
            assert resumed[0].json["case"]["status"] == "resolved"
            assert resumed[2].json["case"]["assignee"] == "sara"  # owned until this change
            # And live from replica B, whichever replica made the change.
            await ok(await stage.api.post(f"/v1/cases/{case_c}/resolve", headers=amal))
            await second.until(seen(ev.CASE_STATUS_CHANGED, case_c))
            live = second.events[len(resumed) :]

    streamed = [*before, *resumed, *live]
    positions = [int(e.id or 0) for e in streamed]
    assert positions == sorted(set(positions))  # in commit order, each once
    # Exactly what the feed holds for amal's desk since she connected, nothing else.
    connection = await asyncpg.connect(database_url)
    try:
        rows = await case_feed.read_after(connection, int(opened.id), 10_000)
    finally:
        await connection.close()
    desk = Desk("amal", frozenset({"shipping"}), oversees=False)
    expected = [row.id for row in rows if sees(desk, row) and row.id <= positions[-1]]
    assert positions == expected
    assert all(stage.ids["d"] not in (e.data or "") for e in streamed)


async def test_two_people_racing_for_a_reply_lease_one_wins_and_the_other_is_told_who(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crm = identity.service_token("crm", ["cases:read", "cases:write"])
    for name, value in identity.router_env().items():
        monkeypatch.setenv(name, value)
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    ttl = timedelta(seconds=2)
    settings = desk_settings(
        tmp_path, database_url, kafka_bootstrap, unique, router_reply_lease_ttl=ttl
    )
    await start_at_topic_ends(settings)
    app = create_app(settings)
    admin = bearer(identity.token(ADMIN, ["admin"]))
    amal = bearer(identity.token("amal", ["agent"]))
    sara = bearer(identity.token("sara", ["agent"]))
    lee = bearer(identity.token("lee", ["lead"], teams=["shipping"]))
    async with serving(app) as url, staged(url, kafka_bootstrap, unique) as stage:
        api = stage.api
        await stage.agent(admin, "amal", online=True, capacity=1)
        await stage.agent(admin, "sara", online=True, capacity=0)
        await stage.send("a", "a1", f"where is my parcel{unique}?", minutes=30)
        case_a = await stage.assigned("a", "amal")
        await stage.send("b", "b1", f"parcel{unique} late", minutes=20)
        await stage.send("c", "c1", f"outage{unique} everything is down", minutes=5)
        case_b = await stage.case_where("b", lambda e: e.type == ev.CASE_CREATED)
        case_c = await stage.case_where("c", lambda e: e.type == ev.CASE_CREATED)

        # Her own work: her case; her team's queue, the P1 first though newer.
        mine = await api.get("/v1/me/cases", headers=amal)
        assert [case["id"] for case in await ok(mine)] == [case_a]
        queue = await api.get("/v1/me/queue", headers=sara)
        assert [case["id"] for case in await ok(queue)] == [case_c, case_b]
        assert int(mine.headers["Casewire-Stream-Position"]) > 0
        assert (await api.get("/v1/me/cases", headers=bearer(crm))).status_code == 403

        # Owner and lead race for the lease, again and again: one wins, the other is told who.
        for _ in range(5):
            answers = await asyncio.gather(
                api.post(f"/v1/cases/{case_a}/reply-lease", headers=amal),
                api.post(f"/v1/cases/{case_a}/reply-lease", headers=lee),
            )
            assert sorted(answer.status_code for answer in answers) == [200, 409]
            won = next(answer for answer in answers if answer.status_code == 200).json()
            lost = next(answer for answer in answers if answer.status_code == 409).json()
            assert lost["error"] == "lease_held"
            assert (lost["holder"], lost["expires_at"]) == (won["holder"], won["expires_at"])
            assert won["holder"] in lost["detail"]
            winner = amal if won["holder"] == "amal" else lee
            await ok(await api.delete(f"/v1/cases/{case_a}/reply-lease", headers=winner), 204)

        # Amal answers: the case view and her list show it; renewing extends it.
        taken = await ok(await api.post(f"/v1/cases/{case_a}/reply-lease", headers=amal))
        assert (taken["holder"], taken["renewed"]) == ("amal", False)
        view = await ok(await api.get(f"/v1/cases/{case_a}", headers=lee))
        assert view["reply_lease"] == {"holder": "amal", "expires_at": taken["expires_at"]}
        listed = await ok(await api.get("/v1/me/cases", headers=amal))
        assert listed[0]["reply_lease"]["holder"] == "amal"
        renewed = await ok(await api.post(f"/v1/cases/{case_a}/reply-lease", headers=amal))
        assert renewed["renewed"] is True
        assert instant(renewed["expires_at"]) > instant(taken["expires_at"])
        assert (await api.post(f"/v1/cases/{case_a}/reply-lease", headers=sara)).status_code == 403
        assert (
            await api.delete(f"/v1/cases/{case_a}/reply-lease", headers=sara)
        ).status_code == 403

        # The lead answers anyway while amal holds the lease: a collision, seen by the lead.
        over = await ok(
            await api.post(f"/v1/cases/{case_a}/replies", json={"text": "هذا ردّ"}, headers=lee),
            201,
        )
        assert over["collision"] is True
        own = await ok(
            await api.post(
                f"/v1/cases/{case_a}/replies", json={"text": "Η παραγγελία σας"}, headers=amal
            ),
            201,
        )
        assert own["collision"] is False
        events = await stage.events(lambda es: any(e.type == ev.CASE_COLLISION for e in es))
        (collision,) = [e for e in events if e.type == ev.CASE_COLLISION]
        assert (collision.subject, collision.data["agent_id"]) == (case_a, "lee")
        assert (collision.data["lease_holder"], collision.data["reply_source"]) == ("amal", "api")
        assert collision.data["actor"] == {"id": "lee", "role": "lead"}
        metrics = (await api.get("/metrics")).text
        collisions = "casewire_router_collisions_total"
        assert metric_value(metrics, collisions, {"team": "shipping", "source": "api"}) == 1
        assert metric_value(metrics, collisions, {"team": "shipping", "source": "platform"}) == 0

        # The lease expires unrenewed: the lead takes it; only they (or a lead) release it.
        await asyncio.sleep(ttl.total_seconds() + 0.5)
        assert (await ok(await api.get(f"/v1/cases/{case_a}", headers=lee)))["reply_lease"] is None
        again = await ok(await api.post(f"/v1/cases/{case_a}/reply-lease", headers=lee))
        assert (again["holder"], again["renewed"]) == ("lee", False)
        refused = await api.post(f"/v1/cases/{case_a}/reply-lease", headers=amal)
        assert (refused.status_code, refused.json()["holder"]) == (409, "lee")
        assert (
            await api.delete(f"/v1/cases/{case_a}/reply-lease", headers=amal)
        ).status_code == 403
        await ok(await api.delete(f"/v1/cases/{case_a}/reply-lease", headers=lee), 204)
        await ok(await api.delete(f"/v1/cases/{case_a}/reply-lease", headers=lee), 204)
        assert (await ok(await api.get(f"/v1/cases/{case_a}", headers=lee)))["reply_lease"] is None

        # Nobody answers a closed case.
        await ok(await api.post(f"/v1/cases/{case_a}/resolve", headers=amal))
        closed = await api.post(f"/v1/cases/{case_a}/reply-lease", headers=amal)
        assert closed.status_code == 409


async def test_an_echo_during_another_persons_lease_collides_unless_its_holder_records_it(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    window = timedelta(seconds=2)
    settings = desk_settings(
        tmp_path, database_url, kafka_bootstrap, unique, router_echo_window=window
    )
    await start_at_topic_ends(settings)
    app = create_app(settings)
    admin = bearer(identity.token(ADMIN, ["admin"]))
    amal = bearer(identity.token("amal", ["agent"]))
    async with serving(app) as url, staged(url, kafka_bootstrap, unique) as stage:
        api = stage.api
        await stage.agent(admin, "amal", online=True)
        await stage.send("a", "a1", f"where is my parcel{unique}?", minutes=5)
        case_a = await stage.assigned("a", "amal")
        await ok(await api.post(f"/v1/cases/{case_a}/reply-lease", headers=amal))

        def responded(pid: str) -> Callable[[list[DecodedEvent]], bool]:
            wanted = message_id("x", f"{unique}-{pid}")
            return lambda events: any(
                e.type == ev.CASE_RESPONDED and e.data["message_id"] == wanted for e in events
            )

        # Someone answers from the platform's own app while amal types: a collision once the
        # window passes without amal recording it.
        await stage.send("a", "e1", "Sorry! Sent from the app", direction="outbound")
        events = await stage.events(lambda es: any(e.type == ev.CASE_COLLISION for e in es))
        (collision,) = [e for e in events if e.type == ev.CASE_COLLISION]
        assert collision.subject == case_a
        assert collision.data["message_id"] == message_id("x", f"{unique}-e1")
        assert (collision.data["reply_source"], collision.data["lease_holder"]) == (
            "platform",
            "amal",
        )
        assert (collision.data["agent_id"], collision.data["actor"]) == (None, None)
        metrics = (await api.get("/metrics")).text
        labels = {"team": "shipping", "source": "platform"}
        assert metric_value(metrics, "casewire_router_collisions_total", labels) == 1

        # Amal's own reply sent through the platform: its echo comes first, she records it in
        # time with the platform's id: the same reply, counted once, no collision.
        await stage.send("a", "e2", "Your parcel ships today", direction="outbound")
        await stage.events(responded("e2"))
        recorded = await ok(
            await api.post(
                f"/v1/cases/{case_a}/replies",
                json={"text": "Your parcel ships today", "platform_message_id": f"{unique}-e2"},
                headers=amal,
            )
        )
        assert (recorded["seen_on_platform"], recorded["collision"]) == (True, False)

        # Recorded first: its echo is the same message, not a second reply.
        first = await ok(
            await api.post(
                f"/v1/cases/{case_a}/replies",
                json={"text": "ส่งแล้วครับ", "platform_message_id": f"{unique}-e3"},
                headers=amal,
            ),
            201,
        )
        assert (first["seen_on_platform"], first["collision"]) == (False, False)
        duplicates = metric_value(
            (await api.get("/metrics")).text, "casewire_router_duplicates_total"
        )
        await stage.send("a", "e3", "ส่งแล้วครับ", direction="outbound")
        await eventually(
            lambda: api.get("/metrics"),
            lambda r: metric_value(r.text, "casewire_router_duplicates_total") > duplicates,
        )

        # With no lease, an echo is presumed the owner's.
        await ok(await api.delete(f"/v1/cases/{case_a}/reply-lease", headers=amal), 204)
        await stage.send("a", "e4", "Anything else?", direction="outbound")
        await stage.events(responded("e4"))
        await asyncio.sleep(window.total_seconds() + 1.0)
        events = await stage.events(lambda _: False, timeout=1.0)
        assert [e.data["message_id"] for e in events if e.type == ev.CASE_COLLISION] == [
            message_id("x", f"{unique}-e1")
        ]
        e3 = message_id("x", f"{unique}-e3")
        assert [e.type for e in events if e.data.get("message_id") == e3] == [ev.CASE_RESPONDED]
        view = await ok(await api.get(f"/v1/cases/{case_a}", headers=amal))
        pids = [m["platform_message_id"] for m in view["messages"] if m["direction"] == "outbound"]
        assert pids == [f"{unique}-{pid}" for pid in ("e1", "e2", "e3", "e4")]
        metrics = (await api.get("/metrics")).text
        assert metric_value(metrics, "casewire_router_collisions_total", labels) == 1


async def test_an_offline_agents_cases_return_after_the_grace_and_drain_to_others(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    grace = timedelta(seconds=1)
    settings = desk_settings(
        tmp_path, database_url, kafka_bootstrap, unique, router_offline_grace=grace
    )
    await start_at_topic_ends(settings)
    app = create_app(settings)
    admin = bearer(identity.token(ADMIN, ["admin"]))
    amal = bearer(identity.token("amal", ["agent"]))
    sara = bearer(identity.token("sara", ["agent"]))
    async with serving(app) as url, staged(url, kafka_bootstrap, unique) as stage:
        api = stage.api
        await stage.agent(admin, "amal", online=True)
        await stage.agent(admin, "sara", online=False)
        await stage.send("a", "a1", f"where is my parcel{unique}?")
        await stage.send("b", "b1", f"parcel{unique} damaged")
        case_a = await stage.assigned("a", "amal")
        case_b = await stage.assigned("b", "amal")
        await ok(await api.patch("/v1/agents/sara", json={"online": True}, headers=sara))

        # Amal goes offline: past the grace her cases go back and sara gets them at once.
        await ok(await api.patch("/v1/agents/amal", json={"online": False}, headers=amal))
        events = await stage.events(
            lambda es: (
                {
                    e.subject
                    for e in es
                    if e.type == ev.CASE_ASSIGNED and e.data["case"]["assignee"] == "sara"
                }
                == {case_a, case_b}
            )
        )
        returned = [e for e in events if e.type == ev.CASE_STATUS_CHANGED]
        assert {e.subject for e in returned} == {case_a, case_b}
        for event in returned:
            assert (event.data["case"]["status"], event.data["case"]["assignee"]) == (
                "queued",
                None,
            )
            assert (event.data["reason"], event.data["agent_id"]) == ("owner_offline", "amal")
            assert event.data["actor"] is None  # the router decided
        agents = {a["id"]: a for a in await ok(await api.get("/v1/agents", headers=admin))}
        assert (agents["amal"]["load"], agents["sara"]["load"]) == (0, 2)
        mine = await ok(await api.get("/v1/me/cases", headers=sara))
        assert {case["id"] for case in mine} == {case_a, case_b}

        # Back online within the grace: sara keeps them.
        await ok(await api.patch("/v1/agents/sara", json={"online": False}, headers=sara))
        await ok(await api.patch("/v1/agents/sara", json={"online": True}, headers=sara))
        await asyncio.sleep(grace.total_seconds() * 2 + 0.5)
        mine = await ok(await api.get("/v1/me/cases", headers=sara))
        assert {case["id"] for case in mine} == {case_a, case_b}


async def test_without_a_grace_an_offline_agent_keeps_their_cases(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = desk_settings(tmp_path, database_url, kafka_bootstrap, unique)
    assert settings.router_offline_grace is None
    await start_at_topic_ends(settings)
    app = create_app(settings)
    admin = bearer(identity.token(ADMIN, ["admin"]))
    amal = bearer(identity.token("amal", ["agent"]))
    async with serving(app) as url, staged(url, kafka_bootstrap, unique) as stage:
        api = stage.api
        await stage.agent(admin, "amal", online=True)
        await stage.agent(admin, "sara", online=True, capacity=0)
        await stage.send("a", "a1", f"where is my parcel{unique}?")
        case_a = await stage.assigned("a", "amal")
        await ok(await api.patch("/v1/agents/sara", json={"capacity": 5}, headers=admin))
        await ok(await api.patch("/v1/agents/amal", json={"online": False}, headers=amal))
        await asyncio.sleep(2.0)  # ten desk checks long: no duty returns cases without a grace
        view = await ok(await api.get(f"/v1/cases/{case_a}", headers=admin))
        assert (view["case"]["status"], view["case"]["assignee"]) == ("assigned", "amal")
        mine = await ok(await api.get("/v1/me/cases", headers=amal))
        assert [case["id"] for case in mine] == [case_a]
