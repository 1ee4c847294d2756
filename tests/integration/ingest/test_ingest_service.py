"""Ingest against the real broker: raw body and canonical message written before the 202; a
body with a bad item has its good message published and is kept on the raw DLQ as well."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import asyncpg
from casewire_common import topics
from casewire_common.messages import CanonicalMessage, message_id
from casewire_common.pg import migrate
from casewire_dev import stack as local_stack
from casewire_ingest.adapters.dedup import MIGRATIONS_PACKAGE, SCHEMA
from casewire_ingest.main import create_app
from casewire_ingest.settings import IngestSettings

from tests.integration.helpers import (
    TEST_INTEGRATIONS,
    eventually,
    metric_value,
    running,
    topic_reader,
)


def generic(pid: str, conversation: str) -> dict[str, object]:
    return {
        "platform": "whatsapp",
        "channel": "dm",
        "direction": "inbound",
        "account_id": "106540352242922",
        "platform_message_id": pid,
        "conversation_id": conversation,
        "author": {"id": "16505551234", "name": "Noura"},
        "text": "مرحبا، طلبي لم يصل بعد",
        "language": "ar",
        "sent_at": "2026-11-28T08:00:00Z",
    }


async def test_accepted_message_is_on_the_raw_and_messages_topics_keyed_by_conversation(
    kafka_bootstrap: str, database_url: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    app = create_app(
        IngestSettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            database_url=database_url,
            integrations=TEST_INTEGRATIONS,
        )
    )
    conversation = f"whatsapp:106540352242922:{unique}"
    async with (
        running(app) as client,
        topic_reader(kafka_bootstrap, topics.MESSAGES) as messages_in,
        topic_reader(kafka_bootstrap, topics.RAW) as raw_in,
    ):
        response = await client.post("/v1/messages", json=generic(f"wamid.{unique}", conversation))
        assert response.status_code == 202, response.text
        [message_id] = response.json()["ids"]
        found: list[CanonicalMessage] = []
        raw_found: list[bytes] = []

        async def read() -> int:
            for source in (messages_in, raw_in):
                batch = await source.getmany(timeout_ms=100)
                for records in batch.values():
                    for record in records:
                        if source is messages_in and record.key == conversation.encode():
                            found.append(CanonicalMessage.model_validate_json(record.value))
                        elif source is raw_in and unique.encode() in (record.value or b""):
                            raw_found.append(record.value)
            return len(found) + len(raw_found)

        await eventually(read, lambda count: count >= 2)
        assert len(found) == 1
        assert found[0].id == message_id
        assert found[0].text == "مرحبا، طلبي لم يصل بعد"
        assert found[0].visibility == "private"
        assert len(raw_found) == 1
        assert json.loads(raw_found[0])["platform_message_id"] == f"wamid.{unique}"
        metrics = (await client.get("/metrics")).text
        assert (
            metric_value(
                metrics, "casewire_ingest_messages_total", {"platform": "whatsapp", "channel": "dm"}
            )
            == 1
        )
        assert (await client.get("/readyz")).status_code == 200


async def test_a_bad_item_is_dead_lettered_and_the_good_message_beside_it_published(
    kafka_bootstrap: str, database_url: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    secret = "meta-app-secret"
    app = create_app(
        IngestSettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            database_url=database_url,
            meta_apps=[{"app_secret": secret, "verify_token": "unused"}],
        )
    )
    page, customer, sent_ms = "1000000000001", str(int(unique, 16)), int(time.time() * 1000)
    good = {
        "sender": {"id": customer},
        "recipient": {"id": page},
        "timestamp": sent_ms,
        "message": {"mid": f"m_{unique}", "text": "my order is late"},
    }
    guest = good | {"sender": {"user_ref": unique}, "message": {"mid": f"m_guest_{unique}"}}
    entry = {"id": page, "time": sent_ms, "messaging": [good, guest]}
    raw = json.dumps({"object": "page", "entry": [entry]}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    conversation = f"facebook:{page}:{customer}".encode()
    async with (
        running(app) as client,
        topic_reader(kafka_bootstrap, topics.MESSAGES) as messages_in,
        topic_reader(kafka_bootstrap, topics.dlq(topics.RAW)) as dead_in,
    ):
        response = await client.post(
            "/v1/webhooks/meta", content=raw, headers={"x-hub-signature-256": signature}
        )
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == [
            {"where": "entry[0].messaging[1]", "reason": "missing_field"}
        ]
        found: list[CanonicalMessage] = []
        dead: list[dict[str, bytes]] = []

        async def read() -> int:
            for source in (messages_in, dead_in):
                batch = await source.getmany(timeout_ms=100)
                for records in batch.values():
                    for record in records:
                        if source is messages_in and record.key == conversation:
                            found.append(CanonicalMessage.model_validate_json(record.value))
                        elif source is dead_in and record.value == raw:
                            dead.append(dict(record.headers))
            return len(found) + len(dead)

        await eventually(read, lambda count: count >= 2)
        assert [message.platform_message_id for message in found] == [f"m_{unique}"]
        [headers] = dead
        assert headers[topics.DLQ_REASON_HEADER] == b"invalid_item"
        assert headers[topics.DLQ_ERROR_HEADER] == (
            b"1 item(s) rejected: entry[0].messaging[1]: missing_field"
        )
        metrics = (await client.get("/metrics")).text
        labels = {"source": "meta", "reason": "invalid_item"}
        assert metric_value(metrics, "casewire_ingest_rejections_total", labels) == 1


async def test_kafka_down_answers_503_and_readyz_fails_but_healthz_stays_alive(
    tmp_path: Path, database_url: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    port = local_stack.free_port()
    local_stack.start_broker(tmp_path, port)
    bootstrap = f"127.0.0.1:{port}"
    await local_stack.create_topics(bootstrap, partitions=1)
    app = create_app(
        IngestSettings(
            kafka_bootstrap_servers=bootstrap,
            database_url=database_url,
            publish_timeout_seconds=2,
            shutdown_timeout_seconds=1,
            integrations=TEST_INTEGRATIONS,
        )
    )
    try:
        async with running(app) as client:
            accepted = await client.post("/v1/messages", json=generic(f"a{unique}", unique))
            assert accepted.status_code == 202
            local_stack.stop_broker(tmp_path)
            refused = await client.post("/v1/messages", json=generic(f"b{unique}", unique))
            assert refused.status_code == 503
            assert refused.json()["error"] == "unavailable"
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 503
    finally:
        local_stack.stop_broker(tmp_path)


async def test_a_retry_of_a_message_a_dead_request_claimed_is_answered_503_until_it_is_written(
    kafka_bootstrap: str, database_url: str, unique: str, pg: asyncpg.Connection
) -> None:
    """An ingest killed between claiming a message and writing it leaves the claim: the
    platform's retry must not be answered 200 as a duplicate (nothing would publish it), but
    503 `in_flight` until the claim expires; then the retry publishes it, once."""
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    app = create_app(
        IngestSettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            database_url=database_url,
            integrations=TEST_INTEGRATIONS,
        )
    )
    conversation = f"whatsapp:106540352242922:{unique}"
    body = generic(f"wamid.{unique}", conversation)
    key = message_id("whatsapp", f"wamid.{unique}")
    await pg.execute(
        f"INSERT INTO {SCHEMA}.seen_messages (key, claimed_at) VALUES ($1, clock_timestamp())",
        key,
    )
    async with (
        running(app) as client,
        topic_reader(kafka_bootstrap, topics.MESSAGES, from_end=True) as messages_in,
    ):
        retried = await client.post("/v1/messages", json=body)
        assert retried.status_code == 503, retried.text
        assert retried.json()["error"] == "in_flight"
        metrics = (await client.get("/metrics")).text
        labels = {"source": "generic", "reason": "in_flight"}
        assert metric_value(metrics, "casewire_ingest_rejections_total", labels) == 1

        # The dead request's claim expires (CASEWIRE_DEDUP_CLAIM_TIMEOUT_SECONDS, 60 s).
        await pg.execute(
            f"UPDATE {SCHEMA}.seen_messages SET claimed_at = now() - interval '2 minutes'"
            " WHERE key = $1",
            key,
        )
        accepted = await client.post("/v1/messages", json=body)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["ids"] == [key]
        again = await client.post("/v1/messages", json=body)
        assert (again.status_code, again.json()["duplicates"]) == (202, 1)

        published: list[str] = []

        async def read() -> int:
            for records in (await messages_in.getmany(timeout_ms=100)).values():
                published.extend(
                    CanonicalMessage.model_validate_json(r.value).id
                    for r in records
                    if r.key == conversation.encode()
                )
            return len(published)

        await eventually(read, lambda count: count >= 1)
        assert published == [key]
