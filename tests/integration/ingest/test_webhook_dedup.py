"""Against the real broker and PostgreSQL: a platform message delivered twice — again after an
ingest restart, or to two replicas at once — is published once; every body is kept raw."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from casewire_common import topics
from casewire_common.messages import CanonicalMessage
from casewire_common.pg import migrate
from casewire_ingest.adapters.dedup import MIGRATIONS_PACKAGE, SCHEMA
from casewire_ingest.main import create_app
from casewire_ingest.settings import IngestSettings

from tests.integration.helpers import running, topic_reader


def signed_whatsapp(shared_data: Path) -> tuple[bytes, str, str, str]:
    """The real, Meta-signed WhatsApp body: (raw bytes, secret, signature, message id)."""
    vector = json.loads(
        (shared_data / "payloads/signatures/meta_x_hub_signature_256_pywa.json").read_text()
    )
    raw = vector["raw_body_utf8"].encode()
    wamid = json.loads(raw)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    return raw, vector["app_secret"], vector["header_value"], wamid


def settings(bootstrap: str, database_url: str, secret: str) -> IngestSettings:
    return IngestSettings(
        kafka_bootstrap_servers=bootstrap,
        database_url=database_url,
        meta_apps=[{"app_secret": secret, "verify_token": "unused"}],
    )


async def drain(
    source: AIOKafkaConsumer, keep: Any, expected: int, timeout: float = 30.0
) -> list[Any]:
    """Read until `expected` records are kept, then one more second to catch any extra."""
    found: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    settle_until: float | None = None
    while loop.time() < (settle_until or deadline):
        batch = await source.getmany(timeout_ms=200)
        found.extend(record for records in batch.values() for record in records if keep(record))
        if settle_until is None and len(found) >= expected:
            settle_until = loop.time() + 1.0
    return found


async def test_redelivery_across_an_ingest_restart_publishes_the_message_once(
    shared_data: Path, kafka_bootstrap: str, database_url: str, unique: str
) -> None:
    raw, secret, signature, wamid = signed_whatsapp(shared_data)
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    headers = {"x-hub-signature-256": signature, "content-type": "application/json"}
    answers = []
    started_ms = int(time.time() * 1000)
    async with (
        topic_reader(kafka_bootstrap, topics.MESSAGES) as messages_in,
        topic_reader(kafka_bootstrap, topics.RAW) as raw_in,
    ):
        for _ in range(2):  # two process lifetimes, one database
            app = create_app(settings(kafka_bootstrap, database_url, secret))
            async with running(app) as client:
                answers.append(
                    await client.post("/v1/webhooks/whatsapp", content=raw, headers=headers)
                )
        published = await drain(
            messages_in,
            lambda r: (
                r.timestamp >= started_ms
                and CanonicalMessage.model_validate_json(r.value).platform_message_id == wamid
            ),
            expected=1,
        )
        raw_kept = await drain(
            raw_in, lambda r: r.timestamp >= started_ms and r.value == raw, expected=2
        )
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json()["accepted"] == 1
    assert answers[1].json() | {"ids": None} == {
        "accepted": 0, "ids": None, "duplicates": 1, "thread_controls": 0, "ignored": {},
        "rejected": [],
    }  # fmt: skip
    # Records older than this test (other tests may post the same fixture) are left out.
    assert len(published) == 1
    message = CanonicalMessage.model_validate_json(published[0].value)
    assert message.platform == "whatsapp"
    assert message.text == "Hey there! I am using PyWa."
    assert message.account_id == "277321005464405"
    assert len(raw_kept) == 2  # every accepted body is kept as received


async def test_two_replicas_receiving_the_same_body_at_once_publish_it_once(
    shared_data: Path, kafka_bootstrap: str, database_url: str
) -> None:
    raw, secret, signature, _ = signed_whatsapp(shared_data)
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    headers = {"x-hub-signature-256": signature, "content-type": "application/json"}
    first = create_app(settings(kafka_bootstrap, database_url, secret))
    second = create_app(settings(kafka_bootstrap, database_url, secret))
    async with running(first) as one, running(second) as two:
        answers: list[httpx.Response] = list(
            await asyncio.gather(
                *(
                    client.post("/v1/webhooks/whatsapp", content=raw, headers=headers)
                    for client in (one, two, one, two)
                )
            )
        )

        # A delivery that finds the message claimed by one still writing it is not answered
        # 200 (were that request's ingest to die, nothing would publish it) but 503
        # `in_flight`: the platform retries it, and the retry finds it published.
        async def retry(client: httpx.AsyncClient) -> httpx.Response:
            """As the platform does, until answered otherwise (the owner's mark lands within
            milliseconds of its answer)."""
            for _ in range(100):
                await asyncio.sleep(0.05)
                answer = await client.post("/v1/webhooks/whatsapp", content=raw, headers=headers)
                if answer.status_code != 503:
                    return answer
                assert answer.json()["error"] == "in_flight"
            raise AssertionError("still in flight after 5 s")

        retried: list[httpx.Response] = []
        for answer, client in zip(answers, (one, two, one, two), strict=True):
            if answer.status_code == 503:
                assert answer.json()["error"] == "in_flight"
                retried.append(await retry(client))
    done = [answer for answer in answers if answer.status_code != 503] + retried
    assert [answer.status_code for answer in done] == [200] * 4
    assert sum(answer.json()["accepted"] for answer in done) == 1
    assert sum(answer.json()["duplicates"] for answer in done) == 3
