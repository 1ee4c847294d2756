"""Edits and deletes of a case's messages, on the real broker and PostgreSQL: stored,
published as casewire.case.message_updated, and an edit re-scores the case's urgency."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.messages import message_id
from casewire_common.pg import migrate
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.main import create_app

from tests.integration.helpers import EventReader, producer, running, topic_reader
from tests.integration.router.test_threading_incidents import (
    about,
    canonical,
    settings_for,
    start_at_topic_ends,
)


def update(original: bytes, event: str, text: str, at: datetime) -> bytes:
    """An edit or delete of `original`: the same platform message id, its own sending time."""
    body = json.loads(original)
    body.update(event=event, text=text, sent_at=at.isoformat(), received_at=at.isoformat())
    return json.dumps(body).encode()


async def test_an_edit_raises_the_priority_and_edits_and_deletes_are_stored_and_published(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    conversation = f"x:brand:t{unique}:c{unique}"
    pid = f"{unique}-m"
    opened_at = datetime.now(UTC) - timedelta(minutes=5)
    original = canonical(
        conversation, pid, "a question about opening hours", customer=unique, at=opened_at
    )
    edited_at, deleted_at = opened_at + timedelta(minutes=1), opened_at + timedelta(minutes=2)
    urgent = f"meltdown{unique}: EVERYTHING IS DOWN, I am furious!!"
    async with (
        running(app),
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        reader = EventReader(events_in)
        for body in (
            original,
            update(original, "edit", urgent, edited_at),
            update(original, "edit", urgent, edited_at),  # redelivered: applied once
            update(original, "delete", "", deleted_at),
        ):
            await kafka.send_and_wait(topics.MESSAGES, body, key=conversation.encode())
        events = await reader.read_until(
            lambda got: any(e.data.get("deleted") for e in got), keep=about(unique)
        )
        stored = await pg.fetchrow(
            f"SELECT text, edited_at, deleted_at FROM {SCHEMA}.messages WHERE id = $1",
            uuid.UUID(message_id("x", pid)),
        )

    summary = [(e.type, e.data["text"], e.data["deleted"]) for e in events]
    assert summary == [
        (ev.CASE_CREATED, None, None),
        (ev.CASE_ASSIGNED, None, None),
        (ev.CASE_MESSAGE_UPDATED, urgent, None),
        (ev.CASE_PRIORITY_CHANGED, None, None),
        (ev.CASE_MESSAGE_UPDATED, None, True),
    ]
    created, _, edited, raised, deleted = events
    assert edited.data["message_id"] == deleted.data["message_id"] == message_id("x", pid)
    assert (edited.time, deleted.time) == (edited_at, deleted_at)
    assert raised.data["previous_priority"] == created.data["case"]["priority"]
    assert raised.data["case"]["priority"] < created.data["case"]["priority"]  # "P1" < "P4"
    assert deleted.data["case"]["priority"] == raised.data["case"]["priority"]
    assert [e.data["case"]["version"] for e in events] == [1, 2, 3, 4, 5]
    assert stored is not None
    assert (stored["text"], stored["edited_at"], stored["deleted_at"]) == (
        urgent,
        edited_at,
        deleted_at,
    )
