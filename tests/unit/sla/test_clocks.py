"""What case events do to SLA clocks, and which records are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka import ConsumerRecord
from casewire_common.events import (
    CASE_ASSIGNED,
    CASE_CREATED,
    CASE_ESCALATED,
    CASE_MERGED,
    CASE_MESSAGE_ADDED,
    CASE_PRIORITY_CHANGED,
    CASE_RESPONDED,
    CASE_STATUS_CHANGED,
    INCIDENT_OPENED,
    CaseEventData,
    CaseStatus,
    ClockName,
    EventRecord,
    Priority,
)
from casewire_sla.clock_service import IncomingCaseEvent
from casewire_sla.domain.calendars import Pause
from casewire_sla.domain.clocks import (
    ClockFulfilment,
    ClockPause,
    ClockReselection,
    ClockResume,
    ClockStart,
    OpenClock,
    Schedule,
    clock_changes,
)
from casewire_sla.domain.policies import parse_policy_set
from casewire_sla.entrypoints.kafka import decode_case_event

from tests.unit.sla.factories import case_event, snapshot

POLICIES = parse_policy_set(
    """
version: 1
calendars:
  - {id: always, always_open: true}
  - {id: office, timezone: Europe/Athens, hours: {mon-fri: ["09:00-17:00"]}}
policies:
  - {id: urgent, match: {priority: [P1]}, calendar: always, first_response: 15m,
     next_response: 30m, resolution: 4h, warn_at: [0.5, 0.8]}
  - {id: resolution-only, match: {priority: [P4]}, calendar: always, resolution: 1d}
  - {id: private, match: {visibility: [private]}, calendar: always, resolution: 1d,
     pause_on: [pending]}
  - {id: standard, match: {}, calendar: office, first_response: 1h, next_response: 2h,
     resolution: 8h, warn_at: [0.5], pause_on: [pending]}
"""
)
# No catch-all: a case has no contract until it is P1.
P1_ONLY = parse_policy_set(
    """
version: 1
calendars:
  - {id: always, always_open: true}
policies:
  - {id: public-x, additive: true, match: {platform: [x]}, calendar: always, next_response: 1h}
  - {id: urgent, match: {priority: [P1]}, calendar: always, first_response: 15m,
     next_response: 30m, resolution: 4h, pause_on: [pending]}
"""
)
OPENED = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)  # a Monday, 11:00 in Athens
ALWAYS = POLICIES.calendar("always")
OFFICE = POLICIES.calendar("office")


def data(
    first_response: bool | None = None,
    previous_status: CaseStatus | None = None,
    previous_priority: Priority | None = None,
    **changes: object,
) -> CaseEventData:
    return CaseEventData(
        case=snapshot("c1", OPENED, **changes),
        first_response=first_response,
        previous_status=previous_status,
        previous_priority=previous_priority,
    )


def open_clock(clock: ClockName, policy_id: str = "standard", **changes: object) -> OpenClock:
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
    }
    fields.update(changes)
    return OpenClock(**fields)  # type: ignore[arg-type]


def test_created_case_starts_first_response_and_resolution_clocks_at_its_opening() -> None:
    changes = clock_changes(
        POLICIES, CASE_CREATED, data(priority="P1", team="shipping"), [], OPENED
    )
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
        ),
        ClockStart(
            case_id="c1",
            clock="resolution",
            policy_id="urgent",
            calendar_id="always",
            target=timedelta(hours=4),
            started_at=OPENED,
            due_at=OPENED + timedelta(hours=4),
            warnings=((0.5, OPENED + timedelta(hours=2)), (0.8, OPENED + timedelta(hours=3.2))),
            team="shipping",
            priority="P1",
        ),
    ]


def test_case_that_needs_no_action_starts_no_clock() -> None:
    assert clock_changes(POLICIES, CASE_CREATED, data(status="no_action"), [], OPENED) == []


def test_policy_without_a_first_response_target_starts_only_its_other_clocks() -> None:
    changes = clock_changes(POLICIES, CASE_CREATED, data(priority="P4"), [], OPENED)
    assert [change.clock for change in changes] == ["resolution"]


def test_first_brand_reply_fulfils_the_first_response_clock_at_the_reply_time() -> None:
    replied = OPENED + timedelta(minutes=4)
    event = data(first_response=True, first_response_at=replied)
    changes = clock_changes(
        POLICIES, CASE_RESPONDED, event, [open_clock("first_response")], replied
    )
    assert changes == [ClockFulfilment("c1", "first_response", replied)]


def test_case_created_already_answered_starts_and_fulfils_its_clock() -> None:
    replied = OPENED + timedelta(minutes=1)
    changes = clock_changes(POLICIES, CASE_CREATED, data(first_response_at=replied), [], OPENED)
    assert changes[-1] == ClockFulfilment("c1", "first_response", replied)
    assert [type(change) for change in changes] == [ClockStart, ClockStart, ClockFulfilment]


def test_customer_message_after_a_brand_reply_starts_next_response_at_the_message() -> None:
    written = OPENED + timedelta(hours=1)
    answered = data(first_response_at=OPENED + timedelta(minutes=5))
    running = [open_clock("resolution")]
    changes = clock_changes(POLICIES, CASE_MESSAGE_ADDED, answered, running, written)
    assert [(c.clock, c.started_at) for c in changes if isinstance(c, ClockStart)] == [
        ("next_response", written)
    ]


def test_customer_message_before_any_brand_reply_starts_no_next_response() -> None:
    changes = clock_changes(
        POLICIES, CASE_MESSAGE_ADDED, data(), [open_clock("first_response")], OPENED
    )
    assert changes == []


def test_second_customer_message_keeps_the_next_response_clock_of_the_first() -> None:
    answered = data(first_response_at=OPENED + timedelta(minutes=5))
    running = [open_clock("next_response", started_at=OPENED + timedelta(hours=1))]
    later = OPENED + timedelta(hours=2)
    assert clock_changes(POLICIES, CASE_MESSAGE_ADDED, answered, running, later) == []


def test_brand_reply_fulfils_the_running_next_response_at_the_reply() -> None:
    replied = OPENED + timedelta(hours=3)
    event = data(first_response=False, first_response_at=OPENED + timedelta(minutes=5))
    running = [open_clock("next_response"), open_clock("resolution")]
    changes = clock_changes(POLICIES, CASE_RESPONDED, event, running, replied)
    assert changes == [ClockFulfilment("c1", "next_response", replied)]


def test_resolving_ends_every_open_clock_and_only_resolution_counts_as_fulfilled() -> None:
    resolved = OPENED + timedelta(hours=5)
    event = data(status="resolved", resolved_at=resolved, previous_status="assigned")
    running = [open_clock("next_response"), open_clock("resolution")]
    changes = clock_changes(POLICIES, CASE_STATUS_CHANGED, event, running, resolved)
    assert changes == [
        ClockFulfilment("c1", "next_response", resolved, by_reply=False),
        ClockFulfilment("c1", "resolution", resolved, by_reply=True),
    ]


def test_customer_message_on_a_resolved_case_starts_no_next_response() -> None:
    event = data(status="resolved", first_response_at=OPENED + timedelta(minutes=5))
    assert clock_changes(POLICIES, CASE_MESSAGE_ADDED, event, [], OPENED + timedelta(days=1)) == []


def test_reopening_an_answered_case_starts_resolution_and_next_response_at_the_reopen() -> None:
    reopened = OPENED + timedelta(days=1)
    event = data(
        status="reopened", previous_status="resolved", first_response_at=OPENED + timedelta(hours=1)
    )
    changes = clock_changes(POLICIES, CASE_STATUS_CHANGED, event, [], reopened)
    assert [(c.clock, c.started_at) for c in changes if isinstance(c, ClockStart)] == [
        ("resolution", reopened),
        ("next_response", reopened),
    ]


def test_reopening_a_never_answered_case_starts_first_response_again() -> None:
    reopened = OPENED + timedelta(days=1)
    event = data(status="queued", previous_status="no_action")
    changes = clock_changes(POLICIES, CASE_STATUS_CHANGED, event, [], reopened)
    assert [c.clock for c in changes] == ["resolution", "first_response"]


def test_entering_a_pause_on_status_pauses_the_resolution_clock() -> None:
    at = OPENED + timedelta(hours=1)
    event = data(status="pending", previous_status="assigned")
    running = [open_clock("first_response"), open_clock("resolution")]
    changes = clock_changes(POLICIES, CASE_STATUS_CHANGED, event, running, at)
    assert changes == [ClockPause("c1", "resolution", at)]


def test_leaving_the_pause_moves_due_at_by_the_paused_open_time() -> None:
    # Opened Monday 11:00 Athens, 8 h target on 09:00-17:00: due Tuesday 11:00 unpaused.
    # Paused Monday 12:00 to Tuesday 10:00: 6 h of open time paused, so due Tuesday 17:00,
    # closing time exactly (15:00 UTC).
    paused = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)
    resumed = datetime(2026, 2, 3, 8, 0, tzinfo=UTC)
    clock = open_clock("resolution", pauses=(Pause(paused),), fired=frozenset({0.5}))
    event = data(status="assigned", previous_status="pending")
    changes = clock_changes(POLICIES, CASE_STATUS_CHANGED, event, [clock], resumed)
    assert changes == [
        ClockResume(
            "c1",
            "resolution",
            resumed,
            Schedule(due_at=datetime(2026, 2, 3, 15, 0, tzinfo=UTC), warnings=(), breach=True),
        )
    ]


def test_status_change_that_neither_enters_nor_leaves_a_pause_changes_nothing() -> None:
    event = data(status="assigned", previous_status="queued")
    assert (
        clock_changes(POLICIES, CASE_STATUS_CHANGED, event, [open_clock("resolution")], OPENED)
        == []
    )


def test_priority_change_selects_the_policy_again_and_the_clock_keeps_its_start() -> None:
    at = OPENED + timedelta(minutes=5)
    event = data(priority="P1", previous_priority="P2")
    changes = clock_changes(
        POLICIES, CASE_PRIORITY_CHANGED, event, [open_clock("first_response")], at
    )
    assert changes == [
        ClockReselection(
            case_id="c1",
            clock="first_response",
            policy_id="urgent",
            calendar_id="always",
            target=timedelta(minutes=15),
            team="care",
            priority="P1",
            schedule=Schedule(
                due_at=OPENED + timedelta(minutes=15),
                warnings=(
                    (0.5, OPENED + timedelta(minutes=7, seconds=30)),
                    (0.8, OPENED + timedelta(minutes=12)),
                ),
                breach=True,
            ),
        )
    ]


def test_escalation_to_another_priority_selects_the_policy_again_like_any_change() -> None:
    at = OPENED + timedelta(minutes=20)
    escalated = clock_changes(
        POLICIES,
        CASE_ESCALATED,
        data(priority="P1", team="leads", previous_priority="P2"),
        [open_clock("first_response")],
        at,
    )
    (reselection,) = escalated
    assert isinstance(reselection, ClockReselection)
    assert (reselection.policy_id, reselection.team, reselection.priority) == (
        "urgent",
        "leads",
        "P1",
    )
    assert reselection.schedule is not None
    assert reselection.schedule.due_at == OPENED + timedelta(minutes=15)  # the start is kept


def test_escalated_event_is_decoded_with_its_case_not_only_marked_processed() -> None:
    record = case_event(CASE_ESCALATED, snapshot("c1", OPENED, priority="P1"), event_id="evt-3")
    decoded = decode_case_event(consumer_record(record))
    assert isinstance(decoded, IncomingCaseEvent)
    assert decoded.data is not None
    assert decoded.data.case.priority == "P1"


def test_reselected_clock_does_not_repeat_alerts_it_already_fired() -> None:
    clock = open_clock("first_response", fired=frozenset({0.5}))
    changes = clock_changes(POLICIES, CASE_ASSIGNED, data(priority="P1"), [clock], OPENED)
    (reselection,) = changes
    assert isinstance(reselection, ClockReselection)
    assert reselection.schedule is not None
    assert [fraction for fraction, _ in reselection.schedule.warnings] == [0.8]


def test_team_change_under_the_same_policy_relabels_the_clock_without_moving_it() -> None:
    event = data(team="billing")
    changes = clock_changes(POLICIES, CASE_ASSIGNED, event, [open_clock("first_response")], OPENED)
    (reselection,) = changes
    assert isinstance(reselection, ClockReselection)
    assert (reselection.policy_id, reselection.team) == ("standard", "billing")
    assert reselection.schedule is not None
    assert reselection.schedule.due_at == OPENED + timedelta(hours=1)


def test_paused_clock_moved_to_another_policy_pausing_on_the_status_gets_no_timers() -> None:
    clock = open_clock("resolution", pauses=(Pause(OPENED + timedelta(hours=1)),))
    event = data(status="pending", visibility="private")
    at = OPENED + timedelta(hours=2)
    (reselection,) = clock_changes(POLICIES, CASE_ASSIGNED, event, [clock], at)
    assert isinstance(reselection, ClockReselection)
    assert (reselection.policy_id, reselection.schedule) == ("private", None)


def test_paused_clock_moved_to_a_policy_not_pausing_on_the_status_resumes_at_the_move() -> None:
    # Paused 10:00-11:00 UTC under standard; urgent runs on pending: 4 h from 09:00 plus the
    # hour paused.
    clock = open_clock("resolution", pauses=(Pause(OPENED + timedelta(hours=1)),))
    event = data(priority="P1", status="pending", previous_priority="P2")
    at = OPENED + timedelta(hours=2)
    changes = clock_changes(POLICIES, CASE_PRIORITY_CHANGED, event, [clock], at)
    assert changes == [
        ClockReselection(
            "c1", "resolution", "urgent", "always", timedelta(hours=4), "care", "P1", None
        ),
        ClockResume(
            "c1",
            "resolution",
            at,
            Schedule(
                due_at=OPENED + timedelta(hours=5),
                warnings=(
                    (0.5, OPENED + timedelta(hours=3)),
                    (0.8, OPENED + timedelta(hours=4, minutes=12)),
                ),
                breach=True,
            ),
        ),
    ]


def test_running_clock_moved_to_a_policy_pausing_on_the_status_pauses_at_the_move() -> None:
    clock = open_clock("resolution", "urgent", priority="P1")
    event = data(priority="P2", status="pending", previous_priority="P1")
    at = OPENED + timedelta(hours=1)
    changes = clock_changes(POLICIES, CASE_PRIORITY_CHANGED, event, [clock], at)
    # Timers under standard from the kept start (8 open hours from Monday 11:00 Athens),
    # then the pause takes them away.
    assert changes == [
        ClockReselection(
            "c1",
            "resolution",
            "standard",
            "office",
            timedelta(hours=8),
            "care",
            "P2",
            Schedule(
                due_at=OPENED + timedelta(days=1),
                warnings=((0.5, OPENED + timedelta(hours=4)),),
                breach=True,
            ),
        ),
        ClockPause("c1", "resolution", at),
    ]


def test_status_change_that_also_moves_the_clock_resumes_it_once() -> None:
    clock = open_clock("resolution", pauses=(Pause(OPENED + timedelta(hours=1)),))
    event = data(priority="P1", status="assigned", previous_status="pending")
    at = OPENED + timedelta(hours=2)
    changes = clock_changes(POLICIES, CASE_STATUS_CHANGED, event, [clock], at)
    assert [type(change) for change in changes] == [ClockReselection, ClockResume]


def test_clock_keeps_its_policy_when_the_new_one_has_no_target_for_it() -> None:
    event = data(priority="P4")  # resolution-only has no first_response target
    clock = open_clock("first_response")
    (relabelled,) = clock_changes(POLICIES, CASE_PRIORITY_CHANGED, event, [clock], OPENED)
    assert isinstance(relabelled, ClockReselection)
    assert (relabelled.policy_id, relabelled.priority) == ("standard", "P4")
    assert relabelled.schedule is not None
    assert relabelled.schedule.due_at == OPENED + timedelta(hours=1)


def test_contract_that_starts_matching_starts_the_clocks_the_case_waits_on_from_then() -> None:
    assert clock_changes(P1_ONLY, CASE_CREATED, data(priority="P3"), [], OPENED) == []
    at = OPENED + timedelta(minutes=5)
    raised = data(priority="P1", previous_priority="P3")
    changes = clock_changes(P1_ONLY, CASE_PRIORITY_CHANGED, raised, [], at)
    assert changes == [
        ClockStart(
            case_id="c1",
            clock="resolution",
            policy_id="urgent",
            calendar_id="always",
            target=timedelta(hours=4),
            started_at=at,
            due_at=at + timedelta(hours=4),
            warnings=(),
            team="care",
            priority="P1",
        ),
        ClockStart(
            case_id="c1",
            clock="first_response",
            policy_id="urgent",
            calendar_id="always",
            target=timedelta(minutes=15),
            started_at=at,
            due_at=at + timedelta(minutes=15),
            warnings=(),
            team="care",
            priority="P1",
        ),
    ]


def test_contract_that_starts_matching_on_a_pending_answered_case_waits_on_a_reply() -> None:
    # The customer wrote after the brand's reply: public-x counts a next reply already.
    waiting = OpenClock(
        "next_response",
        "public-x",
        "always",
        timedelta(hours=1),
        OPENED + timedelta(hours=1),
        "care",
        "P3",
        additive=True,
    )
    raised = data(priority="P1", status="pending", first_response_at=OPENED + timedelta(minutes=5))
    at = OPENED + timedelta(hours=2)
    changes = clock_changes(P1_ONLY, CASE_PRIORITY_CHANGED, raised, [waiting], at)
    contract = [change for change in changes if change.additive_policy is None]
    assert [(c.clock, c.started_at, c.due_at) for c in contract if isinstance(c, ClockStart)] == [
        ("resolution", at, at + timedelta(hours=4)),
        ("next_response", at, at + timedelta(minutes=30)),
    ]
    assert contract[-1] == ClockPause("c1", "resolution", at)


def test_event_types_without_a_clock_effect_change_nothing() -> None:
    assert (
        clock_changes(POLICIES, CASE_ASSIGNED, data(), [open_clock("first_response")], OPENED) == []
    )


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
    assert isinstance(decoded, IncomingCaseEvent)
    assert decoded.id == "evt-1"
    assert decoded.time is not None
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
    record = case_event(INCIDENT_OPENED, snapshot("c1", OPENED), event_id="evt-2")
    broken = record.model_copy(update={"value": b'{"anything": 1}'})
    decoded = decode_case_event(consumer_record(broken))
    assert decoded == IncomingCaseEvent("evt-2", INCIDENT_OPENED, None)


def test_a_first_response_clock_moves_back_when_the_case_turns_out_to_have_opened_earlier() -> None:
    # The DM opened the case; the public post sent 30 s earlier was processed after it and
    # merged in: the customer has waited since the post.
    policies = parse_policy_set(
        "version: 1\ncalendars: [{id: always, always_open: true}]\n"
        "policies: [{id: p, match: {}, calendar: always, first_response: 1m}]\n"
    )
    dm_at = datetime(2026, 12, 6, 12, 0, 30, tzinfo=UTC)
    post_at = dm_at - timedelta(seconds=30)
    open_clock = OpenClock(
        clock="first_response",
        policy_id="p",
        calendar_id="always",
        target=timedelta(minutes=1),
        started_at=dm_at,
        team="care",
        priority="P2",
    )
    data = CaseEventData(case=snapshot("c-merged", post_at))
    changes = clock_changes(policies, CASE_MERGED, data, [open_clock], dm_at)
    (moved,) = [c for c in changes if isinstance(c, ClockReselection)]
    assert moved.started_at == post_at
    assert moved.schedule is not None
    assert moved.schedule.due_at == post_at + timedelta(minutes=1)
    # Once answered, it stays where it is.
    answered = CaseEventData(case=snapshot("c-merged", post_at, first_response_at=dm_at))
    assert not clock_changes(policies, CASE_MERGED, answered, [open_clock], dm_at)
