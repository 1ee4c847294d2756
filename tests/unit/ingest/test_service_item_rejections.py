"""A webhook body with items that cannot be read: its good messages are published as usual, the
body is also kept on the raw DLQ (reason `invalid_item`) for a replay after a fix, and only a
body with nothing usable in it is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from casewire_common.messages import message_id
from casewire_common.metrics import new_registry
from casewire_ingest.adapters.memory import InMemoryDedupStore
from casewire_ingest.adapters.publisher import IngestMetrics
from casewire_ingest.domain.normalized import ItemRejection
from casewire_ingest.domain.platforms import normalize
from casewire_ingest.webhook_service import Accepted, Rejected, Unavailable, WebhookService
from prometheus_client import CollectorRegistry

from tests.unit.ingest.fakes import RecordingPublisher

PAGE = "1000000000001"
SENT_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
RECEIVED_AT = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)


def event(mid: str, sender: dict[str, str]) -> dict[str, Any]:
    return {
        "sender": sender,
        "recipient": {"id": PAGE},
        "timestamp": SENT_MS,
        "message": {"mid": mid, "text": "my order is late"},
    }


CUSTOMER = event("m_5", {"id": "2000000000002"})
GUEST = event("m_6", {"user_ref": "abc123"})  # a chat-plugin guest: no id to key a DM on
READ = {"sender": {"id": "2000000000002"}, "recipient": {"id": PAGE}, "read": {"watermark": 1}}


def body(*events: dict[str, Any]) -> bytes:
    entry = {"id": PAGE, "time": SENT_MS, "messaging": list(events)}
    return json.dumps({"object": "page", "entry": [entry]}).encode()


class DeadLetterDown(RecordingPublisher):
    async def dead_letter_raw(
        self, raw_body: bytes, key: str, headers: dict[str, str], reason: str, error: str
    ) -> None:
        raise ConnectionError("broker down")


def ingest_with(
    publisher: RecordingPublisher,
    dedup: InMemoryDedupStore,
    registry: CollectorRegistry | None = None,
) -> WebhookService:
    metrics = IngestMetrics(registry or new_registry())
    return WebhookService(publisher, dedup, lambda text: "en", metrics, timeout_seconds=1)


async def accept(ingest: WebhookService, raw: bytes) -> Accepted:
    return await ingest.accept(source="meta", raw=raw, received_at=RECEIVED_AT, normalize=normalize)


async def test_the_good_message_is_published_and_the_body_dead_lettered_for_replay() -> None:
    publisher, dedup, registry = RecordingPublisher(), InMemoryDedupStore(), new_registry()
    ingest = ingest_with(publisher, dedup, registry)
    raw = body(CUSTOMER, GUEST)

    accepted = await accept(ingest, raw)

    assert accepted.published == [message_id("facebook", "m_5")]
    assert accepted.rejected == [
        ItemRejection(
            "entry[0].messaging[1]", "missing_field", "entry[0].messaging[1].sender.id is missing"
        )
    ]
    assert [m.platform_message_id for m in publisher.messages] == ["m_5"]
    assert [(written, key) for written, key, _ in publisher.raw] == [(raw, f"meta:{PAGE}")]
    assert publisher.dead == [(raw, "invalid_item")]
    assert publisher.dead_errors == ["1 item(s) rejected: entry[0].messaging[1]: missing_field"]
    labels = {"source": "meta", "reason": "invalid_item"}
    assert registry.get_sample_value("casewire_ingest_rejections_total", labels) == 1

    replayed = await accept(ingest, raw)  # what a replay from the DLQ does before the fix

    assert (replayed.published, replayed.duplicates) == ([], 1)
    assert len(publisher.messages) == 1  # dedup drops what was published


async def test_an_acknowledged_event_beside_the_bad_item_is_enough_to_accept_the_body() -> None:
    publisher = RecordingPublisher()
    raw = body(READ, GUEST)

    accepted = await accept(ingest_with(publisher, InMemoryDedupStore()), raw)

    assert (accepted.published, accepted.ignored) == ([], {"read": 1})
    assert [item.where for item in accepted.rejected] == ["entry[0].messaging[1]"]
    assert [written for written, _, _ in publisher.raw] == [raw]
    assert publisher.dead == [(raw, "invalid_item")]


async def test_a_body_with_nothing_but_bad_items_is_refused_as_a_whole() -> None:
    publisher, registry = RecordingPublisher(), new_registry()
    raw = body(GUEST, GUEST | {"message": {"mid": "m_7"}})

    with pytest.raises(Rejected) as refused:
        await accept(ingest_with(publisher, InMemoryDedupStore(), registry), raw)

    assert (refused.value.status, refused.value.reason, refused.value.detail) == (
        422,
        "missing_field",
        "entry[0].messaging[0].sender.id is missing",
    )
    assert publisher.dead == [(raw, "missing_field")]
    assert (publisher.raw, publisher.messages) == ([], [])
    labels = {"source": "meta", "reason": "missing_field"}
    assert registry.get_sample_value("casewire_ingest_rejections_total", labels) == 1


async def test_a_dead_letter_write_failure_answers_unavailable_so_the_body_comes_back() -> None:
    dedup, failing = InMemoryDedupStore(), DeadLetterDown()
    raw = body(CUSTOMER, GUEST)

    with pytest.raises(Unavailable):
        await accept(ingest_with(failing, dedup), raw)
    assert failing.messages == []  # nothing published or marked before every write was done
    retried = await accept(ingest_with(RecordingPublisher(), dedup), raw)

    assert retried.published == [message_id("facebook", "m_5")]


async def test_the_dead_letter_detail_names_the_first_bad_items_and_counts_the_rest() -> None:
    publisher = RecordingPublisher()
    guests = [GUEST | {"message": {"mid": f"m_guest_{n}"}} for n in range(30)]

    await accept(ingest_with(publisher, InMemoryDedupStore()), body(CUSTOMER, *guests))

    [detail] = publisher.dead_errors
    assert detail.startswith("30 item(s) rejected: entry[0].messaging[1]: missing_field; ")
    assert detail.endswith("; entry[0].messaging[20]: missing_field; 10 more")
