"""The demo's care desk: when each replayed conversation's case is due for resolution."""

from __future__ import annotations

from datetime import timedelta

import pytest
from casewire_dev.care_desk import PlannedResolution, ResolutionQueue, plan_resolutions
from casewire_dev.replay import schedule

from tests.unit.dev.test_replay import conversation


def test_each_conversation_is_resolved_once_after_its_last_message_in_posting_order() -> None:
    long = conversation("1", [30, 60])  # last message 90 corpus minutes in
    short = conversation("2", [6])  # opens 0.5 s later, done after 6 minutes
    plan = schedule([long, short], speed=60, arrival_seconds=0.5)
    # Posting order: 10, 20, 21, 11, 12 (see test_replay).

    planned = plan_resolutions(plan, speed=60, after=timedelta(minutes=3))

    assert planned == [
        PlannedResolution(2, short.conversation_id, 3.0),
        PlannedResolution(4, long.conversation_id, 3.0),
    ]


def test_the_hold_is_corpus_time_divided_by_the_speed() -> None:
    plan = schedule([conversation("1", [1])], speed=120, arrival_seconds=0)
    assert [r.hold_seconds for r in plan_resolutions(plan, speed=120)] == [1.0]  # 2 minutes


def test_a_negative_delay_or_speed_is_refused() -> None:
    plan = schedule([conversation("1", [])], speed=60, arrival_seconds=0)
    with pytest.raises(ValueError, match="speed"):
        plan_resolutions(plan, speed=0)
    with pytest.raises(ValueError, match="negative"):
        plan_resolutions(plan, speed=60, after=timedelta(minutes=-1))


def test_nothing_is_due_before_the_last_message_is_posted_and_the_hold_has_passed() -> None:
    queue = ResolutionQueue([PlannedResolution(1, "a", 2.0), PlannedResolution(3, "b", 2.0)])
    assert queue.due(posted_messages=1, now=10.0) == []  # a's last message is number 1
    assert queue.due(posted_messages=2, now=11.0) == []  # posted now: the hold starts
    assert queue.due(posted_messages=2, now=12.9) == []
    assert queue.due(posted_messages=2, now=13.0) == ["a"]
    assert queue.due(posted_messages=2, now=20.0) == []  # returned once
    assert not queue.finished


def test_a_late_replay_delays_the_resolution_instead_of_skipping_the_hold() -> None:
    queue = ResolutionQueue([PlannedResolution(0, "a", 2.0), PlannedResolution(1, "b", 0.5)])
    assert queue.due(posted_messages=0, now=100.0) == []
    assert queue.due(posted_messages=2, now=101.0) == []  # both posted together, late
    assert queue.due(posted_messages=2, now=101.5) == ["b"]  # the shorter hold first
    assert queue.due(posted_messages=2, now=103.0) == ["a"]
    assert queue.finished
