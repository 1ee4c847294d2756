"""Against the real broker and PostgreSQL, through the `casewire-ingest replay` command as an
operator (or the fault-injection harness) runs it: a dead-lettered body is published after a
replay, bodies already published add nothing, and what cannot be replayed is refused by reason.

Each test replays only what it wrote (`--since` its start): the session's broker also holds
other tests' bodies, and each test has a fresh, empty deduplication memory. The last test
leaves a record without a receipt time on the DLQ, which every later replay of the DLQ in the
session refuses."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from casewire_common import topics
from casewire_common.messages import CanonicalMessage, message_id
from casewire_common.pg import migrate
from casewire_ingest.adapters.dedup import MIGRATIONS_PACKAGE, SCHEMA
from casewire_ingest.main import create_app

from tests.integration.helpers import producer, running, topic_reader
from tests.integration.ingest.test_webhook_dedup import drain, settings, signed_whatsapp

CLI = Path(sys.executable).parent / "casewire-ingest"


def replay(bootstrap: str, database_url: str, *args: str) -> tuple[int, dict[str, Any]]:
    """Run `casewire-ingest replay --json ARGS`; its exit code and summary."""
    environment = os.environ | {
        "CASEWIRE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CASEWIRE_DATABASE_URL": database_url,
    }
    done = subprocess.run(
        [str(CLI), "replay", "--json", "--idle-seconds", "5", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def whatsapp_body(shared_data: Path, wamid: str) -> bytes:
    """The real WhatsApp body of the signature fixture, its message given the id `wamid`."""
    raw, *_ = signed_whatsapp(shared_data)
    body = json.loads(raw)
    body["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = wamid
    return json.dumps(body).encode()


def meta_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def kept_headers(source: str, received_at: datetime, **extra: str) -> list[tuple[str, bytes]]:
    headers = {
        "content-type": "application/json",
        "casewire-source": source,
        "casewire-received-at": received_at.isoformat(),
        **extra,
    }
    return [(name, value.encode()) for name, value in headers.items()]


def published_with(wamid: str, since_ms: int) -> Any:
    return lambda record: (
        record.timestamp >= since_ms
        and CanonicalMessage.model_validate_json(record.value).platform_message_id == wamid
    )


async def test_a_dead_lettered_body_is_published_by_a_replay_and_only_once(
    shared_data: Path, kafka_bootstrap: str, database_url: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    started = datetime.now(UTC)
    started_ms = int(time.time() * 1000)
    wamid = f"wamid.replay-{unique}"
    async with producer(kafka_bootstrap) as kafka:
        # What an older ingest wrote for a body it could not read: the body, as received.
        await kafka.send_and_wait(
            topics.dlq(topics.RAW),
            whatsapp_body(shared_data, wamid),
            key=b"whatsapp",
            headers=kept_headers(
                "whatsapp",
                datetime.now(UTC),
                **{topics.DLQ_REASON_HEADER: "invalid_item", topics.DLQ_ERROR_HEADER: "old bug"},
            ),
        )
    since = started.isoformat()

    first = await asyncio.to_thread(
        replay, kafka_bootstrap, database_url, "--dlq", "--since", since
    )
    again = await asyncio.to_thread(
        replay, kafka_bootstrap, database_url, "--dlq", "--since", since
    )

    async with topic_reader(kafka_bootstrap, topics.MESSAGES) as messages_in:
        published = await drain(messages_in, published_with(wamid, started_ms), expected=1)
    assert first[0] == 0, first
    # Records of earlier tests may be read too (the search by time starts a little early),
    # and are left out as received before --since.
    assert first[1] | {"read": None, "outside_range": None} == {
        "topic": topics.dlq(topics.RAW), "read": None, "outside_range": None,
        "bodies_replayed": 1, "published": 1, "unconfirmed": 0, "duplicates": 0,
        "thread_controls": 0, "ignored": {},
        "refused": {},
        "rejected": {}, "complete": True, "stopped_by": None,
    }  # fmt: skip
    assert again[0] == 0, again
    assert (again[1]["published"], again[1]["duplicates"]) == (0, 1)
    assert len(published) == 1
    message = CanonicalMessage.model_validate_json(published[0].value)
    assert (message.platform, message.account_id) == ("whatsapp", "277321005464405")


async def test_replaying_bodies_already_published_adds_nothing_to_the_messages_topic(
    shared_data: Path, kafka_bootstrap: str, database_url: str, unique: str
) -> None:
    _, secret, _, _ = signed_whatsapp(shared_data)
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    started = datetime.now(UTC)
    started_ms = int(time.time() * 1000)
    wamids = [f"wamid.live-{unique}-{n}" for n in range(3)]
    bodies = [whatsapp_body(shared_data, wamid) for wamid in wamids]
    app = create_app(settings(kafka_bootstrap, database_url, secret))
    async with running(app) as client:
        for body in bodies:
            answer = await client.post(
                "/v1/webhooks/whatsapp",
                content=body,
                headers={"x-hub-signature-256": meta_signature(secret, body)},
            )
            assert answer.json()["accepted"] == 1, answer.text

    code, summary = await asyncio.to_thread(
        replay, kafka_bootstrap, database_url, "--since", started.isoformat()
    )

    async with topic_reader(kafka_bootstrap, topics.MESSAGES) as messages_in:
        published = await drain(
            messages_in,
            lambda r: any(published_with(wamid, started_ms)(r) for wamid in wamids),
            expected=3,
        )
    assert code == 0, summary
    assert (summary["bodies_replayed"], summary["published"], summary["duplicates"]) == (3, 0, 3)
    assert sorted(
        CanonicalMessage.model_validate_json(r.value).platform_message_id for r in published
    ) == sorted(wamids)


async def test_a_replay_reads_every_kept_body_to_the_end_of_each_partition(
    shared_data: Path, kafka_bootstrap: str, database_url: str, unique: str
) -> None:
    # Batched writes: the local broker answers the start of a partition's last record batch as
    # its end, which once left the last batch of each partition unread.
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    started = datetime.now(UTC)
    kept = 600
    async with producer(kafka_bootstrap) as kafka:
        sent = [
            await kafka.send(
                topics.dlq(topics.RAW),
                whatsapp_body(shared_data, f"wamid.batch-{unique}-{n}"),
                key=f"whatsapp:{n}".encode(),
                headers=kept_headers("whatsapp", datetime.now(UTC)),
            )
            for n in range(kept)
        ]
        await asyncio.gather(*sent)

    code, summary = await asyncio.to_thread(
        replay, kafka_bootstrap, database_url, "--dlq", "--since", started.isoformat()
    )

    assert code == 0, summary
    assert (summary["bodies_replayed"], summary["published"]) == (kept, kept)


async def test_a_message_whose_claim_an_ingest_never_marked_is_published_as_unconfirmed(
    shared_data: Path, kafka_bootstrap: str, database_url: str, unique: str
) -> None:
    # An ingest that died between publishing a message and writing its mark leaves a claim
    # that expires unmarked; so does one that died before publishing. Replay publishes the
    # message and says it cannot tell which of the two happened.
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    started = datetime.now(UTC)
    wamid = f"wamid.unmarked-{unique}"
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            f"INSERT INTO {SCHEMA}.seen_messages (key, claimed_at)"
            " VALUES ($1, clock_timestamp() - interval '10 minutes')",
            message_id("whatsapp", wamid),
        )
    finally:
        await connection.close()
    async with producer(kafka_bootstrap) as kafka:
        await kafka.send_and_wait(
            topics.RAW,
            whatsapp_body(shared_data, wamid),
            headers=kept_headers("whatsapp", datetime.now(UTC)),
        )

    code, summary = await asyncio.to_thread(
        replay, kafka_bootstrap, database_url, "--since", started.isoformat()
    )

    assert code == 0, summary
    assert (summary["published"], summary["unconfirmed"]) == (1, 1)


async def test_records_a_replay_cannot_read_are_refused_by_reason_and_the_exit_says_so(
    shared_data: Path, kafka_bootstrap: str, database_url: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    started = datetime.now(UTC)
    body = whatsapp_body(shared_data, f"wamid.refused-{unique}")
    async with producer(kafka_bootstrap) as kafka:
        for headers in (
            kept_headers("fax", datetime.now(UTC)),  # no such endpoint
            [("casewire-source", b"whatsapp")],  # when was it received?
        ):
            await kafka.send_and_wait(topics.dlq(topics.RAW), body, headers=headers)
        await kafka.send_and_wait(
            topics.dlq(topics.RAW), b"{not json", headers=kept_headers("meta", datetime.now(UTC))
        )

    code, summary = await asyncio.to_thread(
        replay, kafka_bootstrap, database_url, "--dlq", "--since", started.isoformat()
    )

    assert code == 1, summary
    # The header-less record has no receipt time, so --since cannot leave it out.
    assert summary["refused"] == {"unknown_source": 1, "no_received_at": 1}
    assert summary["rejected"] == {"malformed_json": 1}
    assert summary["published"] == 0
