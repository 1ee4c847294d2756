"""Clocks over a case's life, on the real broker and PostgreSQL: pauses, resolution, reopen
and a change of priority, each seen in the alerts the service publishes."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from casewire_common.events import (
    CASE_ESCALATED,
    CASE_MESSAGE_ADDED,
    CASE_PRIORITY_CHANGED,
    CASE_RESPONDED,
    CASE_STATUS_CHANGED,
    SLA_BREACHED,
    SLA_CLOCK_FULFILLED,
    SLA_CLOCK_PAUSED,
    SLA_CLOCK_RESUMED,
    SLA_CLOCK_STARTED,
)

from tests.integration.sla.conftest import (
    ON_TIME,
    Case,
    case_on_running_sla,
    instant,
    sla_settings,
)
from tests.unit.sla.factories import case_event, snapshot

pytestmark = pytest.mark.integration

POLICIES = """
version: 1
calendars: [{id: always, always_open: true}]
policies:
  - {id: urgent, match: {priority: [P1]}, calendar: always, first_response: 2s}
  - {id: standard, match: {}, calendar: always, first_response: 1h, next_response: 2s,
     resolution: 3s, pause_on: [pending]}
"""


def running_case(
    tmp_path: Path, kafka_bootstrap: str, database_url: str, unique: str, name: str
) -> AbstractAsyncContextManager[Case]:
    settings = sla_settings(tmp_path, kafka_bootstrap, database_url, unique, POLICIES)
    return case_on_running_sla(settings, f"case-{name}-{unique}")


async def test_pause_and_resume_move_the_resolution_breach_by_the_paused_time(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    async with running_case(tmp_path, kafka_bootstrap, migrated_url, unique, "paused") as case:
        opened = case.opened_at
        await case.open()
        await case.send(
            case_event(
                CASE_STATUS_CHANGED,
                snapshot(case.id, opened, status="pending"),
                previous_status="queued",
                time=opened + timedelta(milliseconds=500),
            )
        )
        await case.send(
            case_event(
                CASE_STATUS_CHANGED,
                snapshot(case.id, opened, status="assigned"),
                previous_status="pending",
                time=opened + timedelta(milliseconds=1500),
            )
        )
        await case.read(lambda a: bool(a.of_type(SLA_BREACHED)))

    resolution = [
        event.type for event, _ in case.alerts.events if event.data["clock"] == "resolution"
    ]
    assert resolution == [SLA_CLOCK_STARTED, SLA_CLOCK_PAUSED, SLA_CLOCK_RESUMED, SLA_BREACHED]
    ((breach, reached_kafka),) = case.alerts.of_type(SLA_BREACHED)
    moved_due = opened + timedelta(seconds=4)  # 3 s target + 1 s paused
    assert instant(breach.data["due_at"]) == moved_due
    assert timedelta(0) <= reached_kafka - moved_due < ON_TIME
    ((paused, _),) = case.alerts.of_type(SLA_CLOCK_PAUSED)
    assert paused.data["elapsed_seconds"] == pytest.approx(0.5)
    ((resumed, _),) = case.alerts.of_type(SLA_CLOCK_RESUMED)
    assert instant(resumed.data["due_at"]) == moved_due


async def test_customer_message_after_resolution_starts_no_next_response_clock(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    async with running_case(tmp_path, kafka_bootstrap, migrated_url, unique, "resolved") as case:
        opened = case.opened_at
        replied = opened + timedelta(milliseconds=100)
        answered = {"first_response_at": replied}
        await case.open()
        await case.send(
            case_event(
                CASE_RESPONDED,
                snapshot(case.id, opened, **answered),
                first_response=True,
                time=replied,
            )
        )
        resolved = snapshot(case.id, opened, status="resolved", resolved_at=replied, **answered)
        await case.send(case_event(CASE_STATUS_CHANGED, resolved, previous_status="assigned"))
        await case.send(case_event(CASE_MESSAGE_ADDED, resolved))
        # Past the instant a next_response clock started by that message would breach.
        await case.read_past(datetime.now(UTC) + timedelta(seconds=2))

    assert case.clocks(SLA_CLOCK_STARTED) == ["first_response", "resolution"]
    assert sorted(case.clocks(SLA_CLOCK_FULFILLED)) == ["first_response", "resolution"]
    assert case.alerts.of_type(SLA_BREACHED) == []


async def test_reopen_starts_resolution_and_next_response_again_from_the_reopen(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    async with running_case(tmp_path, kafka_bootstrap, migrated_url, unique, "reopened") as case:
        opened = case.opened_at
        replied = opened + timedelta(milliseconds=100)
        answered = {"first_response_at": replied}
        await case.open(**answered)
        await case.send(
            case_event(
                CASE_STATUS_CHANGED,
                snapshot(case.id, opened, status="resolved", resolved_at=replied, **answered),
                previous_status="assigned",
            )
        )
        reopened_at = datetime.now(UTC)
        await case.send(
            case_event(
                CASE_STATUS_CHANGED,
                snapshot(case.id, opened, status="reopened", **answered),
                previous_status="resolved",
                time=reopened_at,
            )
        )
        await case.read(lambda a: len(a.of_type(SLA_BREACHED)) == 2)

    assert case.clocks(SLA_CLOCK_STARTED) == [
        "first_response",
        "resolution",
        "resolution",
        "next_response",
    ]
    breaches = {event.data["clock"]: event for event, _ in case.alerts.of_type(SLA_BREACHED)}
    assert instant(breaches["next_response"].data["due_at"]) == reopened_at + timedelta(seconds=2)
    assert instant(breaches["resolution"].data["started_at"]) == reopened_at
    assert instant(breaches["resolution"].data["due_at"]) == reopened_at + timedelta(seconds=3)


async def test_priority_change_mid_clock_selects_the_policy_again_and_keeps_the_start(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    async with running_case(tmp_path, kafka_bootstrap, migrated_url, unique, "escalated") as case:
        opened = case.opened_at
        await case.open(priority="P3")
        await case.send(
            case_event(
                CASE_PRIORITY_CHANGED,
                snapshot(case.id, opened, priority="P1"),
                previous_priority="P3",
                time=opened + timedelta(milliseconds=300),
            )
        )
        await case.read(lambda a: bool(a.of_type(SLA_BREACHED)))

    ((started, _),) = [
        (event, at)
        for event, at in case.alerts.of_type(SLA_CLOCK_STARTED)
        if event.data["clock"] == "first_response"
    ]
    assert started.data["policy_id"] == "standard"
    ((breach, reached_kafka),) = case.alerts.of_type(SLA_BREACHED)
    assert (breach.data["clock"], breach.data["policy_id"]) == ("first_response", "urgent")
    assert (breach.data["priority"], breach.data["target_seconds"]) == ("P1", 2)
    assert instant(breach.data["started_at"]) == opened
    assert instant(breach.data["due_at"]) == opened + timedelta(seconds=2)
    assert timedelta(0) <= reached_kafka - (opened + timedelta(seconds=2)) < ON_TIME


async def test_escalation_to_p1_selects_the_urgent_policy_and_breaches_from_the_opening(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    async with running_case(
        tmp_path, kafka_bootstrap, migrated_url, unique, "escalated-by-rule"
    ) as case:
        opened = case.opened_at
        await case.open(priority="P3")
        await case.send(
            case_event(
                CASE_ESCALATED,
                snapshot(case.id, opened, priority="P1", team="leads"),
                previous_priority="P3",
                time=opened + timedelta(milliseconds=300),
            )
        )
        await case.read(lambda a: bool(a.of_type(SLA_BREACHED)))

    ((breach, _),) = case.alerts.of_type(SLA_BREACHED)
    assert (breach.data["clock"], breach.data["policy_id"]) == ("first_response", "urgent")
    assert (breach.data["priority"], breach.data["team"]) == ("P1", "leads")
    assert instant(breach.data["due_at"]) == opened + timedelta(seconds=2)
