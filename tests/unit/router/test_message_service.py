"""The message service's batch transaction, on the in-memory store and a recording dead-letter
topic: no PostgreSQL, no Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import ConsumerRecord
from casewire_common import events as ev
from casewire_common.events import SlaAlertData, decode_event, encode_event
from casewire_common.messages import CanonicalMessage
from casewire_common.metrics import new_registry
from casewire_router.adapters.memory import InMemoryMessageStore
from casewire_router.domain.assignment import AgentState
from casewire_router.domain.case import CaseWindows
from casewire_router.domain.routing import CaseRouter, case_router_for
from casewire_router.domain.urgency import default_model
from casewire_router.message_service import MessageService, Rejected, RouterMetrics

from tests.unit.router.factories import message
from tests.unit.router.test_routing import RULES
from tests.unit.router.test_threading import RULES as THREADING_RULES
from tests.unit.router.test_threading import WINDOWS


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


def alert_record(
    event_type: str, case_id: str, event_id: str, retracts: str | None = None
) -> ConsumerRecord[bytes, bytes]:
    now = datetime.now(UTC)
    record = encode_event(
        event_id=event_id,
        event_type=event_type,
        source="casewire/sla",
        subject=case_id,
        time=now,
        data=SlaAlertData(
            case_id=case_id,
            policy_id="standard",
            clock="first_response",
            target_seconds=900,
            started_at=now - timedelta(minutes=15),
            due_at=now,
            fraction=1.0,
            team="care",
            priority="P3",
            retracted_alert_id=retracts,
        ),
    )
    return ConsumerRecord(
        topic="casewire.sla-alerts.v1",
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=case_id.encode(),
        value=record.value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=list(record.headers.items()),
    )


async def test_a_breach_escalates_once_and_its_retraction_undoes_it() -> None:
    agents = {"lena": AgentState("lena", ["leads"], ["en"], 2, True, 0, None)}
    store = InMemoryMessageStore(WINDOWS, agents)
    dead_letters = RecordedDeadLetters()
    service = MessageService(
        store,
        case_router_for(THREADING_RULES, WINDOWS),
        dead_letters,
        RouterMetrics(new_registry()),
    )
    await service.handle_records([as_record(message("hello, any news?", channel="dm"))])
    (case,) = store.cases.values()
    assert (case.team, case.assignee) == ("care", None)
    breach = alert_record(ev.SLA_BREACHED, case.id, "breach-1")
    await service.handle_alerts([breach])
    await service.handle_alerts([breach])  # redelivered: changes nothing
    assert (case.team, case.priority, case.assignee) == ("leads", "P1", "lena")
    assert "escalated" in case.tags
    await service.handle_alerts(
        [alert_record(ev.SLA_BREACH_RETRACTED, case.id, "retraction-1", retracts="breach-1")]
    )
    assert (case.team, case.assignee) == ("care", None)
    assert "escalated" not in case.tags
    assert agents["lena"].load == 0
    unknown = alert_record(ev.SLA_BREACHED, "no-such-case", "breach-2")
    await service.handle_alerts([unknown])
    assert dead_letters.sent == [("unknown_case", "no case no-such-case")]
