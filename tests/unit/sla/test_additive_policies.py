"""Additive policies: clocks that run beside the contract's (e.g. a channel expectation)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from casewire_common.events import (
    CASE_ASSIGNED,
    CASE_CREATED,
    CASE_MESSAGE_ADDED,
    CASE_PRIORITY_CHANGED,
    CASE_RESPONDED,
    CASE_STATUS_CHANGED,
    SLA_BREACHED,
    SLA_CLOCK_STARTED,
    CaseEventData,
    CaseStatus,
    ClockName,
)
from casewire_sla.adapters.alerts import alert_event_id
from casewire_sla.domain.clock_record import ClockRecord
from casewire_sla.domain.clocks import (
    ClockFulfilment,
    ClockPause,
    ClockReselection,
    ClockStart,
    OpenClock,
    clock_changes,
    clocks_at_opening,
    rederive,
)
from casewire_sla.domain.policies import (
    PolicyError,
    parse_policy_set,
    select_additive_policies,
    select_policy,
)
from casewire_sla.entrypoints.cli import main

from tests.unit.sla.factories import snapshot

POLICY_TEXT = """
version: 1
calendars:
  - {id: always, always_open: true}
  - {id: office, timezone: Europe/Athens, hours: {mon-fri: ["09:00-17:00"]}}
policies:
  - {id: public-x, additive: true, match: {platform: [x], visibility: [public]},
     calendar: always, first_response: 1h, next_response: 1h, warn_at: [0.5]}
  - {id: urgent, match: {priority: [P1]}, calendar: always, first_response: 15m,
     resolution: 4h}
  - {id: vip-desk, additive: true, match: {tags: [vip]}, calendar: office,
     resolution: 2h, pause_on: [pending]}
  - {id: standard, match: {}, calendar: office, first_response: 4h, next_response: 4h,
     resolution: 1d, pause_on: [pending]}
"""
POLICIES = parse_policy_set(POLICY_TEXT)
OPENED = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)  # a Monday, 11:00 in Athens


@dataclass(frozen=True)
class Case:
    priority: str = "P2"
    team: str = "care"
    platform: str = "x"
    channel: str = "mention"
    visibility: str = "public"
    tags: list[str] = field(default_factory=list)


def data(
    first_response: bool | None = None, previous_status: CaseStatus | None = None, **changes: object
) -> CaseEventData:
    return CaseEventData(
        case=snapshot("c1", OPENED, **changes),
        first_response=first_response,
        previous_status=previous_status,
    )


def open_clock(clock: ClockName, policy_id: str, **changes: object) -> OpenClock:
    policy = next(p for p in POLICIES.policies if p.id == policy_id)
    target = policy.target(clock)
    assert target is not None
    fields: dict[str, object] = {
        "clock": clock,
        "policy_id": policy_id,
        "calendar_id": policy.calendar,
        "target": target,
        "started_at": OPENED,
        "team": "care",
        "priority": "P2",
        "additive": policy.additive,
    }
    fields.update(changes)
    return OpenClock(**fields)  # type: ignore[arg-type]


def track_of(change: object) -> tuple[str, str | None]:
    return change.clock, change.additive_policy  # type: ignore[attr-defined]


# --- the file ------------------------------------------------------------------------------


def test_the_contract_is_the_first_non_additive_match_and_additive_ones_apply_beside_it() -> None:
    public_vip_p1 = Case(priority="P1", tags=["vip"])
    assert select_policy(POLICIES.policies, public_vip_p1).id == "urgent"  # type: ignore[union-attr]
    assert [p.id for p in select_additive_policies(POLICIES.policies, public_vip_p1)] == [
        "public-x",
        "vip-desk",
    ]
    private_dm = Case(channel="dm", visibility="private")
    assert select_policy(POLICIES.policies, private_dm).id == "standard"  # type: ignore[union-attr]
    assert select_additive_policies(POLICIES.policies, private_dm) == []


def test_additive_policy_without_any_clock_target_is_refused_naming_it() -> None:
    text = """
version: 1
calendars: [{id: always, always_open: true}]
policies:
  - {id: watch-x, additive: true, match: {platform: [x]}, calendar: always, warn_at: [0.5]}
  - {id: standard, calendar: always, first_response: 1h}
"""
    with pytest.raises(PolicyError) as caught:
        parse_policy_set(text, "t.yaml")
    assert caught.value.errors == [
        "policy 'watch-x': an additive policy must set at least one of first_response,"
        " next_response, resolution: without one it would change nothing"
    ]


def test_additive_must_be_a_boolean() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy_set(
            POLICY_TEXT.replace("vip-desk, additive: true", "vip-desk, additive: often")
        )
    assert [error.split(":")[0] for error in caught.value.errors] == ["policy 'vip-desk'"]


# --- clocks ----------------------------------------------------------------------------------


def test_opening_starts_the_contract_clocks_then_each_additive_policy_clocks() -> None:
    starts = clocks_at_opening(POLICIES, "c1", Case(tags=["vip"]), OPENED)
    assert [(s.policy_id, s.clock, s.additive, s.due_at) for s in starts] == [
        ("standard", "first_response", False, OPENED + timedelta(hours=4)),
        ("standard", "resolution", False, OPENED + timedelta(days=3)),  # 8 open hours a day
        ("public-x", "first_response", True, OPENED + timedelta(hours=1)),
        ("vip-desk", "resolution", True, OPENED + timedelta(hours=2)),
    ]
    assert starts[2].warnings == ((0.5, OPENED + timedelta(minutes=30)),)


def test_one_brand_reply_fulfils_the_first_response_clock_of_every_policy() -> None:
    replied = OPENED + timedelta(minutes=20)
    running = [open_clock("first_response", "standard"), open_clock("first_response", "public-x")]
    event = data(first_response=True, first_response_at=replied)
    changes = clock_changes(POLICIES, CASE_RESPONDED, event, running, replied)
    assert changes == [
        ClockFulfilment("c1", "first_response", replied),
        ClockFulfilment("c1", "first_response", replied, additive_policy="public-x"),
    ]


def test_case_created_already_answered_fulfils_the_first_response_of_every_policy() -> None:
    replied = OPENED + timedelta(minutes=2)
    changes = clock_changes(POLICIES, CASE_CREATED, data(first_response_at=replied), [], OPENED)
    fulfilled = [track_of(c) for c in changes if isinstance(c, ClockFulfilment)]
    assert fulfilled == [("first_response", None), ("first_response", "public-x")]


def test_customer_message_after_a_reply_starts_next_response_in_every_policy_that_sets_it() -> None:
    written = OPENED + timedelta(hours=2)
    event = data(first_response_at=OPENED + timedelta(minutes=5))
    running = [open_clock("resolution", "standard")]
    changes = clock_changes(POLICIES, CASE_MESSAGE_ADDED, event, running, written)
    assert [(c.policy_id, c.clock) for c in changes if isinstance(c, ClockStart)] == [
        ("standard", "next_response"),
        ("public-x", "next_response"),
    ]


def test_pending_pauses_only_the_clocks_whose_policy_pauses_on_it() -> None:
    event = data(status="pending", previous_status="assigned", tags=["vip"], platform="facebook")
    running = [open_clock("resolution", "standard"), open_clock("resolution", "vip-desk")]
    at = OPENED + timedelta(minutes=30)
    assert clock_changes(POLICIES, CASE_STATUS_CHANGED, event, running, at) == [
        ClockPause("c1", "resolution", at),
        ClockPause("c1", "resolution", at, additive_policy="vip-desk"),
    ]


def test_resolving_ends_the_clocks_of_every_policy() -> None:
    resolved = OPENED + timedelta(hours=1)
    event = data(status="resolved", previous_status="assigned", resolved_at=resolved)
    running = [
        open_clock("first_response", "standard"),
        open_clock("first_response", "public-x"),
    ]
    changes = clock_changes(POLICIES, CASE_STATUS_CHANGED, event, running, resolved)
    assert changes == [
        ClockFulfilment("c1", "first_response", resolved, by_reply=False),
        ClockFulfilment(
            "c1", "first_response", resolved, by_reply=False, additive_policy="public-x"
        ),
    ]


def test_reopen_starts_the_clocks_of_every_policy_that_applies_at_the_reopen() -> None:
    reopened = OPENED + timedelta(days=1)
    event = data(status="reopened", previous_status="resolved", tags=["vip"])
    changes = clock_changes(POLICIES, CASE_STATUS_CHANGED, event, [], reopened)
    assert [(c.policy_id, c.clock, c.started_at) for c in changes] == [  # type: ignore[union-attr]
        ("standard", "resolution", reopened),
        ("standard", "first_response", reopened),
        ("public-x", "first_response", reopened),
        ("vip-desk", "resolution", reopened),
    ]


def test_priority_change_reselects_the_contract_and_leaves_the_additive_clock_on_its_policy() -> (
    None
):
    at = OPENED + timedelta(minutes=5)
    running = [open_clock("first_response", "standard"), open_clock("first_response", "public-x")]
    changes = clock_changes(POLICIES, CASE_PRIORITY_CHANGED, data(priority="P1"), running, at)
    assert [type(c) for c in changes] == [ClockReselection, ClockReselection]
    contract, additive = changes
    assert isinstance(contract, ClockReselection)
    assert isinstance(additive, ClockReselection)
    assert (contract.policy_id, contract.additive_policy) == ("urgent", None)
    assert contract.schedule is not None
    assert contract.schedule.due_at == OPENED + timedelta(minutes=15)  # start kept
    # Same policy, same start and due_at: only the priority label moves.
    assert (additive.policy_id, additive.additive_policy, additive.priority) == (
        "public-x",
        "public-x",
        "P1",
    )
    assert additive.schedule is not None
    assert additive.schedule.due_at == OPENED + timedelta(hours=1)


def test_additive_clocks_end_unfulfilled_when_their_policy_stops_applying() -> None:
    moved_to_dm = data(channel="dm", visibility="private")
    at = OPENED + timedelta(minutes=10)
    running = [open_clock("first_response", "standard"), open_clock("first_response", "public-x")]
    changes = clock_changes(POLICIES, CASE_ASSIGNED, moved_to_dm, running, at)
    assert changes == [
        ClockFulfilment("c1", "first_response", at, by_reply=False, additive_policy="public-x")
    ]


def test_policy_that_starts_applying_starts_the_clocks_the_case_waits_on_from_then() -> None:
    at = OPENED + timedelta(minutes=10)
    running = [open_clock("first_response", "standard"), open_clock("first_response", "public-x")]
    tagged = data(tags=["vip"], status="pending")
    changes = clock_changes(POLICIES, CASE_ASSIGNED, tagged, running, at)
    assert [track_of(c) for c in changes] == [
        ("resolution", "vip-desk"),
        ("resolution", "vip-desk"),
    ]
    start, pause = changes
    assert isinstance(start, ClockStart)
    assert start.started_at == at
    assert pause == ClockPause("c1", "resolution", at, additive_policy="vip-desk")


def test_policy_whose_clocks_were_fulfilled_does_not_start_them_again() -> None:
    answered = data(first_response_at=OPENED + timedelta(minutes=5))
    running = [open_clock("resolution", "standard")]
    changes = clock_changes(POLICIES, CASE_ASSIGNED, answered, running, OPENED + timedelta(hours=1))
    assert changes == []


def test_recompute_keeps_an_additive_clock_on_its_policy_with_the_new_target() -> None:
    loosened = parse_policy_set(POLICY_TEXT.replace("first_response: 1h", "first_response: 2h"))
    clock = open_clock("first_response", "public-x")
    moved, timers = rederive(loosened, Case(priority="P1"), clock)
    assert (moved.policy_id, moved.additive, moved.target) == ("public-x", True, timedelta(hours=2))
    assert timers is not None
    assert timers.due_at == OPENED + timedelta(hours=2)


# --- alerts and the offline tools ----------------------------------------------------------


def clock_record(policy_id: str, additive: bool) -> ClockRecord:
    return ClockRecord(
        id=1,
        case_id="c1",
        clock="first_response",
        policy_id=policy_id,
        calendar_id="always",
        target_seconds=3600,
        started_at=OPENED,
        due_at=OPENED + timedelta(hours=1),
        team="care",
        priority="P2",
        additive=additive,
    )


def test_alert_ids_differ_per_policy_and_stay_stable() -> None:
    contract = clock_record("standard", additive=False)
    additive = clock_record("public-x", additive=True)
    other_additive = clock_record("vip-desk", additive=True)
    ids = {alert_event_id(c, SLA_BREACHED, 1.0) for c in (contract, additive, other_additive)}
    assert len(ids) == 3
    assert alert_event_id(additive, SLA_BREACHED, 1.0) == alert_event_id(
        clock_record("public-x", additive=True), SLA_BREACHED, 1.0
    )
    # A contract clock keeps its alert ids when the case selects another contract.
    assert alert_event_id(contract, SLA_CLOCK_STARTED, None) == alert_event_id(
        clock_record("urgent", additive=False), SLA_CLOCK_STARTED, None
    )


def test_due_writes_one_line_per_clock_per_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICY_TEXT, encoding="utf-8")
    opening = {
        "case_id": "c-9",
        "opened_at": "2026-02-02T09:00:00Z",
        "priority": "P1",
        "team": "care",
        "platform": "x",
        "channel": "mention",
        "visibility": "public",
    }
    source = tmp_path / "openings.jsonl"
    source.write_text(json.dumps(opening) + "\n", encoding="utf-8")
    assert main(["due", "--policies", str(policies), str(source)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["policy"], line["clock"], line["due_at"]) for line in lines] == [
        ("urgent", "first_response", "2026-02-02T09:15:00Z"),
        ("urgent", "resolution", "2026-02-02T13:00:00Z"),
        ("public-x", "first_response", "2026-02-02T10:00:00Z"),
    ]
    assert lines[2]["warn_at"] == ["2026-02-02T09:30:00Z"]


def test_check_lists_additive_policies_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICY_TEXT, encoding="utf-8")
    assert main(["check", str(policies)]) == 0
    assert capsys.readouterr().out == (
        f"{policies}: ok (2 calendars, 4 policies: urgent, standard;"
        " additive: public-x, vip-desk)\n"
    )
