"""No global agent lock, on the real PostgreSQL: while a transaction holds one team's agents
(a routing batch of that team, say), an API action of another team goes through, and an
action needing those agents waits for it, then succeeds; the drain of the queues at start
locks only the agents of the teams with cases waiting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from casewire_common import topics
from casewire_common.pg import migrate
from casewire_dev.identity import LocalIdentity, bearer
from casewire_router.adapters import repository
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.domain.assignment import AgentScope
from casewire_router.main import create_app

from tests.integration.helpers import EventReader, producer, running, topic_reader
from tests.integration.router.test_case_api import Cases, customer_message, ok, settings_for
from tests.integration.router.test_threading_incidents import start_at_topic_ends

pytestmark = pytest.mark.integration


async def test_an_action_of_one_team_does_not_wait_for_another_teams_agents(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    admin = bearer(identity.token("root", ["admin"]))
    now = datetime.now(UTC)
    async with (
        running(app) as client,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        for agent_id, team in (("amal", "shipping"), ("bea", "billing")):
            agent = {"teams": [team], "languages": ["en"], "capacity": 3, "online": True}
            await ok(await client.put(f"/v1/agents/{agent_id}", json=agent, headers=admin), 201)
        cases = Cases(EventReader(events_in), unique)
        for name, text in (("s", f"parcel{unique}"), ("b", f"invoice{unique}")):
            conversation = cases.conversation(name)
            body = customer_message(conversation, f"{unique}-{name}", text, now)
            await kafka.send_and_wait(topics.MESSAGES, body, key=conversation.encode())
        shipping, billing = await cases.opened("s", "b")

        batch = await asyncpg.connect(database_url)
        try:
            held = batch.transaction()
            await held.start()
            locked = await repository.lock_agents(batch, AgentScope.of(["shipping"]))
            assert set(locked) == {"amal"}

            # Billing goes through while shipping's agents are held.
            as_bea = bearer(identity.token("bea", ["agent"]))
            resolved = await asyncio.wait_for(
                client.post(f"/v1/cases/{billing}/resolve", headers=as_bea), timeout=5
            )
            assert resolved.status_code == 200, resolved.text

            # Shipping waits for them, then succeeds.
            as_amal = bearer(identity.token("amal", ["agent"]))
            waiting = asyncio.create_task(
                client.post(f"/v1/cases/{shipping}/resolve", headers=as_amal)
            )
            await asyncio.sleep(1.5)
            assert not waiting.done()
            await held.rollback()
            answer = await asyncio.wait_for(waiting, timeout=10)
            assert answer.status_code == 200, answer.text
        finally:
            await batch.close()


async def test_the_drain_at_start_does_not_wait_for_a_team_with_nothing_waiting(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
    pg: asyncpg.Connection,
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    admin = bearer(identity.token("root", ["admin"]))
    async with (
        running(create_app(settings)) as client,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS, from_end=True) as events_in,
    ):
        for agent_id, team, online in (("amal", "shipping", False), ("bea", "billing", True)):
            agent = {"teams": [team], "languages": ["en"], "capacity": 3, "online": online}
            await ok(await client.put(f"/v1/agents/{agent_id}", json=agent, headers=admin), 201)
        cases = Cases(EventReader(events_in), unique)
        conversation = cases.conversation("s")
        body = customer_message(conversation, f"{unique}-s", f"parcel{unique}", datetime.now(UTC))
        await kafka.send_and_wait(topics.MESSAGES, body, key=conversation.encode())
        (waiting,) = await cases.opened("s")  # in shipping's queue: its agent is offline
    # Back while the router was away (as an agents file would say).
    await pg.execute(f"UPDATE {SCHEMA}.agents SET online = true WHERE id = 'amal'")

    holder = await asyncpg.connect(database_url)
    try:
        held = holder.transaction()
        await held.start()
        assert set(await repository.lock_agents(holder, AgentScope.of(["billing"]))) == {"bea"}
        async with asyncio.timeout(30), running(create_app(settings)):
            assignee = await pg.fetchval(
                f"SELECT assignee FROM {SCHEMA}.cases WHERE id = $1", waiting
            )
        await held.rollback()
    finally:
        await holder.close()
    assert assignee == "amal"  # drained at start, billing's agents held all along
