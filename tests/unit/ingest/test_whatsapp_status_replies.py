"""A reply an agent sends through the WhatsApp Cloud API from another tool comes back only as
statuses: through the service, its first status becomes the brand's reply, once."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from casewire_common.metrics import new_registry
from casewire_ingest.adapters.memory import InMemoryDedupStore
from casewire_ingest.adapters.publisher import IngestMetrics
from casewire_ingest.domain.sources import SOURCE_NORMALIZERS
from casewire_ingest.webhook_service import WebhookService

from tests.unit.ingest.fakes import RecordingPublisher

RECEIVED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def sent_status(shared_data: Path) -> dict[str, Any]:
    path = shared_data / "payloads/whatsapp/pywa_status__sent.json"
    body: dict[str, Any] = json.loads(path.read_text())
    return body


def with_status(body: dict[str, Any], state: str, timestamp: int) -> bytes:
    changed = copy.deepcopy(body)
    status = changed["entry"][0]["changes"][0]["value"]["statuses"][0]
    status.update(status=state, timestamp=str(timestamp))
    return json.dumps(changed).encode()


async def deliver(bodies: list[bytes]) -> RecordingPublisher:
    publisher = RecordingPublisher()
    metrics = IngestMetrics(new_registry())
    ingest = WebhookService(
        publisher, InMemoryDedupStore(), lambda _: None, metrics, timeout_seconds=1
    )
    for raw in bodies:
        await ingest.accept(
            source="whatsapp",
            raw=raw,
            received_at=RECEIVED_AT,
            normalize=SOURCE_NORMALIZERS["whatsapp"],
        )
    return publisher


async def test_the_first_status_of_an_outbound_message_is_the_brands_reply_once(
    sent_status: dict[str, Any],
) -> None:
    sent_at = 1_772_366_000
    publisher = await deliver(
        [
            with_status(sent_status, "sent", sent_at),
            with_status(sent_status, "delivered", sent_at + 2),
            with_status(sent_status, "read", sent_at + 60),
        ]
    )

    [reply] = publisher.messages
    assert (reply.direction, reply.event, reply.text) == ("outbound", "message", "")
    assert reply.platform_message_id == "wamid.xyzxyz"
    assert reply.conversation_id == "whatsapp:1122334455667:972987654321"
    assert reply.author.id == "1122334455667"  # the business
    assert reply.sent_at == datetime.fromtimestamp(sent_at, UTC)
    assert len(publisher.raw) == 3  # every status body is kept all the same


async def test_a_delivered_status_stands_in_for_a_sent_one_that_never_came(
    sent_status: dict[str, Any],
) -> None:
    publisher = await deliver([with_status(sent_status, "delivered", 1_772_366_002)])

    [reply] = publisher.messages
    assert reply.sent_at == datetime.fromtimestamp(1_772_366_002, UTC)


@pytest.mark.parametrize(
    "change",
    [
        {"status": "failed"},
        {"pricing": {"billable": True, "pricing_model": "PMP", "category": "marketing"}},
        {"pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"}},
        {"pricing": {}, "conversation": {"id": "c", "origin": {"type": "business_initiated"}}},
    ],
    ids=["failed", "marketing", "utility", "business_initiated"],
)
async def test_a_failed_or_template_message_is_no_reply(
    sent_status: dict[str, Any], change: dict[str, Any]
) -> None:
    body = copy.deepcopy(sent_status)
    body["entry"][0]["changes"][0]["value"]["statuses"][0].update(change)

    publisher = await deliver([json.dumps(body).encode()])

    assert publisher.messages == []
