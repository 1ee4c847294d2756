"""Two router replicas on one database never double-assign a case nor over-fill an agent.

Once through Kafka (two apps in one consumer group, 3 partitions), once with the two replicas'
routing services applying batches at the same moment, so that their transactions race for
the same agents.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer, ConsumerRecord
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.kafka import DeadLetters, KafkaRecord, build_broker
from casewire_common.messages import message_id
from casewire_common.metrics import new_registry
from casewire_common.outbox import OutboxMetrics, OutboxRelay
from casewire_common.pg import Connection, Database, migrate
from casewire_router.adapters import repository
from casewire_router.adapters.message_store import PostgresMessageStore
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.domain.agents_file import parse_agents
from casewire_router.domain.routing import CaseRouter
from casewire_router.domain.rules import load_rules
from casewire_router.domain.urgency import default_model
from casewire_router.main import create_app
from casewire_router.message_service import TRANSIENT_ERRORS, MessageService, RouterMetrics
from casewire_router.settings import RouterSettings

from tests.integration.helpers import (
    EventReader,
    eventually,
    metric_value,
    producer,
    running,
    topic_reader,
)
from tests.integration.router.test_threading_incidents import start_at_topic_ends

# Only this test's messages carry its keyword: the others on the shared topic go to `care`,
# where no agent works, and cannot touch the agents under test.
RULES = """
version: 1
default_team: care
teams: [care, burst]
rules:
  - id: burst
    when: {{any: ["burst{unique}"]}}
    then: {{team: burst, priority: P3, tags: [burst]}}
"""
AGENTS = """
agents:
  - {id: ana, teams: [burst], languages: [en], capacity: 3, online: true}
  - {id: ben, teams: [burst], languages: [en], capacity: 5, online: true}
  - {id: chloe, teams: [burst], languages: [el], capacity: 4, online: true}
  - {id: dev, teams: [burst], languages: [en], capacity: 9, online: false}
"""
ONLINE_CAPACITY = 3 + 5 + 4
CONVERSATIONS = 40


def canonical(
    conversation: str, pid: str, text: str, *, direction: str = "inbound", seconds: int = 0
) -> bytes:
    """A canonical message on X, as ingest publishes it."""
    sent = datetime.now(UTC) + timedelta(seconds=seconds)
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
            "author": {"id": "brand" if direction == "outbound" else conversation},
            "text": text,
            "language": "en",
            "attachments": [],
            "sent_at": sent.isoformat(),
            "received_at": sent.isoformat(),
        }
    ).encode()


def burst(unique: str) -> list[tuple[str, bytes]]:
    """Every conversation's first message, then a follow-up each: (conversation, message)."""
    conversations = [f"x:brand:{unique}-{n}:cust{n}" for n in range(CONVERSATIONS)]
    firsts = [(c, canonical(c, f"{c}-1", f"burst{unique} where is it?")) for c in conversations]
    follow_ups = [
        (c, canonical(c, f"{c}-2", f"burst{unique} any news?", seconds=1)) for c in conversations
    ]
    return firsts + follow_ups


def write_config(tmp_path: Path, unique: str) -> tuple[Path, Path]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(unique=unique), encoding="utf-8")
    agents = tmp_path / "agents.yaml"
    agents.write_text(AGENTS, encoding="utf-8")
    return rules, agents


async def assert_assignments_consistent(
    connection: Connection, conversations: set[str], messages: int
) -> dict[str, str | None]:
    """The invariants of assignment, checked in PostgreSQL; returns case id -> assignee."""
    agents = await connection.fetch(
        f"SELECT a.id, a.capacity, a.online, a.load, count(c.id) AS open_cases"
        f" FROM {SCHEMA}.agents a LEFT JOIN {SCHEMA}.cases c ON c.assignee = a.id"
        "  AND c.status NOT IN ('resolved', 'no_action')"
        " GROUP BY a.id ORDER BY a.id"
    )
    for agent in agents:
        assert agent["load"] <= agent["capacity"], dict(agent)
        assert agent["load"] == agent["open_cases"], dict(agent)
    assert {a["id"]: a["load"] for a in agents if not a["online"]} == {"dev": 0}
    # More cases than room: the room is filled exactly, the rest wait in the queue.
    assert sum(agent["load"] for agent in agents) == ONLINE_CAPACITY
    cases = await connection.fetch(
        f"SELECT id::text, conversation_id, status, assignee FROM {SCHEMA}.cases"
        " WHERE conversation_id = ANY($1::text[])",
        sorted(conversations),
    )
    per_conversation = Counter(case["conversation_id"] for case in cases)
    assert set(per_conversation) == conversations  # no case lost
    assert set(per_conversation.values()) == {1}  # and none opened twice
    assigned = [case for case in cases if case["assignee"] is not None]
    assert len(assigned) == ONLINE_CAPACITY
    assert {case["status"] for case in assigned} == {"assigned"}
    assert {case["status"] for case in cases if case["assignee"] is None} == {"queued"}
    stored = await connection.fetchval(
        f"SELECT count(*) FROM {SCHEMA}.messages WHERE conversation_id = ANY($1::text[])",
        sorted(conversations),
    )
    assert stored == messages
    return {case["id"]: case["assignee"] for case in cases}


async def messages_applied(client: httpx.AsyncClient) -> float:
    """How many messages a router replica has applied, from its metrics."""
    response = await client.get("/metrics")
    return metric_value(response.text, "casewire_router_messages_total")


async def warm_up_replicas(
    kafka: AIOKafkaProducer,
    replicas: Sequence[httpx.AsyncClient],
    unique: str,
    body: Callable[[str], bytes],
) -> None:
    """A warm-up message (`body` of its conversation id) on every messages partition until
    each replica has applied one: all of them own partitions before the test's messages."""

    async def warmed_up() -> list[float]:
        for partition in range(3):
            warm = f"x:brand:{unique}-warm{partition}:w"
            await kafka.send_and_wait(
                topics.MESSAGES, body(warm), key=warm.encode(), partition=partition
            )
        return [await messages_applied(replica) for replica in replicas]

    counts = await eventually(warmed_up, lambda got: min(got) > 0, timeout=40)
    assert min(counts) > 0, f"a replica got no partition: {counts}"


def assert_assigned_events_match(
    events: Sequence[tuple[str, str, str, str | None]], assignees: dict[str, str | None]
) -> None:
    """(ce_id, type, case id, assignee) of the events read: after dropping redeliveries (same
    ce_id), each assigned case has exactly one assigned event, naming its owner."""
    unique_events = {ce_id: rest for ce_id, *rest in events}
    assigned = Counter(case for kind, case, _ in unique_events.values() if kind == ev.CASE_ASSIGNED)
    assert set(assigned.values()) == {1}
    assert {
        case: owner for kind, case, owner in unique_events.values() if kind == ev.CASE_ASSIGNED
    } == {case: owner for case, owner in assignees.items() if owner is not None}
    created = Counter(case for kind, case, _ in unique_events.values() if kind == ev.CASE_CREATED)
    assert created == Counter(assignees.keys())  # every case created, once


async def test_two_replicas_in_one_consumer_group_never_over_fill_an_agent(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    rules, agents = write_config(tmp_path, unique)
    settings = RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        router_rules=rules,
        router_agents=agents,
        router_consumer_group=f"replicas-{unique}",
        consumer_session_timeout_ms=3000,  # rebalances settle sooner
        consumer_max_records=8,  # small batches: many transactions, interleaved
    )
    await start_at_topic_ends(settings)
    messages = burst(unique)
    conversations = {conversation for conversation, _ in messages}
    async with (
        running(create_app(settings)) as first,
        running(create_app(settings)) as second,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        # Warm-up messages have no keyword: to `care`, where nobody works.
        await warm_up_replicas(
            kafka,
            (first, second),
            unique,
            lambda warm: canonical(warm, f"{warm}-{uuid.uuid4().hex}", "hello"),
        )
        before = (await messages_applied(first), await messages_applied(second))

        sends = [
            await kafka.send(topics.MESSAGES, body, key=conversation.encode())
            for conversation, body in messages
        ]
        await asyncio.gather(*sends)

        reader = EventReader(events_in)
        await reader.read_until(
            lambda got: (
                sum(e.type == ev.CASE_CREATED for e in {x.id: x for x in got}.values())
                >= CONVERSATIONS
            ),
            keep=lambda event: event.data["case"]["conversation_id"] in conversations,
            timeout=40,
        )
        after = (await messages_applied(first), await messages_applied(second))
        # Both replicas did part of the work.
        assert min(a - b for a, b in zip(after, before, strict=True)) > 0, (before, after)
        # Whatever else is still on its way (nothing more is expected).
        await reader.read_until(
            lambda got: False,
            keep=lambda event: event.data["case"]["conversation_id"] in conversations,
            timeout=1,
        )

    connection = await asyncpg.connect(database_url)
    try:
        assignees = await assert_assignments_consistent(connection, conversations, len(messages))
    finally:
        await connection.close()
    assert_assigned_events_match(
        [(e.id, e.type, e.data["case"]["id"], e.data["case"]["assignee"]) for e in reader.events],
        assignees,
    )


def as_record(conversation: str, body: bytes, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topics.MESSAGES,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=conversation.encode(),
        value=body,
        checksum=None,
        serialized_key_size=len(conversation),
        serialized_value_size=len(body),
        headers=(),
    )


async def _never_relayed(records: Sequence[KafkaRecord]) -> None:
    raise AssertionError("the relay is not started in this test: events stay in the outbox")


def routing_service(database: Database, settings: RouterSettings) -> MessageService:
    """A replica's routing service as `create_app` wires it, without Kafka: its events stay
    in the outbox, where the test reads them."""
    registry = new_registry()
    dsn = settings.database_url.get_secret_value()
    relay = OutboxRelay(dsn, SCHEMA, _never_relayed, OutboxMetrics(registry, "router"))
    return MessageService(
        PostgresMessageStore(database, relay),
        CaseRouter(rules=load_rules(str(settings.router_rules)), urgency=default_model()),
        DeadLetters(
            build_broker(settings.kafka_bootstrap_servers, registry, "router"), registry, "router"
        ),
        RouterMetrics(registry),
    )


async def test_concurrent_transactions_of_two_replicas_never_over_fill_an_agent(
    tmp_path: Path, database_url: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    rules, agents_file = write_config(tmp_path, unique)
    settings = RouterSettings(database_url=database_url, router_rules=rules)
    databases = [Database(database_url, min_size=4, max_size=4) for _ in range(2)]
    for database in databases:
        await database.open()
    try:
        async with databases[0].pool.acquire() as connection:
            agents = parse_agents(agents_file.read_text("utf-8")).agents
            await repository.sync_agents(connection, [agent.model_dump() for agent in agents])
        replicas = [routing_service(database, settings) for database in databases]
        messages = burst(unique)
        conversations = sorted({conversation for conversation, _ in messages})

        async def apply(replica: MessageService, batch: list[tuple[str, bytes]]) -> None:
            records = [as_record(c, body, offset) for offset, (c, body) in enumerate(batch)]
            for _ in range(10):  # a transient error (a deadlock) redelivers, as Kafka would
                try:
                    await replica.handle_records(records)
                    return
                except TRANSIENT_ERRORS:
                    await asyncio.sleep(0.05)
            raise AssertionError(f"a batch kept failing: {[c for c, _ in batch]}")

        # Each replica owns half of the conversations (as partitions would split them). All
        # batches of a round start at once; each replica runs four at a time (its pool).
        for round_messages in (messages[:CONVERSATIONS], messages[CONVERSATIONS:]):
            batches: list[tuple[MessageService, list[tuple[str, bytes]]]] = []
            for index, replica in enumerate(replicas):
                owned = [m for m in round_messages if conversations.index(m[0]) % 2 == index]
                batches += [
                    (replica, owned[start : start + 2]) for start in range(0, len(owned), 2)
                ]
            await asyncio.gather(*(apply(replica, batch) for replica, batch in batches))

        async with databases[0].pool.acquire() as connection:
            assignees = await assert_assignments_consistent(
                connection, set(conversations), len(messages)
            )
            outbox = await connection.fetch(f"SELECT headers, value FROM {SCHEMA}.outbox")
    finally:
        for database in databases:
            await database.close()
    events = []
    for row in outbox:
        headers = json.loads(row["headers"])
        if headers["ce_type"] == ev.ROUTER_WATERMARK:
            continue
        data = json.loads(row["value"])
        if data["case"]["conversation_id"] in conversations:
            case = data["case"]
            events.append((headers["ce_id"], headers["ce_type"], case["id"], case["assignee"]))
    assert_assigned_events_match(events, assignees)
