"""The routing service's batch transaction, with fakes for PostgreSQL, Kafka and the relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from casewire_common import events as ev
from casewire_common import unit_of_work
from casewire_common.events import EventRecord, decode_event
from casewire_common.metrics import new_registry
from casewire_router.adapters import repository
from casewire_router.domain.assignment import AgentState
from casewire_router.domain.batch import BatchState
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.routing import CaseRouter
from casewire_router.domain.urgency import default_model
from casewire_router.service import RouterMetrics, RoutingService

from tests.unit.router.factories import message
from tests.unit.router.test_routing import RULES


@dataclass
class Recorder:
    """What the service asked of PostgreSQL, in order, and what it queued in the outbox."""

    log: list[str] = field(default_factory=list)
    outbox: list[tuple[str, EventRecord]] = field(default_factory=list)
    dead_letters: list[tuple[str, str]] = field(default_factory=list)


class FakeTransaction:
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    async def __aenter__(self) -> None:
        self._recorder.log.append("begin")

    async def __aexit__(self, kind: object, *_: object) -> None:
        self._recorder.log.append("rollback" if kind is not None else "commit")


class FakeConnection:
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def transaction(self) -> FakeTransaction:
        return FakeTransaction(self._recorder)


class FakePool:
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConnection]:
        yield FakeConnection(self._recorder)


class FakeDatabase:
    def __init__(self, recorder: Recorder) -> None:
        self.pool = FakePool(recorder)


class FakeDeadLetters:
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    async def send(self, record: object, reason: str, error: str) -> None:
        self._recorder.dead_letters.append((reason, error))

    async def send_many(self, rejected: Sequence[tuple[object, str, str]]) -> None:
        self._recorder.dead_letters.extend((reason, error) for _, reason, error in rejected)


class FakeRelay:
    def wake(self) -> None:
        pass


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """The repository and the outbox replaced by fakes that record what they were asked."""
    recorder = Recorder()

    async def claim_new(_: object, messages: Sequence[Any]) -> list[Any]:
        recorder.log.append("claim")
        return list(messages)

    async def load_batch_state(*_: object) -> BatchState:
        return BatchState(
            agents={"amal": AgentState("amal", ["shipping", "care"], ["en"], 5, True, 0, None)}
        )

    async def save_outcome(_: object, outcome: RoutingOutcome, now: object) -> None:
        recorder.log.append("save:start")
        await asyncio.sleep(0.01)  # PostgreSQL at work
        recorder.log.append("save:end")

    async def add_to_outbox(_: object, schema: str, records: list[Any]) -> None:
        recorder.log.append(f"outbox:{len(records)}")
        recorder.outbox.extend(records)

    monkeypatch.setattr(repository, "claim_new", claim_new)
    monkeypatch.setattr(repository, "load_batch_state", load_batch_state)
    monkeypatch.setattr(repository, "save_outcome", save_outcome)
    monkeypatch.setattr(unit_of_work, "add_to_outbox", add_to_outbox)
    return recorder


def routing_service(recorder: Recorder) -> RoutingService:
    return RoutingService(
        FakeDatabase(recorder),  # type: ignore[arg-type]
        CaseRouter(RULES, default_model()),
        FakeDeadLetters(recorder),  # type: ignore[arg-type]
        FakeRelay(),  # type: ignore[arg-type]
        RouterMetrics(new_registry()),
    )


def records(*texts: str) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(
            topic="casewire.messages.v1",
            partition=0,
            offset=n,
            timestamp=0,
            timestamp_type=0,
            key=b"x:brand:root1:cust1",
            value=message(text, pid=str(n), minutes=n).model_dump_json().encode(),
            checksum=None,
            serialized_key_size=0,
            serialized_value_size=0,
            headers=[],
        )
        for n, text in enumerate(texts)
    ]


async def test_events_are_queued_after_the_case_writes_within_the_batch_transaction(
    recorder: Recorder,
) -> None:
    await routing_service(recorder).handle_records(records("where is my shipping?"))
    assert recorder.log == ["begin", "claim", "save:start", "save:end", "outbox:2", "commit"]
    decoded = [decode_event(r.headers, r.value, r.key.encode()) for _, r in recorder.outbox]
    assert [event.type for event in decoded] == [ev.CASE_CREATED, ev.CASE_ASSIGNED]


async def test_writes_failing_for_want_of_postgresql_are_retried_never_dead_lettered(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def save_outcome(*_: object) -> None:
        await asyncio.sleep(0)
        raise OSError("connection reset")

    monkeypatch.setattr(repository, "save_outcome", save_outcome)
    with pytest.raises(OSError, match="connection reset"):
        await routing_service(recorder).handle_records(records("hello", "any news?"))
    assert recorder.log == ["begin", "claim", "rollback"]
    assert recorder.outbox == []
    assert recorder.dead_letters == []
