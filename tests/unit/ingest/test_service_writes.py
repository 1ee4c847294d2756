"""The order of ingest's writes: the dedup claim goes out while the raw body is being written,
messages only once both are done, and a claim whose body was not written is given back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

import pytest
from casewire_common.messages import CanonicalMessage
from casewire_common.metrics import new_registry
from casewire_common.thread_control import ThreadControl
from casewire_ingest.adapters.publisher import IngestMetrics
from casewire_ingest.domain.generic import normalize_generic
from casewire_ingest.webhook_service import Unavailable, WebhookService

BODY = json.dumps(
    {
        "platform": "whatsapp",
        "channel": "dm",
        "direction": "inbound",
        "account_id": "106540352242922",
        "platform_message_id": "wamid.order-1",
        "conversation_id": "whatsapp:106540352242922:16505551234",
        "author": {"id": "16505551234"},
        "text": "where is my order?",
        "sent_at": "2026-11-28T08:00:00Z",
    }
).encode()


class Journal:
    """Both fakes write what happens, in order, to one list."""

    def __init__(self) -> None:
        self.events: list[str] = []


class SlowPublisher:
    def __init__(self, journal: Journal, *, fail_raw: bool = False) -> None:
        self.journal = journal
        self.fail_raw = fail_raw

    async def publish_raw(self, raw_body: bytes, key: str, headers: dict[str, str]) -> None:
        self.journal.events.append("raw sent")
        await asyncio.sleep(0.01)  # the broker's round trip
        if self.fail_raw:
            raise ConnectionError("broker down")
        self.journal.events.append("raw acknowledged")

    async def publish_messages(
        self,
        messages: Sequence[CanonicalMessage],
        *,
        integration: str | None = None,
        time_adjusted: Collection[str] = (),
        standby: Collection[str] = (),
        sending_apps: Mapping[str, str] | None = None,
        thread_controls: Sequence[ThreadControl] = (),
    ) -> None:
        self.journal.events.append("messages sent")

    async def dead_letter_raw(
        self, raw_body: bytes, key: str, headers: dict[str, str], reason: str, error: str
    ) -> None:
        raise AssertionError("nothing here is dead-lettered")


class JournalDedup:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.released: list[str] = []

    async def claim(self, keys: Sequence[str]) -> set[str]:
        self.journal.events.append("claim sent")
        await asyncio.sleep(0.02)  # PostgreSQL's round trip, longer than the broker's
        self.journal.events.append("claim answered")
        return set(keys)

    def mark_published(self, keys: Sequence[str]) -> None:
        self.journal.events.append("marked")

    async def release(self, keys: Sequence[str]) -> None:
        self.released.extend(keys)

    async def abandoned(self, keys: Sequence[str]) -> set[str]:
        return set()


def ingest_with(publisher: SlowPublisher, dedup: JournalDedup) -> WebhookService:
    metrics = IngestMetrics(new_registry())
    return WebhookService(publisher, dedup, lambda text: "en", metrics, timeout_seconds=1)


async def accept(ingest: WebhookService) -> None:
    await ingest.accept(
        source="generic",
        raw=BODY,
        received_at=datetime(2026, 11, 28, 8, 0, 1, tzinfo=UTC),
        normalize=normalize_generic,
    )


async def test_claim_overlaps_the_raw_write_and_messages_wait_for_both() -> None:
    journal = Journal()
    dedup = JournalDedup(journal)
    await accept(ingest_with(SlowPublisher(journal), dedup))
    at = journal.events.index
    assert at("claim sent") < at("raw acknowledged")  # the two round trips overlap
    assert at("messages sent") > max(at("raw acknowledged"), at("claim answered"))
    assert journal.events[-1] == "marked"


async def test_a_body_that_was_not_written_gives_its_claims_back() -> None:
    journal = Journal()
    dedup = JournalDedup(journal)
    with pytest.raises(Unavailable):
        await accept(ingest_with(SlowPublisher(journal, fail_raw=True), dedup))
    assert "messages sent" not in journal.events
    assert len(dedup.released) == 1  # the claimed key, so that the platform's retry publishes
