"""Incidents end when their quiet window does, on a timer, on the real broker and PostgreSQL;
two closers (replicas) never close one incident twice, nor one the message path is reading."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.pg import migrate
from casewire_router.adapters.repository import (
    MIGRATIONS_PACKAGE,
    SCHEMA,
    close_quiet_incidents,
)
from casewire_router.main import create_app

from tests.integration.helpers import EventReader, producer, running, topic_reader
from tests.integration.router.test_threading_incidents import (
    about,
    canonical,
    settings_for,
    start_at_topic_ends,
)


async def test_an_incident_quiet_for_its_window_is_closed_without_waiting_for_a_message(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique).model_copy(
        update={
            "router_incident_window": timedelta(seconds=2),
            "router_incident_check_seconds": 0.2,
        }
    )
    await start_at_topic_ends(settings)
    async with (
        running(create_app(settings)),
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        reader = EventReader(events_in)
        for n in range(3):
            conversation = f"x:brand:t{n}{unique}:c{n}{unique}"
            await kafka.send(
                topics.MESSAGES,
                canonical(conversation, f"{unique}-q{n}", f"meltdown{unique}", customer=f"c{n}"),
                key=conversation.encode(),
            )
        events = await reader.read_until(
            lambda got: any(e.type == ev.INCIDENT_CLOSED for e in got),
            keep=about(unique),
            types=("casewire.incident.",),
        )
        closed_seen = datetime.now(UTC)

    incident_types = [e.type for e in events]
    assert incident_types[0] == ev.INCIDENT_OPENED
    assert incident_types[-1] == ev.INCIDENT_CLOSED
    assert incident_types.count(ev.INCIDENT_CLOSED) == 1
    closed = events[-1]
    assert closed.subject == closed.data["incident_id"] == events[0].data["incident_id"]
    assert (closed.data["status"], closed.data["case_count"], closed.data["added_case_ids"]) == (
        "closed",
        3,
        [],
    )
    last_seen = datetime.fromisoformat(closed.data["last_seen_at"])
    # Closed by the timer once the window passed (well before any next message).
    assert timedelta(seconds=2) <= closed_seen - last_seen < timedelta(seconds=10)
    status = await pg.fetchval(
        f"SELECT status FROM {SCHEMA}.incidents WHERE id = $1",
        uuid.UUID(closed.data["incident_id"]),
    )
    assert status == "closed"


async def test_two_closers_and_the_message_path_close_a_quiet_incident_once(
    database_url: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    now = datetime.now(UTC)
    first, second, reader = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        incidents = {}
        for topic in (f"outage{unique}", f"security{unique}"):
            incidents[topic] = uuid.uuid4()
            await first.execute(
                f"INSERT INTO {SCHEMA}.incidents (id, topic, opened_at, last_seen_at)"
                " VALUES ($1, $2, $3, $3)",
                incidents[topic],
                topic,
                now - timedelta(hours=1),
            )
        since = now - timedelta(minutes=15)
        # The message path is reading the security topic: it holds the topic's lock.
        busy = reader.transaction()
        await busy.start()
        await reader.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('topic:' || $1::text, 1))",
            f"security{unique}",
        )
        one = first.transaction()
        await one.start()
        closed_by_first = await close_quiet_incidents(first, since)
        # Another replica, while the first has not committed: the rows are taken.
        async with second.transaction():
            closed_by_second = await close_quiet_incidents(second, since)
        await one.commit()
        await busy.rollback()
        async with second.transaction():  # the message path let go
            closed_after = await close_quiet_incidents(second, since)
    finally:
        for connection in (first, second, reader):
            await connection.close()

    assert [q.topic for q in closed_by_first] == [f"outage{unique}"]
    assert closed_by_second == []
    assert [q.topic for q in closed_after] == [f"security{unique}"]
