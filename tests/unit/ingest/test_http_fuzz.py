"""Property-based: whatever a caller sends, ingest answers without a 5xx and without crashing.
Bodies are validly signed so that they reach the parsers and normalizers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
from casewire_common.metrics import new_registry
from casewire_dev.webhooks import integration_headers
from casewire_ingest.adapters.memory import InMemoryDedupStore
from casewire_ingest.adapters.publisher import IngestMetrics
from casewire_ingest.entrypoints.http import IngestApp
from casewire_ingest.settings import IngestSettings
from casewire_ingest.webhook_service import WebhookService
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.ingest.fakes import RecordingPublisher
from tests.unit.ingest.hostile import hostile_bodies

SECRET = "fuzz-secret"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["", "page", "instagram", "whatsapp_business_account", "1459991487970",
                     "asdf", "Fri Dec 13 04:48:09 +0000 2019", "2019-12-13T04:48:09Z"]),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["object", "entry", "id", "time", "messaging", "changes", "standby", "message",
             "sender", "recipient", "timestamp", "text", "mid", "is_echo", "value", "field",
             "messages", "statuses", "contacts", "metadata", "from", "type", "for_user_id",
             "tweet_create_events", "direct_message_events", "users", "user", "id_str",
             "created_at", "message_create", "attachments", "verb", "item", "comment_id"]
        ) | st.text(max_size=8),
        children,
        max_size=6,
    ),
    max_leaves=30,
)  # fmt: skip

platform_shaped = st.one_of(
    st.fixed_dictionaries(
        {"object": st.sampled_from(["page", "instagram", "whatsapp_business_account"]),
         "entry": st.lists(json_values, max_size=3)}
    ),
    st.fixed_dictionaries(
        {"for_user_id": st.one_of(st.text(max_size=5), st.integers()),
         "tweet_create_events": st.lists(json_values, max_size=3)}
    ),
    st.fixed_dictionaries(
        {"for_user_id": st.text(max_size=5),
         "direct_message_events": st.lists(json_values, max_size=3),
         "users": json_values}
    ),
    json_values,
)  # fmt: skip


def make_client() -> httpx.AsyncClient:
    metrics = IngestMetrics(new_registry())
    ingest = WebhookService(
        RecordingPublisher(), InMemoryDedupStore(), lambda text: None, metrics, timeout_seconds=1
    )
    app = IngestApp(
        ingest,
        metrics,
        IngestSettings(
            meta_apps=[{"app_secret": SECRET, "verify_token": "t"}],
            x_apps=[{"consumer_secret": SECRET}],
            integrations=[{"name": "fuzz", "secrets": [SECRET]}],
        ),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest")


async def post_everywhere(body: bytes) -> list[int]:
    meta_sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    x_sig = (
        "sha256="
        + base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    )
    async with make_client() as client:
        responses = [
            await client.post(
                "/v1/webhooks/meta", content=body, headers={"x-hub-signature-256": meta_sig}
            ),
            await client.post(
                "/v1/webhooks/whatsapp", content=body, headers={"x-hub-signature-256": meta_sig}
            ),
            await client.post(
                "/v1/webhooks/x", content=body, headers={"x-twitter-webhooks-signature": x_sig}
            ),
            await client.post(
                "/v1/messages", content=body, headers=integration_headers("fuzz", SECRET, body)
            ),
        ]
    for response in responses:
        assert "Traceback" not in response.text
        # Every refusal names its reason; nothing a normalizer did not foresee.
        assert response.status_code < 300 or response.json()["error"] != "unreadable_body"
    return [response.status_code for response in responses]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(platform_shaped)
def test_any_json_body_gets_an_answer_below_500(document: Any) -> None:
    body = json.dumps(document).encode()
    statuses = asyncio.run(post_everywhere(body))
    assert all(status < 500 for status in statuses), statuses


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_get_an_answer_below_500(body: bytes) -> None:
    statuses = asyncio.run(post_everywhere(body))
    assert all(status < 500 for status in statuses), statuses


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile_bodies())
def test_hostile_bodies_get_an_answer_below_500_with_a_reason(sample: tuple[str, bytes]) -> None:
    _, body = sample
    statuses = asyncio.run(post_everywhere(body))
    assert all(status < 500 for status in statuses), statuses
