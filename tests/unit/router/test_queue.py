from datetime import timedelta

from casewire_common import events as ev
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.queue import drain, queue_order

from tests.unit.router.case_factories import agent, case
from tests.unit.router.factories import T0

NOW = T0 + timedelta(hours=2)


def test_most_urgent_first_then_longest_waiting() -> None:
    old_p3 = case("old-p3", priority="P3", minutes=0)
    new_p1 = case("new-p1", priority="P1", minutes=30)
    older_p1 = case("older-p1", priority="P1", minutes=10)
    reopened_p3 = case("reopened-p3", priority="P3", minutes=-60)
    reopened_p3.queued_at = T0 + timedelta(minutes=5)  # back in the queue: waits from then
    ordered = sorted([old_p3, new_p1, reopened_p3, older_p1], key=queue_order)
    assert [c.id for c in ordered] == ["older-p1", "new-p1", "old-p3", "reopened-p3"]


def test_drain_gives_the_freed_place_to_the_p1_before_an_older_p3() -> None:
    agents = {"amal": agent("amal", load=1, capacity=2)}
    old_p3 = case("old-p3", priority="P3", minutes=0)
    new_p1 = case("new-p1", priority="P1", minutes=30)
    outcome = RoutingOutcome()
    assigned = drain([old_p3, new_p1], agents, outcome, NOW)
    assert [c.id for c in assigned] == ["new-p1"]
    assert (new_p1.assignee, old_p3.assignee, agents["amal"].load) == ("amal", None, 2)
    assert [(e.type, e.case_id) for e in outcome.events] == [(ev.CASE_ASSIGNED, "new-p1")]


def test_drain_never_exceeds_capacity() -> None:
    agents = {"amal": agent("amal", capacity=2), "sara": agent("sara", capacity=1)}
    waiting = [case(f"c{n}", minutes=n) for n in range(6)]
    assigned = drain(waiting, agents, RoutingOutcome(), NOW)
    assert [c.id for c in assigned] == ["c0", "c1", "c2"]
    assert all(a.load <= a.capacity for a in agents.values())
    assert (agents["amal"].load, agents["sara"].load) == (2, 1)


def test_drain_prefers_an_agent_who_speaks_the_language_then_the_least_loaded() -> None:
    agents = {
        "amal": agent("amal", languages=("ar", "en"), load=3, capacity=4),
        "nikos": agent("nikos", languages=("el", "en"), capacity=4),
    }
    arabic, english = case("ar", language="ar", minutes=0), case("en", minutes=1)
    drain([english, arabic], agents, RoutingOutcome(), NOW)
    assert (arabic.assignee, english.assignee) == ("amal", "nikos")


def test_drain_skips_offline_agents_and_teams_without_room_but_serves_other_teams() -> None:
    agents = {
        "off": agent("off", online=False),
        "carer": agent("carer", teams=("care",), capacity=1),
    }
    shipping = case("ship", team="shipping", priority="P1")
    care = case("care", team="care", priority="P4", minutes=5)
    assigned = drain([shipping, care], agents, RoutingOutcome(), NOW)
    assert [c.id for c in assigned] == ["care"]
    assert shipping.status == "queued"


def test_drain_leaves_cases_that_are_no_longer_waiting() -> None:
    agents = {"amal": agent("amal")}
    owned = case("owned", status="assigned", assignee="sara")
    assert drain([owned], agents, RoutingOutcome(), NOW) == []
    assert owned.assignee == "sara"
