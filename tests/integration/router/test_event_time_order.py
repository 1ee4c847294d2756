"""Brand replies processed before the customer messages they answer, on the real broker and
PostgreSQL: through Kafka with the router app, and in two replicas' concurrent transactions."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import asyncpg
import pytest
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.messages import message_id
from casewire_common.pg import Database, migrate
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.main import create_app
from casewire_router.settings import RouterSettings

from tests.integration.helpers import (
    EventReader,
    eventually,
    producer,
    running,
    topic_reader,
)
from tests.integration.router.test_threading_incidents import (
    about,
    canonical,
    settings_for,
    start_at_topic_ends,
)
from tests.integration.router.test_two_replicas import (
    as_record,
    routing_service,
    warm_up_replicas,
)

REPLIES = 20


def tweet(unique: str, n: int, at: datetime) -> tuple[str, bytes]:
    """Customer n's complaint, a reply to the brand's tweet b0 (so keyed by b0)."""
    conversation = f"x:brand:b0{unique}:c{n}{unique}"
    body = canonical(
        conversation,
        f"{unique}-t{n}",
        "my order never came",
        customer=f"c{n}{unique}",
        at=at,
        in_reply_to=f"b0{unique}",
    )
    return conversation, body


def reply(unique: str, n: int, at: datetime) -> tuple[str, bytes]:
    """The brand's answer to customer n's tweet: keyed by that tweet, another conversation."""
    conversation = f"x:brand:{unique}-t{n}:c{n}{unique}"
    body = canonical(
        conversation,
        f"{unique}-r{n}",
        "sorry! sending a DM",
        customer="brand",
        at=at,
        direction="outbound",
        in_reply_to=f"{unique}-t{n}",
    )
    return conversation, body


async def test_replies_processed_before_the_tweets_they_answer_are_their_first_responses(
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
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    answered_at = {n: sent + timedelta(seconds=40 + n) for n in range(REPLIES)}
    too_early = REPLIES  # this customer's "reply" was sent before the tweet it names
    replies = [reply(unique, n, answered_at[n]) for n in range(REPLIES)]
    replies.append(reply(unique, too_early, sent - timedelta(seconds=10)))
    tweets = [tweet(unique, n, sent) for n in range(REPLIES + 1)]
    reply_ids = [message_id("x", f"{unique}-r{n}") for n in range(REPLIES + 1)]
    async with (
        running(app),
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        for conversation, body in replies:
            await kafka.send(topics.MESSAGES, body, key=conversation.encode())
        stored = await eventually(
            lambda: pg.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.messages WHERE id = ANY($1::uuid[])"
                " AND case_id IS NULL",
                reply_ids,
            ),
            lambda count: count == REPLIES + 1,
        )
        assert stored == REPLIES + 1  # every reply processed, none with a case yet
        await asyncio.sleep(2)
        for conversation, body in tweets:
            await kafka.send(topics.MESSAGES, body, key=conversation.encode())
        reader = EventReader(events_in)
        events = await reader.read_until(
            lambda got: (
                sum(e.type == ev.CASE_RESPONDED for e in got) >= REPLIES
                and sum(e.type == ev.CASE_CREATED for e in got) >= REPLIES + 1
            ),
            keep=about(unique),
        )
        await asyncio.sleep(1)  # anything more (a wrong response) would come now
        events = await reader.read_until(lambda got: False, keep=about(unique), timeout=1)
        attached = {
            str(row["id"]): row["case_id"]
            for row in await pg.fetch(
                f"SELECT id, case_id FROM {SCHEMA}.messages WHERE id = ANY($1::uuid[])",
                reply_ids,
            )
        }

    # By customer: the case opened by each tweet, in the tweet's conversation.
    case_of = {
        e.data["case"]["conversation_id"].rsplit(":", 1)[-1]: e.data["case"]["id"]
        for e in events
        if e.type == ev.CASE_CREATED
    }
    assert len(case_of) == REPLIES + 1
    responded = [e for e in events if e.type == ev.CASE_RESPONDED]
    assert len(responded) == REPLIES
    by_case = {e.data["case"]["id"]: e for e in responded}
    for n in range(REPLIES):
        event = by_case[case_of[f"c{n}{unique}"]]
        assert event.data["first_response"] is True
        assert event.data["message_id"] == reply_ids[n]
        first_response_at = datetime.fromisoformat(event.data["case"]["first_response_at"])
        assert first_response_at == answered_at[n]
        assert event.time == answered_at[n]  # the response happened when the reply was sent
        assert str(attached[reply_ids[n]]) == case_of[f"c{n}{unique}"]
    assert case_of[f"c{too_early}{unique}"] not in by_case
    assert attached[reply_ids[too_early]] is None


WaitPoint = Literal["customer message first", "reply first"]


@pytest.mark.parametrize("first", ["customer message first", "reply first"])
async def test_a_reply_and_the_tweet_it_answers_in_two_replicas_at_once_always_meet(
    tmp_path: Path, database_url: str, unique: str, first: WaitPoint
) -> None:
    """Each replica's transaction is held at a point where, without the answered message's
    lock, it would already have missed the other: the first one waits on a table lock the
    test holds, the second one starts meanwhile."""
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\ndefault_team: care\nteams: [care]\nrules: []\n", "utf-8")
    settings = RouterSettings(database_url=database_url, router_rules=rules)
    databases = [Database(database_url, min_size=1, max_size=2) for _ in range(2)]
    for database in databases:
        await database.open()
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    customer_message = as_record(*tweet(unique, 0, sent), offset=0)
    brand_reply = as_record(*reply(unique, 0, sent + timedelta(seconds=30)), offset=0)
    # Held: the customer message's transaction once it has looked for orphan replies (when
    # it locks the agents), or the reply's once it has looked for the case (when it stores).
    # (EXCLUSIVE stops the agents' FOR UPDATE; SHARE stops the messages' COPY, not reads.)
    held_lock, held_record, other_record = (
        ("agents IN EXCLUSIVE MODE", customer_message, brand_reply)
        if first == "customer message first"
        else ("messages IN SHARE MODE", brand_reply, customer_message)
    )
    holder = await asyncpg.connect(database_url)
    try:
        replicas = [routing_service(database, settings) for database in databases]
        holding = holder.transaction()
        await holding.start()
        await holder.execute(f"LOCK TABLE {SCHEMA}.{held_lock}")
        held = asyncio.create_task(replicas[0].handle_records([held_record]))
        assert await waiting_on_locks(holder, 1)
        other = asyncio.create_task(replicas[1].handle_records([other_record]))
        await asyncio.wait([other], timeout=1)  # done at once, or waiting for the held one
        await holding.rollback()
        await asyncio.wait_for(asyncio.gather(held, other), timeout=10)

        reply_id = message_id("x", f"{unique}-r0")
        row = await holder.fetchrow(
            f"SELECT m.case_id, c.first_response_at FROM {SCHEMA}.messages m"
            f" LEFT JOIN {SCHEMA}.cases c ON c.id = m.case_id WHERE m.id = $1",
            uuid.UUID(reply_id),
        )
        assert row is not None
        assert row["case_id"] is not None, "the reply missed the tweet it answers"
        assert row["first_response_at"] == sent + timedelta(seconds=30)
        outbox = await holder.fetch(f"SELECT headers, value FROM {SCHEMA}.outbox ORDER BY id")
        types = [json.loads(r["headers"])["ce_type"] for r in outbox]
        assert types == [ev.CASE_CREATED, ev.CASE_RESPONDED]
        assert json.loads(outbox[-1]["value"])["first_response"] is True
    finally:
        await holder.close()
        for database in databases:
            await database.close()


async def waiting_on_locks(connection: asyncpg.Connection, count: int) -> bool:
    """Whether `count` lock requests in this database wait (within a few seconds)."""
    waiting = await eventually(
        lambda: connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        lambda waiting: waiting >= count,
        timeout=5,
    )
    return bool(waiting >= count)


async def test_messages_sent_before_a_resolution_but_processed_after_it_join_the_resolved_case(
    tmp_path: Path, database_url: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\ndefault_team: care\nteams: [care]\nrules: []\n", "utf-8")
    database = Database(database_url, min_size=1, max_size=2)
    service = routing_service(
        database, RouterSettings(database_url=database_url, router_rules=rules)
    )
    await database.open()
    customer = f"c{unique}"
    dm, public = f"x:brand:{customer}", f"x:brand:post{unique}:{customer}"
    opened = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    offsets = iter(range(100))

    async def process(conversation: str, pid: str, minutes: int, **fields: str) -> list[str]:
        """Route one message; returns the types of the events it queued."""
        body = canonical(
            conversation,
            f"{unique}-{pid}",
            "my order never came",
            customer=customer,
            at=opened + timedelta(minutes=minutes),
            **fields,
        )
        async with database.pool.acquire() as connection:
            before = await connection.fetchval(f"SELECT coalesce(max(id), 0) FROM {SCHEMA}.outbox")
            await service.handle_records([as_record(conversation, body, next(offsets))])
            rows = await connection.fetch(
                f"SELECT headers FROM {SCHEMA}.outbox WHERE id > $1 ORDER BY id", before
            )
        return [json.loads(row["headers"])["ce_type"] for row in rows]

    try:
        assert await process(dm, "d1", 0, channel="dm") == [ev.CASE_CREATED]
        async with database.pool.acquire() as connection:
            case_id = await connection.fetchval(f"SELECT id FROM {SCHEMA}.cases")
            await connection.execute(
                f"UPDATE {SCHEMA}.cases SET status = 'resolved', resolved_at = $1",
                opened + timedelta(minutes=10),
            )

        assert await process(dm, "d2", 5, channel="dm") == [ev.CASE_MESSAGE_ADDED]
        assert await process(dm, "r1", 8, channel="dm", direction="outbound") == [ev.CASE_RESPONDED]
        assert await process(public, "p1", 6) == [ev.CASE_MERGED, ev.CASE_MESSAGE_ADDED]
        async with database.pool.acquire() as connection:
            case = await connection.fetchrow(
                f"SELECT status, first_response_at FROM {SCHEMA}.cases WHERE id = $1", case_id
            )
            held = await connection.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.messages WHERE case_id = $1", case_id
            )
            linked = await connection.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.case_conversations WHERE case_id = $1", case_id
            )
        assert (case["status"], case["first_response_at"]) == (
            "resolved",
            opened + timedelta(minutes=8),
        )
        assert (held, linked) == (4, 2)
        # Sent after the resolution: reopens it, as always.
        assert (await process(dm, "d3", 20, channel="dm"))[0] == ev.CASE_STATUS_CHANGED
    finally:
        await database.close()


PAIRS = 40


async def test_two_replicas_in_one_group_attach_every_reply_sent_with_its_tweet(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str, pg: asyncpg.Connection
) -> None:
    """Tweets and the replies to them produced at once, on three partitions shared by two
    replicas in small batches: whichever side each replica processes first, every reply ends
    up as its tweet's first response, once."""
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique).model_copy(
        update={"consumer_session_timeout_ms": 3000, "consumer_max_records": 4}
    )
    await start_at_topic_ends(settings)
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    pairs = [
        (tweet(unique, n, sent), reply(unique, n, sent + timedelta(seconds=n)))
        for n in range(PAIRS)
    ]
    reply_ids = [message_id("x", f"{unique}-r{n}") for n in range(PAIRS)]
    async with (
        running(create_app(settings)) as first,
        running(create_app(settings)) as second,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        await warm_up_replicas(
            kafka,
            (first, second),
            unique,
            lambda warm: canonical(warm, f"{warm}-{uuid.uuid4().hex}", "hello", customer="w"),
        )
        sends = []
        for n, (customer_tweet, brand_reply) in enumerate(pairs):
            # Half the replies produced before their tweet, half after.
            for conversation, body in (brand_reply, customer_tweet)[:: 1 if n % 2 else -1]:
                sends.append(await kafka.send(topics.MESSAGES, body, key=conversation.encode()))
        await asyncio.gather(*sends)
        reader = EventReader(events_in)
        await reader.read_until(
            lambda got: sum(e.type == ev.CASE_RESPONDED for e in got) >= PAIRS,
            keep=about(unique),
            timeout=60,
        )
        await reader.read_until(lambda got: False, keep=about(unique), timeout=1)
        rows = await pg.fetch(
            f"SELECT m.id, m.case_id, c.first_response_at FROM {SCHEMA}.messages m"
            f" LEFT JOIN {SCHEMA}.cases c ON c.id = m.case_id WHERE m.id = ANY($1::uuid[])",
            reply_ids,
        )

    responded = [e for e in reader.events if e.type == ev.CASE_RESPONDED]
    assert len({e.id for e in responded}) == PAIRS
    assert all(e.data["first_response"] for e in responded)
    assert len({e.data["case"]["id"] for e in responded}) == PAIRS
    assert len(rows) == PAIRS
    assert all(row["case_id"] is not None for row in rows), "a reply missed its tweet"
    expected = {reply_ids[n]: sent + timedelta(seconds=n) for n in range(PAIRS)}
    assert {str(row["id"]): row["first_response_at"] for row in rows} == expected
