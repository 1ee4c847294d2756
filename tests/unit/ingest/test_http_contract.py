"""Ingest's HTTP contract: what is accepted, what is refused and with which status and reason.
Kafka and PostgreSQL are replaced by in-memory stand-ins here; tests/integration/ingest runs
the same paths on the real broker and database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from casewire_common.messages import message_id
from casewire_common.metrics import new_registry
from casewire_dev.webhooks import IntegrationAuth, casewire_signature, integration_headers
from casewire_ingest.adapters.memory import InMemoryDedupStore
from casewire_ingest.adapters.publisher import IngestMetrics
from casewire_ingest.domain.signatures import token_sha256
from casewire_ingest.entrypoints.http import IngestApp
from casewire_ingest.settings import IngestSettings
from casewire_ingest.webhook_service import WebhookService
from prometheus_client import CollectorRegistry

from tests.unit.ingest.fakes import RecordingPublisher

APP_SECRET = "meta-app-secret"
VERIFY_TOKEN = "verify-me"
INTEGRATION = "webchat"
INTEGRATION_SECRET = "webchat-secret"


def settings(**overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "max_body_bytes": 4096,
        "meta_apps": [{"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}],
        "x_apps": [{"name": "brand", "consumer_secret": "x-secret"}],
        "integrations": [{"name": INTEGRATION, "secrets": [INTEGRATION_SECRET]}],
    }
    values.update(overrides)
    return IngestSettings(**values)


def client_for(
    publisher: RecordingPublisher,
    dedup: InMemoryDedupStore | None = None,
    registry: CollectorRegistry | None = None,
    **overrides: Any,
) -> httpx.AsyncClient:
    metrics = IngestMetrics(registry or new_registry())
    ingest = WebhookService(
        publisher, dedup or InMemoryDedupStore(), lambda text: None, metrics, timeout_seconds=1
    )
    app = IngestApp(ingest, metrics, settings(**overrides))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://ingest",
        auth=IntegrationAuth(INTEGRATION, INTEGRATION_SECRET),
    )


def generic(**overrides: Any) -> dict[str, Any]:
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


def meta_signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


MESSENGER_BODY = json.dumps(
    {
        "object": "page",
        "entry": [
            {
                "id": "1234567890",
                "time": 1459991487970,
                "messaging": [
                    {
                        "sender": {"id": "5678"},
                        "recipient": {"id": "1234567890"},
                        "timestamp": 1459991487970,
                        "message": {"mid": "mid.1", "text": "Hello World"},
                    }
                ],
            }
        ],
    }
).encode()


async def test_generic_message_is_published_with_derived_id_visibility_and_utc_times() -> None:
    publisher = RecordingPublisher()
    async with client_for(publisher) as client:
        response = await client.post("/v1/messages", json=generic())
    assert response.status_code == 202
    [message] = publisher.messages
    assert response.json()["ids"] == [message.id]
    assert message.id == message_id("x", "1234567890123456789")
    assert message.visibility == "public"
    assert message.sent_at.isoformat() == "2026-11-28T08:00:00+00:00"
    assert len(publisher.raw) == 1


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"\xff\xfe", 400, "malformed_json"),
        (b"[1, 2]", 422, "not_an_object"),
        (json.dumps(generic(channel="fax")).encode(), 422, "invalid_message"),
        (json.dumps(generic(sent_at="yesterday")).encode(), 422, "invalid_message"),
        (json.dumps(generic(sent_at="2026-11-28T10:00:00")).encode(), 422, "invalid_message"),
        (json.dumps(generic(channel="dm", visibility="public")).encode(), 422, "invalid_message"),
        (json.dumps(generic(id="not-the-uuid5")).encode(), 422, "invalid_message"),
        (json.dumps({"text": "hello"}).encode(), 422, "invalid_message"),
        (json.dumps(generic(unexpected=1)).encode(), 422, "invalid_message"),
        (b"x" * 5000, 413, "too_large"),
    ],
)
async def test_bad_generic_bodies_get_a_4xx_with_a_reason_and_nothing_is_published(
    payload: bytes, status: int, reason: str
) -> None:
    publisher = RecordingPublisher()
    async with client_for(publisher) as client:
        response = await client.post(
            "/v1/messages", content=payload, headers={"content-type": "application/json"}
        )
    assert response.status_code == status
    assert response.json()["error"] == reason
    assert response.json()["detail"]
    assert publisher.messages == []
    assert publisher.raw == []
    # A signed body is genuine traffic: kept on the raw DLQ for a replay once fixed (a body
    # too large to read is not kept).
    assert publisher.dead == ([] if status == 413 else [(payload, reason)])


async def test_validation_errors_name_the_field_without_echoing_values() -> None:
    async with client_for(RecordingPublisher()) as client:
        response = await client.post("/v1/messages", json=generic(sent_at="secret-value"))
    assert "sent_at" in response.json()["detail"]
    assert "secret-value" not in response.text


async def test_broker_failure_answers_503_so_the_sender_retries() -> None:
    async with client_for(RecordingPublisher(fail=True)) as client:
        response = await client.post("/v1/messages", json=generic())
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"


async def test_meta_webhook_with_valid_signature_is_accepted() -> None:
    publisher = RecordingPublisher()
    async with client_for(publisher) as client:
        response = await client.post(
            "/v1/webhooks/meta",
            content=MESSENGER_BODY,
            headers={"x-hub-signature-256": meta_signature(MESSENGER_BODY)},
        )
    assert response.status_code == 200, response.text
    assert [m.platform_message_id for m in publisher.messages] == ["mid.1"]
    assert publisher.raw[0][0] == MESSENGER_BODY


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "missing_signature"),
        ({"x-hub-signature-256": meta_signature(MESSENGER_BODY, "wrong")}, 403, "bad_signature"),
        ({"x-hub-signature-256": meta_signature(MESSENGER_BODY + b" ")}, 403, "bad_signature"),
    ],
)
async def test_meta_webhook_without_a_valid_signature_is_refused(
    headers: dict[str, str], status: int, reason: str
) -> None:
    publisher = RecordingPublisher()
    async with client_for(publisher) as client:
        response = await client.post("/v1/webhooks/meta", content=MESSENGER_BODY, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == reason
    assert publisher.raw == []
    assert publisher.messages == []
    assert publisher.dead == []


async def test_verified_body_that_cannot_be_normalized_goes_to_the_raw_dead_letter_topic() -> None:
    publisher = RecordingPublisher()
    body = json.dumps({"object": "notpage", "entry": [{}]}).encode()
    async with client_for(publisher) as client:
        response = await client.post(
            "/v1/webhooks/meta", content=body, headers={"x-hub-signature-256": meta_signature(body)}
        )
    assert response.status_code == 422
    assert response.json()["error"] == "unknown_object"
    assert publisher.dead == [(body, "unknown_object")]
    assert publisher.raw == []


async def test_a_bad_item_beside_a_good_message_is_listed_in_a_200_and_dead_lettered() -> None:
    """A 4xx would make Meta resend the body for ever and lose the good message."""
    publisher = RecordingPublisher()
    document = json.loads(MESSENGER_BODY)
    guest = document["entry"][0]["messaging"][0] | {"sender": {"user_ref": "guest-1"}}
    document["entry"][0]["messaging"].append(guest)
    body = json.dumps(document).encode()
    async with client_for(publisher) as client:
        response = await client.post(
            "/v1/webhooks/meta", content=body, headers={"x-hub-signature-256": meta_signature(body)}
        )
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["rejected"]) == (
        1,
        [{"where": "entry[0].messaging[1]", "reason": "missing_field"}],
    )
    assert [m.platform_message_id for m in publisher.messages] == ["mid.1"]
    assert publisher.dead == [(body, "invalid_item")]


async def test_message_for_an_account_the_app_does_not_own_is_refused() -> None:
    publisher = RecordingPublisher()
    apps = [{"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, "accounts": ["999"]}]
    async with client_for(publisher, meta_apps=apps) as client:
        response = await client.post(
            "/v1/webhooks/meta",
            content=MESSENGER_BODY,
            headers={"x-hub-signature-256": meta_signature(MESSENGER_BODY)},
        )
    assert response.status_code == 403
    assert response.json()["error"] == "unknown_account"
    assert publisher.messages == []


async def test_redelivered_body_and_duplicates_inside_one_body_publish_once() -> None:
    publisher = RecordingPublisher()
    document = json.loads(MESSENGER_BODY)
    document["entry"].append(document["entry"][0])  # the same mid twice in one body
    body = json.dumps(document).encode()
    headers = {"x-hub-signature-256": meta_signature(body)}
    async with client_for(publisher) as client:
        first = await client.post("/v1/webhooks/meta", content=body, headers=headers)
        again = await client.post("/v1/webhooks/meta", content=body, headers=headers)
    assert (first.json()["accepted"], first.json()["duplicates"]) == (1, 1)
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 2)
    assert len(publisher.messages) == 1
    assert len(publisher.raw) == 2  # every accepted body is kept as received


async def test_meta_handshake_echoes_the_challenge_only_for_our_verify_token() -> None:
    async with client_for(RecordingPublisher()) as client:
        ok = await client.get(
            "/v1/webhooks/meta",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "42",
            },
        )
        bad = await client.get(
            "/v1/webhooks/whatsapp",
            params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"},
        )
    assert (ok.status_code, ok.text) == (200, "42")
    assert ok.headers["content-type"].startswith("text/plain")
    assert bad.status_code == 403


async def test_x_crc_check_answers_with_the_app_secret_and_unknown_apps_get_404() -> None:
    async with client_for(RecordingPublisher()) as client:
        answer = await client.get("/v1/webhooks/x/brand", params={"crc_token": "test token"})
        single = await client.get("/v1/webhooks/x", params={"crc_token": "test token"})
        unknown = await client.get("/v1/webhooks/x/other", params={"crc_token": "t"})
    digest = hmac.new(b"x-secret", b"test token", hashlib.sha256).digest()
    expected = "sha256=" + base64.b64encode(digest).decode()
    assert answer.json() == {"response_token": expected}
    assert single.json() == {"response_token": expected}
    assert unknown.status_code == 404


async def test_message_text_is_not_logged_unless_debugging_is_switched_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from casewire_common.logging import configure_logging

    configure_logging("DEBUG")  # "body accepted" is a debug line
    secret_text = "my card number is 4111 1111 1111 1111"
    for log_content in (False, True):
        metrics = IngestMetrics(new_registry())
        ingest = WebhookService(
            RecordingPublisher(),
            InMemoryDedupStore(),
            lambda text: None,
            metrics,
            timeout_seconds=1,
            log_content=log_content,
        )
        app = IngestApp(ingest, metrics, settings())
        transport = httpx.ASGITransport(app=app)
        auth = IntegrationAuth(INTEGRATION, INTEGRATION_SECRET)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://ingest", auth=auth
        ) as client:
            body = generic(text=secret_text, platform_message_id=f"p{log_content}")
            assert (await client.post("/v1/messages", json=body)).status_code == 202
        logged = capsys.readouterr().out
        assert "body accepted" in logged
        assert (secret_text in logged) is log_content
    configure_logging("INFO")


# --- The generic channel's callers --------------------------------------------------------

TOKEN = "cw_live_Yq8PvO2m3Y0w7Qe1xK9rT4uS"
BODY = json.dumps(generic()).encode()


def unsigned_client(
    publisher: RecordingPublisher, registry: CollectorRegistry | None = None, **overrides: Any
) -> httpx.AsyncClient:
    client = client_for(publisher, registry=registry, **overrides)
    client.auth = None
    return client


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "missing_credentials"),
        ({"x-casewire-signature": casewire_signature(INTEGRATION_SECRET, BODY)}, 401,
         "missing_credentials"),
        ({"x-casewire-integration": "crm"}, 401, "unknown_integration"),
        ({"x-casewire-integration": INTEGRATION}, 401, "missing_signature"),
        (integration_headers(INTEGRATION, "not-the-secret", BODY), 403, "bad_signature"),
        (integration_headers(INTEGRATION, INTEGRATION_SECRET, BODY + b" "), 403,
         "bad_signature"),
        ({"authorization": "Bearer not-a-known-token"}, 401, "unknown_token"),
        ({"authorization": f"Basic {TOKEN}"}, 401, "bad_authorization"),
        ({"authorization": "Bearer "}, 401, "bad_authorization"),
    ],
)  # fmt: skip
async def test_the_generic_channel_refuses_a_caller_it_cannot_name(
    headers: dict[str, str], status: int, reason: str
) -> None:
    publisher = RecordingPublisher()
    async with unsigned_client(publisher) as client:
        response = await client.post("/v1/messages", content=BODY, headers=headers)
    assert (response.status_code, response.json()["error"]) == (status, reason)
    assert response.json()["detail"]
    assert (publisher.raw, publisher.messages, publisher.dead) == ([], [], [])


async def test_no_integration_configured_means_no_one_may_post() -> None:
    publisher = RecordingPublisher()
    async with unsigned_client(publisher, integrations=[]) as client:
        signed = integration_headers(INTEGRATION, INTEGRATION_SECRET, BODY)
        response = await client.post("/v1/messages", content=BODY, headers=signed)
    assert (response.status_code, response.json()["error"]) == (401, "unknown_integration")
    assert publisher.messages == []


async def test_each_key_of_an_integration_signs_while_rotating_and_its_name_is_kept() -> None:
    publisher = RecordingPublisher()
    integrations = [
        {"name": INTEGRATION, "secrets": ["old-secret", "new-secret"]},
        {"name": "crm", "token_sha256": [token_sha256(TOKEN)]},
    ]
    registry = new_registry()
    async with unsigned_client(publisher, registry, integrations=integrations) as client:
        for secret, pid in (("old-secret", "1"), ("new-secret", "2")):
            body = json.dumps(generic(platform_message_id=pid)).encode()
            headers = integration_headers(INTEGRATION, secret, body)
            response = await client.post("/v1/messages", content=body, headers=headers)
            assert response.status_code == 202, response.text
        body = json.dumps(generic(platform_message_id="3")).encode()
        bearer = {"authorization": f"Bearer {TOKEN}"}
        response = await client.post("/v1/messages", content=body, headers=bearer)
        assert response.status_code == 202, response.text
    assert [m.platform_message_id for m in publisher.messages] == ["1", "2", "3"]
    assert publisher.message_headers == [(INTEGRATION, False), (INTEGRATION, False), ("crm", False)]
    assert [headers.get("casewire-integration") for _, _, headers in publisher.raw] == [
        INTEGRATION,
        INTEGRATION,
        "crm",
    ]
    sent = "casewire_ingest_integration_messages_total"
    assert registry.get_sample_value(sent, {"integration": INTEGRATION}) == 2
    assert registry.get_sample_value(sent, {"integration": "crm"}) == 1


async def test_a_body_cannot_name_its_own_integration() -> None:
    publisher = RecordingPublisher()
    async with client_for(publisher) as client:
        response = await client.post("/v1/messages", json=generic(integration="crm"))
    assert (response.status_code, response.json()["error"]) == (422, "invalid_message")


# --- Hostile bodies: a reason and a 4xx, never a 5xx; kept on the raw DLQ when signed ------


def meta_body_with(timestamp: bytes) -> bytes:
    return (
        b'{"object":"page","entry":[{"id":"1234567890","time":1459991487970,"messaging":[{'
        b'"sender":{"id":"5678"},"recipient":{"id":"1234567890"},"timestamp":'
        + timestamp
        + b',"message":{"mid":"mid.hostile","text":"hi"}}]}]}'
    )


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"object":"page","entry":' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "too_deep"),
        (meta_body_with(b"9" * 5000), 400, "malformed_json"),
        (meta_body_with(b"NaN"), 400, "malformed_json"),
        (meta_body_with(b"-Infinity"), 400, "malformed_json"),
        (meta_body_with(b'"\\ud800"'), 400, "malformed_json"),
    ],
    ids=["nested-100000-deep", "5000-digit-integer", "nan-timestamp", "infinite-timestamp",
         "lone-surrogate"],
)  # fmt: skip
async def test_a_signed_hostile_body_is_refused_with_a_reason_and_dead_lettered(
    body: bytes, status: int, reason: str
) -> None:
    publisher = RecordingPublisher()
    async with client_for(publisher, max_body_bytes=1_048_576) as client:
        response = await client.post(
            "/v1/webhooks/meta", content=body, headers={"x-hub-signature-256": meta_signature(body)}
        )
    assert (response.status_code, response.json()["error"]) == (status, reason)
    assert publisher.dead == [(body, reason)]
    assert publisher.messages == []


async def test_an_unsigned_hostile_body_is_refused_before_it_is_parsed() -> None:
    publisher = RecordingPublisher()
    body = b"[" * 100_000 + b"]" * 100_000
    async with unsigned_client(publisher, max_body_bytes=1_048_576) as client:
        response = await client.post("/v1/messages", content=body)
    assert (response.status_code, response.json()["error"]) == (401, "missing_credentials")
    assert publisher.dead == []


async def test_a_generic_message_from_the_future_is_refused() -> None:
    publisher = RecordingPublisher()
    async with client_for(publisher) as client:
        response = await client.post("/v1/messages", json=generic(sent_at="9999-12-31T00:00:00Z"))
    assert (response.status_code, response.json()["error"]) == (422, "implausible_sent_at")
    assert publisher.messages == []
    assert [reason for _, reason in publisher.dead] == ["implausible_sent_at"]


async def test_a_platform_message_from_the_future_is_published_at_its_receipt_and_flagged() -> None:
    publisher = RecordingPublisher()
    body = meta_body_with(b"4102444800000")  # 2100-01-01
    registry = new_registry()
    async with client_for(publisher, registry=registry) as client:
        response = await client.post(
            "/v1/webhooks/meta", content=body, headers={"x-hub-signature-256": meta_signature(body)}
        )
    assert response.status_code == 200, response.text
    [message] = publisher.messages
    assert message.sent_at == message.received_at
    assert publisher.message_headers == [(None, True)]
    adjusted = "casewire_ingest_time_adjusted_total"
    assert registry.get_sample_value(adjusted, {"source": "meta"}) == 1
