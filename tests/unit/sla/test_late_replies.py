"""What the domain decides about replies and merges read out of order: an earlier first reply
ends an answered clock instead, and an absorbed case's clocks end with no outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from casewire_common.events import CASE_MERGED, CASE_RESPONDED, CaseEventData
from casewire_sla.domain.clocks import (
    AnsweredClock,
    CaseAbsorption,
    ClockFulfilment,
    ClockRefulfilment,
    ClockReselection,
    OpenClock,
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


def answered(fulfilled_at: datetime) -> list[AnsweredClock]:
    return [AnsweredClock("first_response", None, fulfilled_at)]


def open_clock(clock: str, started_at: datetime) -> OpenClock:
    return OpenClock(
        clock=clock,  # type: ignore[arg-type]
        policy_id="p",
        calendar_id="always",
        target=timedelta(minutes=1) if clock == "first_response" else timedelta(hours=1),
        started_at=started_at,
        team="care",
        priority="P2",
    )


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
