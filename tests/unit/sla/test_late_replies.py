"""What the domain decides about replies and merges read out of order: an earlier first reply
ends an answered clock instead, an earlier customer message starts it earlier, and an absorbed
case's clocks end with no outcome."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from casewire_common.events import (
    CASE_ASSIGNED,
    CASE_MERGED,
    CASE_MESSAGE_ADDED,
    CASE_RESPONDED,
    CaseEventData,
)
from casewire_sla.domain.clocks import (
    BREACH,
    AnsweredClock,
    CaseAbsorption,
    ClockBackdate,
    ClockFulfilment,
    ClockRefulfilment,
    ClockReselection,
    OpenClock,
    Schedule,
    clock_changes,
)
from casewire_sla.domain.policies import parse_policy_set

from tests.unit.sla.factories import snapshot

POLICIES = parse_policy_set(
    "version: 1\ncalendars: [{id: always, always_open: true}]\n"
    "policies: [{id: p, match: {}, calendar: always, first_response: 1m, resolution: 1h}]\n"
)
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def open_clock(clock: str, started_at: datetime, **fields: Any) -> OpenClock:
    target = timedelta(minutes=1) if clock == "first_response" else timedelta(hours=1)
    return replace(
        OpenClock(
            clock=clock,  # type: ignore[arg-type]
            policy_id="p",
            calendar_id="always",
            target=target,
            started_at=started_at,
            team="care",
            priority="P2",
        ),
        **fields,
    )


def answered(
    fulfilled_at: datetime, started_at: datetime = T0, **fields: Any
) -> list[AnsweredClock]:
    return [AnsweredClock(open_clock("first_response", started_at, **fields), fulfilled_at)]


def responded(first_response_at: datetime, *, first: bool = True) -> CaseEventData:
    case = snapshot("c-1", T0, status="assigned", first_response_at=first_response_at)
    return CaseEventData(case=case, first_response=first)


def test_an_earlier_first_reply_read_after_the_one_that_ended_the_clock_ends_it_instead() -> None:
    changes = clock_changes(
        POLICIES,
        CASE_RESPONDED,
        responded(at(50)),
        [open_clock("resolution", T0)],
        at(50),
        answered(at(70)),
    )
    assert changes == [ClockRefulfilment("c-1", "first_response", at(50))]


def test_a_reply_no_earlier_than_the_clock_end_or_not_the_first_changes_nothing() -> None:
    resolution = [open_clock("resolution", T0)]
    for data, ended in (
        (responded(at(70)), at(70)),  # the same reply again, under another event id
        (responded(at(50)), at(40)),  # the clock ended earlier still
        (responded(at(50), first=False), at(70)),  # the router does not take it as the first
    ):
        assert (
            clock_changes(POLICIES, CASE_RESPONDED, data, resolution, at(80), answered(ended)) == []
        )


def test_an_open_first_response_clock_is_ended_by_the_reply_not_re_ended() -> None:
    changes = clock_changes(
        POLICIES,
        CASE_RESPONDED,
        responded(at(50)),
        [open_clock("first_response", T0)],
        at(50),
        answered(at(70)),  # an earlier cycle's
    )
    assert changes == [ClockFulfilment("c-1", "first_response", at(50))]


def test_an_absorbed_case_ends_every_clock_with_no_outcome_at_the_merge() -> None:
    case = snapshot("c-absorbed", T0, status="resolved", resolved_at=at(90))
    data = CaseEventData(case=case, merged_into_case_id="c-kept")
    clocks = [open_clock("first_response", T0), open_clock("resolution", T0)]

    changes = clock_changes(POLICIES, CASE_MERGED, data, clocks, at(95), answered(at(30)))

    assert changes == [CaseAbsorption("c-absorbed", "c-kept", at(90))]


def test_the_kept_case_clock_moves_back_to_the_absorbed_opening_and_ends_at_its_reply() -> None:
    case = snapshot("c-kept", T0, status="assigned", first_response_at=at(20))
    data = CaseEventData(case=case, merged_case_id="c-absorbed")

    changes = clock_changes(
        POLICIES, CASE_MERGED, data, [open_clock("first_response", at(30))], at(95)
    )

    reselection, fulfilment = changes
    assert isinstance(reselection, ClockReselection)
    assert reselection.started_at == T0
    assert fulfilment == ClockFulfilment("c-kept", "first_response", at(20))


def test_the_kept_case_answered_later_takes_the_absorbed_case_earlier_reply() -> None:
    case = snapshot("c-kept", T0, status="assigned", first_response_at=at(20))
    data = CaseEventData(case=case, merged_case_id="c-absorbed")

    changes = clock_changes(
        POLICIES, CASE_MERGED, data, [open_clock("resolution", T0)], at(95), answered(at(80))
    )

    assert changes == [ClockRefulfilment("c-kept", "first_response", at(20))]


# A customer message sent before the one that opened the case, read after the reply


WARNED = parse_policy_set(
    "version: 1\ncalendars: [{id: always, always_open: true}]\n"
    "policies: [{id: p, match: {}, calendar: always, first_response: 1m, warn_at: [0.5, 0.8]},\n"
    "  {id: vip, additive: true, match: {}, calendar: always, first_response: 30s}]\n"
)


def message_added(opened_at: datetime) -> CaseEventData:
    case = snapshot("c-1", opened_at, status="assigned", first_response_at=at(70))
    return CaseEventData(case=case)


def test_an_answered_clock_starts_at_the_earlier_opening_with_the_deadlines_of_that_start() -> None:
    # Opened at +30 s, answered at +70 s (met: due +90 s); the customer had written at +0 s.
    changes = clock_changes(
        WARNED, CASE_MESSAGE_ADDED, message_added(T0), [], at(80), answered(at(70), at(30))
    )

    warnings = ((0.5, at(30)), (0.8, at(48)))
    assert changes == [ClockBackdate("c-1", "first_response", T0, Schedule(at(60), warnings, True))]


def test_fractions_alerted_under_the_old_start_are_not_scheduled_again() -> None:
    ended = answered(at(100), at(30), fired=frozenset({0.5, 0.8, BREACH}))

    (backdate,) = clock_changes(WARNED, CASE_MESSAGE_ADDED, message_added(T0), [], at(110), ended)

    assert isinstance(backdate, ClockBackdate)
    assert backdate.schedule == Schedule(at(60), (), False)


def test_an_additive_track_clock_moves_back_on_its_own_track() -> None:
    ended = answered(at(70), at(30), policy_id="vip", target=timedelta(seconds=30), additive=True)

    changes = clock_changes(WARNED, CASE_MESSAGE_ADDED, message_added(T0), [], at(80), ended)

    assert changes == [
        ClockBackdate("c-1", "first_response", T0, Schedule(at(30), (), True), "vip")
    ]


def test_an_answered_clock_keeps_its_start_when_the_opening_did_not_move_before_it() -> None:
    for ended, event_type in (
        (answered(at(70), T0), CASE_MESSAGE_ADDED),  # it started at the opening already
        (answered(at(70), at(30), first_cycle=False), CASE_MESSAGE_ADDED),  # from a reopening
        (answered(at(70), at(30)), CASE_ASSIGNED),  # no event but a message moves the opening
    ):
        assert clock_changes(WARNED, event_type, message_added(T0), [], at(80), ended) == []


def test_a_case_merged_in_moves_the_answered_clock_end_back_before_its_start() -> None:
    case = snapshot("c-kept", T0, status="assigned", first_response_at=at(50))
    data = CaseEventData(case=case, merged_case_id="c-absorbed")
    warnings = ((0.5, at(30)), (0.8, at(48)))

    changes = clock_changes(WARNED, CASE_MERGED, data, [], at(95), answered(at(70), at(30)))

    assert changes == [
        ClockRefulfilment("c-kept", "first_response", at(50)),
        ClockBackdate("c-kept", "first_response", T0, Schedule(at(60), warnings, True)),
    ]


def test_a_clock_a_reopening_started_keeps_its_start_while_it_waits() -> None:
    # Closed unanswered and reopened at +300 s: the customer waits from the reopening.
    reopened = open_clock("first_response", at(300), first_cycle=False)
    case = snapshot("c-1", T0, status="assigned", assignee="a-1")

    changes = clock_changes(POLICIES, CASE_ASSIGNED, CaseEventData(case=case), [reopened], at(305))

    assert changes == []
