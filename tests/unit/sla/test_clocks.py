"""What case events do to SLA clocks, and which records are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka import ConsumerRecord
from casewire_common.events import (
    CASE_ASSIGNED,
    CASE_CREATED,
    CASE_RESPONDED,
    CaseEventData,
    EventRecord,
)
from casewire_sla.adapters.store import CaseEvent
from casewire_sla.domain.clocks import ClockFulfilment, ClockStart, clock_changes
from casewire_sla.domain.policies import parse_policy_set
from casewire_sla.entrypoints.consumer import decode_case_event

from tests.unit.sla.factories import case_event, snapshot

POLICIES = parse_policy_set(
    """
version: 1
calendars: [{id: always, always_open: true}]
policies:
  - {id: urgent, match: {priority: [P1]}, calendar: always, first_response: 15m,
     warn_at: [0.5, 0.8]}
  - {id: resolution-only, match: {priority: [P4]}, calendar: always, resolution: 1d}
  - {id: standard, match: {}, calendar: always, first_response: 1h}
"""
)
OPENED = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


def data(first_response: bool | None = None, **changes: object) -> CaseEventData:
    return CaseEventData(case=snapshot("c1", OPENED, **changes), first_response=first_response)


def test_created_case_starts_a_first_response_clock_at_its_opening() -> None:
    changes = clock_changes(POLICIES, CASE_CREATED, data(priority="P1", team="shipping"))
    assert changes == [
        ClockStart(
            case_id="c1",
            clock="first_response",
            policy_id="urgent",
            calendar_id="always",
            target=timedelta(minutes=15),
            started_at=OPENED,
            due_at=OPENED + timedelta(minutes=15),
            warnings=(
                (0.5, OPENED + timedelta(minutes=7, seconds=30)),
                (0.8, OPENED + timedelta(minutes=12)),
            ),
            team="shipping",
            priority="P1",
        )
    ]


def test_case_that_needs_no_action_starts_no_clock() -> None:
    assert clock_changes(POLICIES, CASE_CREATED, data(status="no_action")) == []


def test_policy_without_a_first_response_target_starts_no_clock() -> None:
    assert clock_changes(POLICIES, CASE_CREATED, data(priority="P4")) == []


def test_first_brand_reply_fulfils_the_clock_at_the_reply_time() -> None:
    replied = OPENED + timedelta(minutes=4)
    changes = clock_changes(
        POLICIES, CASE_RESPONDED, data(first_response=True, first_response_at=replied)
    )
    assert changes == [ClockFulfilment("c1", "first_response", replied)]


def test_later_brand_reply_changes_no_first_response_clock() -> None:
    replied = OPENED + timedelta(minutes=4)
    changes = clock_changes(
        POLICIES, CASE_RESPONDED, data(first_response=False, first_response_at=replied)
    )
    assert changes == []


def test_case_created_already_answered_starts_and_fulfils_its_clock() -> None:
    replied = OPENED + timedelta(minutes=1)
    changes = clock_changes(POLICIES, CASE_CREATED, data(first_response_at=replied))
    assert [type(change) for change in changes] == [ClockStart, ClockFulfilment]


def test_event_types_the_service_does_not_use_change_nothing() -> None:
    assert clock_changes(POLICIES, CASE_ASSIGNED, data()) == []


def consumer_record(
    record: EventRecord | None, headers: list[tuple[str, bytes]] | None = None
) -> ConsumerRecord[bytes, bytes]:
    if headers is None:
        headers = list(record.headers.items()) if record else []
    return ConsumerRecord(
        topic="casewire.case-events.v1",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=record.key.encode() if record else b"k",
        value=record.value if record else b"not json",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=1,
        headers=headers,
    )


def test_valid_case_event_decodes_with_its_id_and_data() -> None:
    record = case_event(CASE_CREATED, snapshot("c1", OPENED), event_id="evt-1")
    decoded = decode_case_event(consumer_record(record))
    assert isinstance(decoded, CaseEvent)
    assert decoded.id == "evt-1"
    assert decoded.data is not None
    assert decoded.data.case.id == "c1"


def test_record_without_cloudevent_headers_is_rejected_as_not_a_cloudevent() -> None:
    decoded = decode_case_event(consumer_record(None, headers=[]))
    assert isinstance(decoded, tuple)
    assert decoded[1] == "not_a_cloudevent"


def test_case_event_with_invalid_data_is_rejected_as_invalid_case_event() -> None:
    record = case_event(CASE_CREATED, snapshot("c1", OPENED))
    broken = record.model_copy(update={"value": b'{"case": {"id": "c1"}}'})
    decoded = decode_case_event(consumer_record(broken))
    assert isinstance(decoded, tuple)
    assert decoded[1] == "invalid_case_event"


def test_unused_event_type_is_kept_without_data_so_it_is_only_marked_processed() -> None:
    record = case_event(CASE_ASSIGNED, snapshot("c1", OPENED), event_id="evt-2")
    broken = record.model_copy(update={"value": b'{"anything": 1}'})
    decoded = decode_case_event(consumer_record(broken))
    assert decoded == CaseEvent("evt-2", CASE_ASSIGNED, None)
