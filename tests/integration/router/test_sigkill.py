"""A router process killed with SIGKILL while it works loses nothing and duplicates nothing.

The router runs as `casewire-router serve`, is fed several hundred messages while it is
killed three times at random moments and restarted, then left to finish. Every message is
stored once, every conversation has one case, every change has one event id (the relay may
publish an event again after a kill, with the same id), and the outbox drains.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import defaultdict
from pathlib import Path

import asyncpg
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import DecodedEvent
from casewire_common.messages import message_id
from casewire_dev import services
from casewire_dev import stack as local_stack
from casewire_router.adapters.repository import SCHEMA

from tests.integration.helpers import EventReader, eventually, producer, topic_reader
from tests.integration.router.test_two_replicas import canonical

CONVERSATIONS = 150  # each: a question, a follow-up, the brand's reply
KILLS = 3
RULES = """
version: 1
default_team: care
teams: [care, shipping]
rules:
  - id: shipping
    when: {{any: ["parcel{unique}"]}}
    then: {{team: shipping, priority: P3, tags: [shipping]}}
"""
AGENTS = """
agents:
  - {id: amal, teams: [shipping], languages: [en], capacity: 1000, online: true}
"""


async def test_router_killed_mid_work_and_restarted_stores_and_publishes_everything_once(
    tmp_path: Path, stack: local_stack.Stack, database_url: str, unique: str
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES.format(unique=unique), encoding="utf-8")
    (tmp_path / "agents.yaml").write_text(AGENTS, encoding="utf-8")
    env = {
        **os.environ,
        "CASEWIRE_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
        "CASEWIRE_DATABASE_URL": database_url,
        "CASEWIRE_CONSUMER_SESSION_TIMEOUT_MS": "3000",
        "CASEWIRE_CONSUMER_MAX_RECORDS": "10",  # many small transactions: kills land mid-stream
        "CASEWIRE_ROUTER_RULES": str(tmp_path / "rules.yaml"),
        "CASEWIRE_ROUTER_AGENTS": str(tmp_path / "agents.yaml"),
        "CASEWIRE_ROUTER_CONSUMER_GROUP": f"sigkill-{unique}",
    }
    await services.migrate("router", env, tmp_path)
    # The router reads this test's messages only, not every message earlier tests left.
    for group, topic in (
        (f"sigkill-{unique}", topics.MESSAGES),
        (f"sigkill-{unique}-escalation", topics.SLA_ALERTS),
    ):
        await local_stack.start_group_at_topic_end(stack.kafka_bootstrap_servers, group, topic)
    conversations = [f"x:brand:{unique}-{n}:cust{n}" for n in range(CONVERSATIONS)]
    rounds = [
        [(c, f"{c}-q", f"parcel{unique} where is my parcel?", "inbound") for c in conversations],
        [(c, f"{c}-f", f"parcel{unique} any news?", "inbound") for c in conversations],
        [(c, f"{c}-r", "It ships today.", "outbound") for c in conversations],
    ]
    sent_ids = {message_id("x", pid) for messages in rounds for _, pid, _, _ in messages}
    seed = random.randrange(2**32)
    chance = random.Random(seed)

    def start(run: int) -> services.RunningService:
        log_dir = tmp_path / f"run{run}"
        log_dir.mkdir()
        spec = services.ServiceSpec("router", local_stack.free_port())
        return services.start(spec, env, log_dir)

    async def feed() -> None:
        """All messages, a conversation's in order (same key, same partition)."""
        async with producer(stack.kafka_bootstrap_servers) as kafka:
            for index, (conversation, pid, text, direction) in enumerate(
                message for messages in rounds for message in messages
            ):
                body = canonical(conversation, pid, text, direction=direction, seconds=index)
                await kafka.send(topics.MESSAGES, body, key=conversation.encode())
            await kafka.flush()

    async def stored(connection: asyncpg.Connection) -> int:
        return int(
            await connection.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.messages WHERE id = ANY($1::uuid[])",
                sorted(sent_ids),
            )
        )

    # Each kill comes as soon as the router has stored a random number of further messages:
    # while it works, whatever it was doing (a batch's transaction, the relay publishing).
    steps = [chance.randint(len(sent_ids) // 10, len(sent_ids) // 4) for _ in range(KILLS)]
    stored_at_kill: list[int] = []
    killed: list[int | None] = []
    router = start(0)
    feeding = asyncio.create_task(feed())
    connection = await asyncpg.connect(database_url)
    try:
        for run, step in enumerate(steps, start=1):
            target = (stored_at_kill[-1] if stored_at_kill else 0) + step
            while await stored(connection) < target:
                assert router.process.poll() is None, router.describe_exit()
                await asyncio.sleep(0.01)
            os.killpg(router.process.pid, signal.SIGKILL)
            killed.append(await asyncio.to_thread(router.process.wait))
            stored_at_kill.append(await stored(connection))
            router = start(run)
        await feeding
        await services.wait_ready(router, asyncio.Event())

        async def progress() -> tuple[int, int]:
            outbox = await connection.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox")
            return await stored(connection), int(outbox)

        finished = await eventually(progress, lambda got: got == (len(sent_ids), 0), timeout=40)
        assert finished == (len(sent_ids), 0), f"seed {seed}"  # all stored, outbox drained
        stored_ids = await connection.fetch(
            f"SELECT id::text FROM {SCHEMA}.messages WHERE conversation_id = ANY($1::text[])",
            conversations,
        )
        cases = await connection.fetch(
            f"SELECT id::text, conversation_id FROM {SCHEMA}.cases"
            " WHERE conversation_id = ANY($1::text[])",
            conversations,
        )
    finally:
        feeding.cancel()
        await connection.close()
        await services.stop_all([router])
    assert killed == [-signal.SIGKILL] * KILLS
    assert stored_at_kill[-1] < len(sent_ids), (seed, stored_at_kill)  # every kill left work
    assert sorted(row["id"] for row in stored_ids) == sorted(sent_ids)  # each exactly once
    assert sorted(case["conversation_id"] for case in cases) == sorted(conversations)
    case_ids = {case["id"] for case in cases}

    mine = set(conversations)
    async with topic_reader(stack.kafka_bootstrap_servers, topics.CASE_EVENTS) as events_in:
        reader = EventReader(events_in)

        def every_case_created(got: list[DecodedEvent]) -> bool:
            created = {e.data["case"]["id"] for e in got if e.type == ev.CASE_CREATED}
            messages = {e.data.get("message_id") for e in got}
            return created >= case_ids and messages >= sent_ids

        await reader.read_until(
            every_case_created,
            keep=lambda event: event.data["case"]["conversation_id"] in mine,
            timeout=30,
        )
    by_id: dict[str, DecodedEvent] = {}
    for event in reader.events:
        # A republished event is the same event: same id, same content.
        assert by_id.setdefault(event.id, event) == event
    ids_per_change: dict[tuple[str, str, str | None], set[str]] = defaultdict(set)
    for event in by_id.values():
        change = (event.type, event.data["case"]["id"], event.data.get("message_id"))
        ids_per_change[change].add(event.id)
    assert {change: ids for change, ids in ids_per_change.items() if len(ids) > 1} == {}
    created = {case for kind, case, _ in ids_per_change if kind == ev.CASE_CREATED}
    assert created == case_ids, f"seed {seed}"
    assert {message for _, _, message in ids_per_change} >= sent_ids  # every message has its event
