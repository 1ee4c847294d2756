"""Case events as the router publishes them, for SLA tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from casewire_common.events import (
    CaseEventData,
    CaseSnapshot,
    CaseStatus,
    EventRecord,
    Priority,
    encode_event,
)


def snapshot(case_id: str, opened_at: datetime, **changes: Any) -> CaseSnapshot:
    fields: dict[str, Any] = {
        "id": case_id,
        "conversation_id": f"x:brand:{case_id}",
        "platform": "x",
        "channel": "mention",
        "visibility": "public",
        "status": "queued",
        "priority": "P2",
        "urgency_score": 40,
        "team": "care",
        "assignee": None,
        "tags": [],
        "language": "en",
        "opened_at": opened_at,
        "first_response_at": None,
        "resolved_at": None,
    }
    fields.update(changes)
    return CaseSnapshot.model_validate(fields)


def case_event(
    event_type: str,
    case: CaseSnapshot,
    *,
    first_response: bool | None = None,
    event_id: str = "",
    time: datetime | None = None,
    previous_status: CaseStatus | None = None,
    previous_priority: Priority | None = None,
) -> EventRecord:
    data = CaseEventData(
        case=case,
        first_response=first_response,
        previous_status=previous_status,
        previous_priority=previous_priority,
    )
    return encode_event(
        event_id=event_id or str(uuid.uuid4()),
        event_type=event_type,
        source="casewire/router",
        subject=case.id,
        time=time or datetime.now(UTC),
        data=data,
    )
