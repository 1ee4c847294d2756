"""A case's sentiment on the real broker and PostgreSQL, across a router restart: every case
event's snapshot carries the latest customer message's sentiment and the most negative one,
and the case row holds the same."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import DecodedEvent
from casewire_common.messages import message_id
from casewire_common.pg import migrate
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.domain.keywords import fold
from casewire_router.domain.sentiment import Sentiment
from casewire_router.domain.urgency import default_model, read_text
from casewire_router.main import create_app

from tests.integration.helpers import EventReader, producer, running, topic_reader
from tests.integration.router.test_threading_incidents import (
    about,
    canonical,
    settings_for,
    start_at_topic_ends,
)

# (language, text): a complaint, thanks, then a question, each in its own language.
NEGATIVE = ("es", "Llevo una semana esperando mi pedido, es una vergüenza")
POSITIVE = ("th", "ขอบคุณมากค่ะ ประทับใจมาก")
NEUTRAL = ("el", "Καλημέρα, πότε ανοίγει το κατάστημα;")


def in_language(body: bytes, language: str) -> bytes:
    message = json.loads(body)
    message["language"] = language
    return json.dumps(message).encode()


def sentiment_of(language: str, text: str) -> Sentiment:
    """What the router reads in the message: the scorer the service itself calls."""
    return read_text(default_model(), fold(text), language).sentiment


def snapshot_sentiments(event: DecodedEvent) -> tuple[object, object]:
    case = event.data["case"]
    return case["sentiment"], case["worst_sentiment"]


def as_data(sentiment: Sentiment) -> dict[str, object]:
    return {"label": sentiment.label, "score": sentiment.score}


async def test_case_keeps_latest_and_worst_sentiment_in_every_event_and_row_across_a_restart(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    conversation = f"x:brand:t{unique}:c{unique}"
    started = datetime.now(UTC) - timedelta(minutes=10)
    texts = (NEGATIVE, POSITIVE, NEUTRAL)
    expected = [sentiment_of(language, text) for language, text in texts]
    assert [s.label for s in expected] == ["negative", "positive", "neutral"]
    worst = expected[0]
    assert all(later.score > worst.score for later in expected[1:])
    pids = [f"{unique}-m{n}" for n in range(len(texts))]
    ids = [message_id("x", pid) for pid in pids]
    bodies = [
        in_language(
            canonical(conversation, pid, text, customer=unique, at=started + timedelta(minutes=n)),
            language,
        )
        for n, (pid, (language, text)) in enumerate(zip(pids, texts, strict=True))
    ]

    def arrived(message: str) -> Callable[[list[DecodedEvent]], bool]:
        return lambda got: any(e.data.get("message_id") == message for e in got)

    async with (
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        reader = EventReader(events_in)
        async with running(create_app(settings)):
            # Each message in a batch of its own: the next is sent once the last is routed.
            for body, message in zip(bodies[:2], ids[:2], strict=True):
                await kafka.send_and_wait(topics.MESSAGES, body, key=conversation.encode())
                await reader.read_until(arrived(message), keep=about(unique))
        # The router restarts: the case comes back from the database alone.
        async with running(create_app(settings)):
            await kafka.send_and_wait(topics.MESSAGES, bodies[2], key=conversation.encode())
            await reader.read_until(arrived(ids[2]), keep=about(unique), timeout=60)
            # Anything else the last batch published.
            events = await reader.read_until(lambda got: False, keep=about(unique), timeout=1)
        row = await pg.fetchrow(
            f"SELECT sentiment_label, sentiment_score, worst_sentiment_label,"
            f" worst_sentiment_score FROM {SCHEMA}.cases WHERE conversation_id = $1",
            conversation,
        )

    case_events = [e for e in events if e.type.startswith("casewire.case.")]
    assert len({e.data["case"]["id"] for e in case_events}) == 1
    # The version at which each message joined the case: from then on it is the latest.
    joined = {
        e.data["message_id"]: e.data["case"]["version"]
        for e in case_events
        if e.type in (ev.CASE_CREATED, ev.CASE_MESSAGE_ADDED)
    }
    assert list(joined) == ids
    for event in case_events:
        version = event.data["case"]["version"]
        latest = max(n for n, message in enumerate(ids) if joined[message] <= version)
        assert snapshot_sentiments(event) == (as_data(expected[latest]), as_data(worst)), (
            event.type,
            version,
        )
    assert joined[ids[2]] == max(e.data["case"]["version"] for e in case_events)
    assert row is not None
    last = expected[2]
    assert (row["sentiment_label"], round(row["sentiment_score"], 3)) == (last.label, last.score)
    assert (row["worst_sentiment_label"], round(row["worst_sentiment_score"], 3)) == (
        worst.label,
        worst.score,
    )
