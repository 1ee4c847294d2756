"""The message service's batch transaction, on the in-memory store and a recording dead-letter
topic: no PostgreSQL, no Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiokafka import ConsumerRecord
from casewire_common import events as ev
from casewire_common.events import decode_event
from casewire_common.messages import CanonicalMessage
from casewire_common.metrics import new_registry
from casewire_router.adapters.memory import InMemoryMessageStore
from casewire_router.domain.assignment import AgentState
from casewire_router.domain.case import CaseWindows
from casewire_router.domain.routing import CaseRouter
from casewire_router.domain.urgency import default_model
from casewire_router.message_service import MessageService, Rejected, RouterMetrics

from tests.unit.router.factories import message
from tests.unit.router.test_routing import RULES


@dataclass
class RecordedDeadLetters:
    sent: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str, error: str) -> None:
        self.sent.append((reason, error))

    async def send_many(self, rejected: Sequence[Rejected]) -> None:
        self.sent.extend((reason, error) for _, reason, error in rejected)


class StoreThatLosesPostgres(InMemoryMessageStore):
    """Its writes fail as when PostgreSQL goes away mid-transaction."""

    def save(self, *_: object) -> None:
        raise OSError("connection reset")


def new_store(
    store_class: type[InMemoryMessageStore] = InMemoryMessageStore,
) -> InMemoryMessageStore:
    amal = AgentState("amal", ["shipping", "care"], ["en"], 5, True, 0, None)
    return store_class(CaseWindows(), {"amal": amal})


def message_service(
    store: InMemoryMessageStore, dead_letters: RecordedDeadLetters
) -> MessageService:
    return MessageService(
        store, CaseRouter(RULES, default_model()), dead_letters, RouterMetrics(new_registry())
    )


def as_record(body: CanonicalMessage, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="casewire.messages.v1",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=body.conversation_id.encode(),
        value=body.model_dump_json().encode(),
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=[],
    )


def records(*texts: str) -> list[ConsumerRecord[bytes, bytes]]:
    return [as_record(message(text, pid=str(n), minutes=n), n) for n, text in enumerate(texts)]


async def test_a_batch_commits_its_case_with_its_events_and_its_processed_markers() -> None:
    store, dead_letters = new_store(), RecordedDeadLetters()
    await message_service(store, dead_letters).handle_records(records("where is my shipping?"))
    decoded = [decode_event(r.headers, r.value, r.key.encode()) for _, r in store.outbox]
    assert [event.type for event in decoded] == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    (case,) = store.cases.values()
    assert (case.team, case.assignee) == ("shipping", "amal")
    assert len(store.processed) == 1
    assert dead_letters.sent == []


async def test_a_redelivered_batch_changes_nothing() -> None:
    store, dead_letters = new_store(), RecordedDeadLetters()
    service = message_service(store, dead_letters)
    await service.handle_records(records("where is my shipping?"))
    await service.handle_records(records("where is my shipping?"))
    assert len(store.outbox) == 2
    assert len(store.cases) == 1


async def test_writes_failing_for_want_of_postgresql_are_retried_never_dead_lettered() -> None:
    store, dead_letters = new_store(StoreThatLosesPostgres), RecordedDeadLetters()
    with pytest.raises(OSError, match="connection reset"):
        await message_service(store, dead_letters).handle_records(records("hello", "any news?"))
    assert store.processed == set()  # not claimed: the redelivered batch is applied again
    assert store.outbox == []
    assert dead_letters.sent == []


async def test_a_burst_across_batches_opens_one_incident_and_raises_its_earlier_cases() -> None:
    store, dead_letters = new_store(), RecordedDeadLetters()
    service = message_service(store, dead_letters)
    threshold = CaseWindows().incident_threshold
    for n in range(threshold):
        customer = f"cust{n}"
        body = message(
            "outage: the app is down again",
            pid=f"p{n}",
            author=customer,
            conversation=f"x:brand:root{n}:{customer}",
            minutes=n,
        )
        await service.handle_records([as_record(body, n)])
    types = [decode_event(r.headers, r.value, r.key.encode()).type for _, r in store.outbox]
    assert types.count(ev.INCIDENT_OPENED) == 1
    assert len(store.cases) == threshold
    assert {case.priority for case in store.cases.values()} == {"P1"}
    assert all("incident" in case.tags for case in store.cases.values())


async def test_an_incident_quiet_for_a_whole_window_is_closed_on_the_timer() -> None:
    windows = CaseWindows(incident=timedelta(microseconds=1), incident_threshold=1)
    amal = AgentState("amal", ["shipping", "care"], ["en"], 5, True, 0, None)
    store = InMemoryMessageStore(windows, {"amal": amal})
    service = MessageService(
        store,
        CaseRouter(RULES, default_model(), windows),
        RecordedDeadLetters(),
        RouterMetrics(new_registry()),
    )
    await service.handle_records([as_record(message("outage: the app is down again"))])
    assert await service.close_quiet_incidents() == 1
    assert await service.close_quiet_incidents() == 0  # closed once
    types = [decode_event(r.headers, r.value, r.key.encode()).type for _, r in store.outbox]
    assert (types.count(ev.INCIDENT_OPENED), types.count(ev.INCIDENT_CLOSED)) == (1, 1)
