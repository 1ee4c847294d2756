"""The demo summary: counters and response times from decoded Kafka records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from casewire_common import events, topics
from casewire_dev.care_desk import DeskProgress
from casewire_dev.replay import ReplayProgress
from casewire_dev.summary import DemoSummary, duration, one_line, render
from pydantic import BaseModel
from rich.console import Console

OPENED = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def snapshot(case_id: str, **changes: Any) -> events.CaseSnapshot:
    fields: dict[str, Any] = {
        "id": case_id,
        "conversation_id": f"x:AcmeCare:{case_id}:42",
        "platform": "x",
        "channel": "mention",
        "visibility": "public",
        "status": "queued",
        "priority": "P3",
        "urgency_score": 10,
        "team": "care",
        "assignee": None,
        "tags": [],
        "language": "en",
        "opened_at": OPENED,
        "first_response_at": None,
        "resolved_at": None,
    }
    return events.CaseSnapshot(**{**fields, **changes})


def record(event_type: str, data: BaseModel, event_id: str) -> events.EventRecord:
    return events.encode_event(
        event_id=event_id,
        event_type=event_type,
        source="test",
        subject=event_id.split("/")[0],
        time=OPENED,
        data=data,
    )


def feed(summary: DemoSummary, topic: str, item: events.EventRecord) -> None:
    summary.add_record(topic, list(item.headers.items()), item.value, item.key.encode())


def case_event(
    summary: DemoSummary, event_type: str, event_id: str, first: bool | None = None, **case: Any
) -> None:
    data = events.CaseEventData(case=snapshot(event_id.split("/")[0], **case), first_response=first)
    feed(summary, topics.CASE_EVENTS, record(event_type, data, event_id))


def sla_alert(summary: DemoSummary, event_type: str, event_id: str, priority: str) -> None:
    data = events.SlaAlertData(
        case_id=event_id.split("/")[0],
        policy_id="urgent",
        clock="first_response",
        target_seconds=15,
        started_at=OPENED,
        due_at=OPENED + timedelta(seconds=15),
        fraction=1.0,
        team="incidents",
        priority=priority,
    )
    feed(summary, topics.SLA_ALERTS, record(event_type, data, event_id))


def test_cases_are_counted_by_their_latest_team_priority_and_status() -> None:
    summary = DemoSummary()
    case_event(summary, events.CASE_CREATED, "a/1", team="shipping", priority="P3")
    case_event(summary, events.CASE_ASSIGNED, "a/2", team="shipping", status="assigned")
    case_event(summary, events.CASE_CREATED, "b/1", team="incidents", priority="P1")
    case_event(summary, events.CASE_CREATED, "c/1", status="no_action", priority="P4")

    assert len(summary.cases) == 3
    assert summary.cases_by_team == {"shipping": 1, "incidents": 1, "care": 1}
    assert summary.cases_by_priority == {"P3": 1, "P1": 1, "P4": 1}
    assert summary.cases_by_status == {"assigned": 1, "queued": 1, "no_action": 1}


def test_first_response_times_come_from_first_responses_only() -> None:
    summary = DemoSummary()
    for index, minutes in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]):
        case_event(
            summary,
            events.CASE_RESPONDED,
            f"case{index}/1",
            first=True,
            first_response_at=OPENED + timedelta(minutes=minutes),
        )
    case_event(
        summary,
        events.CASE_RESPONDED,
        "case0/2",
        first=False,
        first_response_at=OPENED + timedelta(minutes=1),
    )

    assert len(summary.first_response_seconds) == 10
    assert summary.first_response_median == 330.0
    assert summary.first_response_p90 == 540.0


def test_a_redelivered_event_is_counted_once() -> None:
    summary = DemoSummary()
    for _ in range(2):
        case_event(
            summary,
            events.CASE_RESPONDED,
            "a/9",
            first=True,
            first_response_at=OPENED + timedelta(seconds=30),
        )
        sla_alert(summary, events.SLA_BREACHED, "a/10", "P1")
    assert summary.first_response_seconds == [30.0]
    assert summary.sla_breaches == 1


def test_sla_warnings_and_breaches_are_counted_apart_from_the_clock_audit_trail() -> None:
    summary = DemoSummary()
    sla_alert(summary, events.SLA_CLOCK_STARTED, "a/1", "P1")
    sla_alert(summary, events.SLA_WARNING, "a/2", "P1")
    sla_alert(summary, events.SLA_WARNING, "a/3", "P1")
    sla_alert(summary, events.SLA_BREACHED, "a/4", "P1")
    sla_alert(summary, events.SLA_BREACHED, "b/1", "P3")
    assert (summary.sla_warnings, summary.sla_breaches) == (2, 2)
    assert summary.breaches_by_priority == {"P1": 1, "P3": 1}


def test_messages_are_counted_by_direction_and_dead_letters_by_topic() -> None:
    summary = DemoSummary()
    for direction in ("inbound", "inbound", "outbound"):
        summary.add_record(topics.MESSAGES, [], json.dumps({"direction": direction}).encode(), None)
    summary.add_record(topics.dlq(topics.MESSAGES), [], b"{}", None)
    summary.add_record(topics.dlq(topics.MESSAGES), [], b"not json", None)
    assert (summary.messages_inbound, summary.messages_outbound) == (2, 1)
    assert summary.dead_letters == {"messages.v1": 2}


def test_records_that_are_not_events_are_counted_as_unreadable() -> None:
    summary = DemoSummary()
    summary.add_record(topics.CASE_EVENTS, [], b"{}", None)
    summary.add_record(topics.MESSAGES, [], b"[1]", None)
    assert summary.unreadable == 2
    assert not summary.cases


def test_durations_read_like_a_clock() -> None:
    assert [duration(s) for s in (None, 42.4, 725, 11220)] == ["-", "42s", "12m05s", "3h07m"]


def test_one_line_shows_the_headline_figures() -> None:
    summary = DemoSummary()
    case_event(summary, events.CASE_CREATED, "a/1", team="billing", status="assigned")
    sla_alert(summary, events.SLA_BREACHED, "a/2", "P3")
    desk = DeskProgress(resolved=3, already_closed=1, failed=2)
    line = one_line(summary, ReplayProgress(planned=10, posted=4), desk, elapsed=65)
    assert line.startswith("[1m05s] posted 4/10 rejected 0")
    assert "cases 1 assigned 1 queued 0 resolved 0 reopened 0" in line
    assert "desk resolved 3 already closed 1 failed 2" in line
    assert "teams billing 1" in line
    assert "sla warnings 0 breaches 1" in line


def test_resolving_frees_a_place_and_the_drained_case_moves_from_queued_to_assigned() -> None:
    summary = DemoSummary()
    case_event(summary, events.CASE_CREATED, "a/1", status="assigned", assignee="sam")
    case_event(summary, events.CASE_CREATED, "b/1", status="queued")
    assert summary.cases_by_status == {"assigned": 1, "queued": 1}

    resolved_at = OPENED + timedelta(minutes=5)
    case_event(
        summary, events.CASE_STATUS_CHANGED, "a/2", status="resolved", resolved_at=resolved_at
    )
    case_event(summary, events.CASE_ASSIGNED, "b/2", status="assigned", assignee="sam")
    assert summary.cases_by_status == {"resolved": 1, "assigned": 1}

    # The customer writes again: reopened, waiting in the queue, then taken again.
    case_event(summary, events.CASE_STATUS_CHANGED, "a/3", status="reopened")
    assert summary.cases_by_status == {"reopened": 1, "assigned": 1}
    case_event(summary, events.CASE_ASSIGNED, "a/4", status="assigned", assignee="sam")
    case_event(summary, events.CASE_STATUS_CHANGED, "b/3", status="no_action")
    assert summary.cases_by_status == {"assigned": 1, "no_action": 1}
    line = one_line(summary, ReplayProgress(planned=1), DeskProgress(), elapsed=1)
    assert "cases 2 assigned 1 queued 0 resolved 0 reopened 0" in line


def test_the_care_desk_finds_a_conversations_case_and_its_latest_status() -> None:
    summary = DemoSummary()
    assert summary.case_of("x:AcmeCare:a:42") is None
    case_event(summary, events.CASE_CREATED, "a/1")
    assert summary.case_of("x:AcmeCare:a:42") == ("a", "queued")
    case_event(summary, events.CASE_STATUS_CHANGED, "a/2", status="resolved")
    assert summary.case_of("x:AcmeCare:a:42") == ("a", "resolved")


def test_a_merged_conversation_leads_to_the_case_it_joined() -> None:
    summary = DemoSummary()
    data = events.CaseEventData(case=snapshot("a"), merged_conversation_id="x:AcmeCare:dm:42")
    feed(summary, topics.CASE_EVENTS, record(events.CASE_MERGED, data, "a/2"))
    assert summary.case_of("x:AcmeCare:dm:42") == ("a", "queued")


def test_incidents_on_the_case_topic_are_counted_not_taken_for_unreadable_cases() -> None:
    summary = DemoSummary()
    for event_type, event_id in (
        (events.INCIDENT_OPENED, "i1/1"),
        (events.INCIDENT_UPDATED, "i1/2"),
        (events.INCIDENT_OPENED, "i2/1"),
    ):
        incident = event_id.split("/")[0]
        data = events.IncidentData(
            incident_id=incident,
            topic="outage",
            status="open",
            opened_at=OPENED,
            last_seen_at=OPENED,
            case_count=2,
            added_case_ids=["b"],
        )
        feed(summary, topics.CASE_EVENTS, record(event_type, data, event_id))
    assert summary.incidents == {"i1", "i2"}
    assert summary.unreadable == 0
    assert not summary.cases


def test_the_live_view_shows_resolved_cases_and_the_care_desk() -> None:
    summary = DemoSummary()
    case_event(summary, events.CASE_CREATED, "a/1", status="assigned")
    case_event(summary, events.CASE_CREATED, "b/1", status="queued")
    case_event(summary, events.CASE_CREATED, "c/1", status="resolved")
    case_event(summary, events.CASE_CREATED, "d/1", status="pending")
    desk = DeskProgress(resolved=1, already_closed=2, failed=1, last_failure="resolve c: 404")
    console = Console(record=True, width=200)
    console.print(render(summary, ReplayProgress(planned=4), desk, speed=60, elapsed=3))
    text = console.export_text()
    assert "4: assigned 1, queued 1, resolved 1, other 1" in text
    assert "resolved 1, already closed 2, failed 1" in text
    assert "resolve c: 404" in text
