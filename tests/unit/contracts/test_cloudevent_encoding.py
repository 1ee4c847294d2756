"""`encode_event` writes its Kafka binary-mode headers itself (for speed): they must be what
the CloudEvents SDK writes for the same event, byte for byte and in the same order, and read
back by the SDK as the same event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from casewire_common import events as ev
from casewire_common.events import EventRecord, decode_event, encode_event
from cloudevents.core.bindings.kafka import to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel

SNAPSHOT = ev.CaseSnapshot(
    id="2f1c1b9e-8a44-4c5e-9d6b-3f0a1e2d4c5b",
    conversation_id="x:brand:ελληνικά:1",
    platform="x",
    channel="mention",
    visibility="public",
    status="queued",
    priority="P2",
    urgency_score=55,
    team="care",
    assignee=None,
    tags=["outage", "ล่ม"],
    language="th",
    opened_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    first_response_at=None,
    resolved_at=None,
)


def with_sdk(
    *, event_id: str, event_type: str, source: str, subject: str, time: datetime, data: BaseModel
) -> EventRecord:
    event = CloudEvent(
        attributes={
            "id": event_id,
            "type": event_type,
            "source": source,
            "subject": subject,
            "time": time,
            "datacontenttype": "application/json",
        },
        data=data.__pydantic_serializer__.to_json(data),
    )
    message = to_binary(event, JSONFormat(), key_mapper=lambda _: subject)
    return EventRecord(key=subject, headers=message.headers, value=message.value)


@pytest.mark.parametrize(
    "time",
    [
        datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 30, 15, tzinfo=UTC),  # no fraction of a second
        datetime(2026, 3, 1, 14, 30, 15, 5, tzinfo=timezone(timedelta(hours=2))),
    ],
)
@pytest.mark.parametrize(
    ("event_type", "subject", "data"),
    [
        (ev.CASE_CREATED, SNAPSHOT.id, ev.CaseEventData(case=SNAPSHOT, message_id="m-1")),
        (
            ev.INCIDENT_OPENED,
            "incident/ünïcode",
            ev.IncidentData(
                incident_id="incident/ünïcode",
                topic="outage",
                status="open",
                opened_at=datetime(2026, 3, 1, tzinfo=UTC),
                last_seen_at=datetime(2026, 3, 1, tzinfo=UTC),
                case_count=1,
                added_case_ids=[SNAPSHOT.id],
            ),
        ),
    ],
)
def test_encoded_event_is_what_the_sdk_writes(
    time: datetime, event_type: str, subject: str, data: BaseModel
) -> None:
    fields = {
        "event_id": "4b0e6f9a-0c1d-4e2f-8a3b-5c6d7e8f9a0b",
        "event_type": event_type,
        "source": "casewire/router",
        "subject": subject,
        "time": time,
        "data": data,
    }

    ours = encode_event(**fields)  # type: ignore[arg-type]
    # ce_time is written in UTC, whatever zone the caller's instant is in.
    reference = with_sdk(**fields | {"time": time.astimezone(UTC)})  # type: ignore[arg-type]

    assert ours == reference
    assert list(ours.headers) == list(reference.headers)
    decoded = decode_event(ours.headers, ours.value, ours.key.encode())
    assert (decoded.id, decoded.type, decoded.subject, decoded.time) == (
        fields["event_id"],
        event_type,
        subject,
        time,
    )


@pytest.mark.parametrize("empty", ["event_id", "event_type", "source"])
def test_an_event_without_id_type_or_source_is_refused(empty: str) -> None:
    fields = {
        "event_id": "e-1",
        "event_type": ev.CASE_CREATED,
        "source": "casewire/router",
        "subject": SNAPSHOT.id,
        "time": datetime(2026, 3, 1, tzinfo=UTC),
        "data": ev.CaseEventData(case=SNAPSHOT),
        empty: "",
    }

    with pytest.raises(ValueError, match="must not be empty"):
        encode_event(**fields)  # type: ignore[arg-type]
