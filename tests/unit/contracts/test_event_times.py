"""Event times are refused unless timezone-aware and are written in UTC (`...Z`): the
canonical message's `sent_at`/`received_at`, every datetime field of the event models and the
CloudEvent `ce_time`. A naive time is a ValueError at construction, never a guess at a zone."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from casewire_common import events as ev
from casewire_common.events import encode_event
from casewire_common.messages import CanonicalMessage, message_id
from pydantic import BaseModel

ATHENS_WINTER = timezone(timedelta(hours=2))
NAIVE = datetime(2026, 3, 1, 14, 30)
AWARE_ATHENS = datetime(2026, 3, 1, 14, 30, tzinfo=ATHENS_WINTER)
SAME_INSTANT_UTC = "2026-03-01T12:30:00Z"


def message(**times: datetime) -> CanonicalMessage:
    return CanonicalMessage(
        id=message_id("x", "1"),
        platform="x",
        channel="dm",
        visibility="private",
        direction="inbound",
        account_id="brand",
        platform_message_id="1",
        conversation_id="x:brand:customer",
        author={"id": "customer"},  # type: ignore[arg-type]
        **({"sent_at": AWARE_ATHENS, "received_at": AWARE_ATHENS} | times),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("field", ["sent_at", "received_at"])
def test_a_canonical_message_with_a_naive_time_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="timezone"):
        message(**{field: NAIVE})


def test_a_canonical_message_is_written_in_utc() -> None:
    written = message().model_dump(mode="json")

    assert (written["sent_at"], written["received_at"]) == (SAME_INSTANT_UTC, SAME_INSTANT_UTC)


# A valid instance of every event model with time fields (times set per test).
VALID: dict[str, dict[str, Any]] = {
    "CaseSnapshot": {
        "id": "case-1",
        "conversation_id": "x:brand:customer",
        "platform": "x",
        "channel": "dm",
        "visibility": "private",
        "status": "queued",
        "priority": "P3",
        "urgency_score": 10,
        "team": "care",
        "assignee": None,
        "tags": [],
        "language": None,
    },
    "IncidentData": {
        "incident_id": "i-1",
        "topic": "outage",
        "status": "open",
        "case_count": 1,
        "added_case_ids": ["case-1"],
    },
    "SlaAlertData": {
        "case_id": "case-1",
        "policy_id": "standard",
        "clock": "first_response",
        "target_seconds": 3600,
        "team": "care",
        "priority": "P3",
    },
    "WatermarkData": {"topic": "casewire.messages.v1", "partitions": 1, "replica": "r-1"},
    "DecodedEvent": {"id": "e-1", "type": "t", "source": "s", "subject": None, "data": {}},
}


def event_time_fields() -> list[tuple[str, str]]:
    """Every field of the event models whose type holds a datetime."""
    return [
        (name, field_name)
        for name, model in inspect.getmembers(ev, inspect.isclass)
        if issubclass(model, BaseModel) and model.__module__ == ev.__name__
        for field_name, field in model.model_fields.items()
        if "datetime" in repr(field.annotation).lower()
    ]


def build(model: str, field: str, value: datetime) -> BaseModel:
    """The model with every time field at AWARE_ATHENS, and `field` at `value`."""
    times = {name: AWARE_ATHENS for owner, name in event_time_fields() if owner == model}
    fields = VALID[model] | times | {field: value}
    if model == "WatermarkData":  # per partition
        fields["watermarks"] = {0: fields["watermarks"]}
    built: BaseModel = getattr(ev, model)(**fields)
    return built


def test_every_event_model_with_times_is_checked_here() -> None:
    assert {model for model, _ in event_time_fields()} == set(VALID)


@pytest.mark.parametrize(
    ("model", "field"), event_time_fields(), ids=[".".join(f) for f in event_time_fields()]
)
def test_every_event_time_refuses_naive_and_is_kept_in_utc(model: str, field: str) -> None:
    with pytest.raises(ValueError, match="timezone"):
        build(model, field, NAIVE)
    written = build(model, field, AWARE_ATHENS).model_dump(mode="json")[field]
    assert written == ({"0": SAME_INSTANT_UTC} if model == "WatermarkData" else SAME_INSTANT_UTC)


def encode(time: datetime) -> ev.EventRecord:
    return encode_event(
        event_id="e-1",
        event_type=ev.CASE_CREATED,
        source="casewire/router",
        subject="case-1",
        time=time,
        data=ev.UrgencySignal(name="outage", weight=30),
    )


def test_a_cloudevent_with_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        encode(NAIVE)


def test_ce_time_is_written_in_utc() -> None:
    assert encode(AWARE_ATHENS).headers["ce_time"] == SAME_INSTANT_UTC.encode()
    assert encode(AWARE_ATHENS.astimezone(UTC)).headers["ce_time"] == SAME_INSTANT_UTC.encode()
