"""The generic channel's HTTP contract: accepted bodies become canonical messages; every bad
body gets a 4xx with a reason. (Kafka behaviour is in tests/integration/ingest.)"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from casewire_common.messages import CanonicalMessage, message_id
from casewire_common.metrics import new_registry
from casewire_ingest.adapters.publisher import IngestMetrics
from casewire_ingest.entrypoints.http import http_router
from fastapi import FastAPI


class RecordingPublisher:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[tuple[str, list[CanonicalMessage]]] = []
        self.fail = fail

    async def publish(
        self, raw_body: bytes, raw_key: str, source: str, messages: Sequence[CanonicalMessage]
    ) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.published.append((raw_key, list(messages)))


def client_for(publisher: RecordingPublisher) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(
        http_router(
            publisher, IngestMetrics(new_registry()), max_body_bytes=4096, publish_timeout_seconds=1
        )
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest")


def body(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "platform": "x",
        "channel": "mention",
        "direction": "inbound",
        "account_id": "brand",
        "platform_message_id": "1234567890123456789",
        "conversation_id": "x:brand:1234567890123456789:cust",
        "author": {"id": "cust", "handle": "cust", "followers": 12},
        "text": "Ο λογαριασμός μου δεν λειτουργεί",
        "sent_at": "2026-11-28T10:00:00+02:00",
    }
    document.update(overrides)
    return document


async def test_valid_message_is_published_with_derived_id_visibility_and_utc_times() -> None:
    publisher = RecordingPublisher()
    async with client_for(publisher) as client:
        response = await client.post("/v1/messages", json=body())
    assert response.status_code == 202
    key, [message] = publisher.published[0]
    assert key == "x:brand:1234567890123456789:cust"
    assert response.json() == {"id": message.id, "conversation_id": key}
    assert message.id == message_id("x", "1234567890123456789")
    assert message.visibility == "public"
    assert message.sent_at.isoformat() == "2026-11-28T08:00:00+00:00"
    assert message.received_at.tzinfo is not None


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"[1, 2]", 422, "must be a JSON object"),
        (json.dumps(body(channel="fax")).encode(), 422, "invalid message"),
        (json.dumps(body(sent_at="yesterday")).encode(), 422, "invalid message"),
        (json.dumps(body(sent_at="2026-11-28T10:00:00")).encode(), 422, "invalid message"),
        (json.dumps(body(channel="dm", visibility="public")).encode(), 422, "invalid message"),
        (json.dumps(body(id="not-the-uuid5")).encode(), 422, "invalid message"),
        (json.dumps({"text": "hello"}).encode(), 422, "invalid message"),
        (json.dumps(body(unexpected=1)).encode(), 422, "invalid message"),
        (b"\xff\xfe", 400, "malformed JSON"),
        (b"x" * 5000, 413, "larger than"),
    ],
)
async def test_bad_bodies_get_a_4xx_with_a_reason_and_nothing_is_published(
    payload: bytes, status: int, reason: str
) -> None:
    publisher = RecordingPublisher()
    async with client_for(publisher) as client:
        response = await client.post(
            "/v1/messages", content=payload, headers={"content-type": "application/json"}
        )
    assert response.status_code == status
    assert reason in response.json()["error"]
    assert publisher.published == []


async def test_validation_errors_name_the_field_without_echoing_values() -> None:
    async with client_for(RecordingPublisher()) as client:
        response = await client.post("/v1/messages", json=body(sent_at="secret-value"))
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["sent_at"]
    assert "secret-value" not in response.text


async def test_broker_failure_answers_503_so_the_sender_retries() -> None:
    async with client_for(RecordingPublisher(fail=True)) as client:
        response = await client.post("/v1/messages", json=body())
    assert response.status_code == 503
    assert "retry" in response.json()["error"]
