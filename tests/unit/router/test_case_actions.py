from datetime import timedelta

import pytest
from casewire_common import events as ev
from casewire_router.domain import case_actions
from casewire_router.domain.case_actions import TransitionError, UnknownAgent
from casewire_router.domain.outcome import RoutingOutcome

from tests.unit.router.case_factories import agent, case
from tests.unit.router.factories import T0

LATER = T0 + timedelta(hours=1)


def types(outcome: RoutingOutcome) -> list[str]:
    return [event.type for event in outcome.events]


def test_claim_gives_a_waiting_case_to_the_agent_and_counts_their_load() -> None:
    amal = agent("amal")
    waiting, outcome = case(), RoutingOutcome()
    case_actions.claim(waiting, "amal", {"amal": amal}, outcome, T0)
    assert (waiting.status, waiting.assignee, amal.load) == ("assigned", "amal", 1)
    assert types(outcome) == [ev.CASE_ASSIGNED]
    assert outcome.events[0].data.previous_status == "queued"
    assert outcome.events[0].data.case.assignee == "amal"


def test_claim_over_capacity_is_refused_unless_forced() -> None:
    amal = agent("amal", load=2, capacity=2)
    with pytest.raises(TransitionError, match="at capacity"):
        case_actions.claim(case(), "amal", {"amal": amal}, RoutingOutcome(), T0)
    forced = case()
    case_actions.claim(forced, "amal", {"amal": amal}, RoutingOutcome(), T0, force=True)
    assert (forced.assignee, amal.load) == ("amal", 3)


def test_claim_refuses_an_owned_case_an_unknown_agent_and_another_team() -> None:
    agents = {"amal": agent("amal"), "nikos": agent("nikos", teams=("care",))}
    with pytest.raises(TransitionError, match="already assigned"):
        case_actions.claim(
            case(assignee="x", status="assigned"), "amal", agents, RoutingOutcome(), T0
        )
    with pytest.raises(UnknownAgent):
        case_actions.claim(case(), "ghost", agents, RoutingOutcome(), T0)
    with pytest.raises(TransitionError, match="not in team"):
        case_actions.claim(case(), "nikos", agents, RoutingOutcome(), T0, force=True)


def test_reassign_moves_the_load_from_the_previous_owner() -> None:
    agents = {"amal": agent("amal", load=1), "sara": agent("sara")}
    owned, outcome = case(status="assigned", assignee="amal"), RoutingOutcome()
    case_actions.reassign(owned, "sara", agents, outcome, T0)
    assert (owned.assignee, agents["amal"].load, agents["sara"].load) == ("sara", 0, 1)
    assert set(outcome.agents) == {"amal", "sara"}
    assert types(outcome) == [ev.CASE_ASSIGNED]


def test_reassigning_a_pending_case_keeps_it_pending() -> None:
    agents = {"amal": agent("amal", load=1), "sara": agent("sara")}
    owned, outcome = case(status="pending", assignee="amal"), RoutingOutcome()
    case_actions.reassign(owned, "sara", agents, outcome, T0)
    assert (owned.status, owned.assignee) == ("pending", "sara")
    assert (agents["amal"].load, agents["sara"].load) == (0, 1)
    event = outcome.events[0]
    assert (event.type, event.data.previous_status, event.data.case.status) == (
        ev.CASE_ASSIGNED,
        "pending",
        "pending",
    )


def test_reassign_to_the_current_owner_is_refused() -> None:
    agents = {"amal": agent("amal", load=1)}
    with pytest.raises(TransitionError, match="already assigned"):
        case_actions.reassign(
            case(status="assigned", assignee="amal"), "amal", agents, RoutingOutcome(), T0
        )


def test_pending_needs_an_owner_keeps_it_and_cannot_repeat() -> None:
    with pytest.raises(TransitionError, match="claim it"):
        case_actions.set_pending(case(), RoutingOutcome())
    owned, outcome = case(status="assigned", assignee="amal"), RoutingOutcome()
    case_actions.set_pending(owned, outcome)
    assert (owned.status, owned.assignee) == ("pending", "amal")
    event = outcome.events[0]
    assert (event.type, event.data.previous_status, event.data.agent_id) == (
        ev.CASE_STATUS_CHANGED,
        "assigned",
        "amal",
    )
    with pytest.raises(TransitionError, match="already pending"):
        case_actions.set_pending(owned, RoutingOutcome())


def test_resolve_releases_the_owner_keeps_them_recorded_and_cannot_repeat() -> None:
    agents = {"amal": agent("amal", load=1)}
    owned, outcome = case(status="assigned", assignee="amal"), RoutingOutcome()
    case_actions.close(owned, "resolved", agents, outcome, LATER)
    assert (owned.status, owned.assignee, owned.resolved_at) == ("resolved", "amal", LATER)
    assert agents["amal"].load == 0
    assert outcome.events[0].data.previous_status == "assigned"
    with pytest.raises(TransitionError, match="it is resolved"):
        case_actions.close(owned, "resolved", agents, RoutingOutcome(), LATER)


def test_reopen_goes_back_to_the_previous_owner_with_room() -> None:
    # sara is less loaded, but the case goes back to the agent who knows it.
    agents = {"amal": agent("amal", load=1), "sara": agent("sara")}
    closed = case(status="resolved", assignee="amal")
    closed.resolved_at = T0
    outcome = RoutingOutcome()
    case_actions.reopen(closed, agents, outcome, LATER, message_id="m2")
    assert types(outcome) == [ev.CASE_STATUS_CHANGED, ev.CASE_ASSIGNED]
    reopened = outcome.events[0].data
    # The SLA service restarts its clocks on this event: reopened, from resolved.
    assert (reopened.case.status, reopened.previous_status) == ("reopened", "resolved")
    assert reopened.case.resolved_at is None
    assert (closed.status, closed.assignee, agents["amal"].load) == ("assigned", "amal", 2)
    assert closed.queued_at == LATER


def test_reopen_goes_to_another_agent_when_the_owner_is_full() -> None:
    agents = {"amal": agent("amal", load=2), "sara": agent("sara")}
    closed = case(status="resolved", assignee="amal")
    case_actions.reopen(closed, agents, RoutingOutcome(), LATER)
    assert (closed.assignee, agents["amal"].load, agents["sara"].load) == ("sara", 2, 1)


def test_reopen_waits_in_the_queue_when_nobody_has_room() -> None:
    agents = {"amal": agent("amal", online=False)}
    closed, outcome = case(status="no_action"), RoutingOutcome()
    case_actions.reopen(closed, agents, outcome, LATER)
    assert (closed.status, closed.assignee, closed.queued_at) == ("reopened", None, LATER)
    assert case_actions.in_queue(closed)
    assert case_actions.waiting_since(closed) == LATER
    assert types(outcome) == [ev.CASE_STATUS_CHANGED]


def test_reopen_of_an_open_case_is_refused() -> None:
    with pytest.raises(TransitionError, match="not closed"):
        case_actions.reopen(case(), {}, RoutingOutcome(), LATER)


def test_first_recorded_reply_sets_first_response_and_is_stored_as_outbound() -> None:
    open_case, outcome = case(status="assigned", assignee="amal"), RoutingOutcome()
    reply = case_actions.reply_message(open_case, "amal", "called the customer", LATER, LATER)
    assert case_actions.record_reply(open_case, reply, outcome) is True
    again = case_actions.reply_message(open_case, "amal", "follow-up", LATER, LATER)
    assert case_actions.record_reply(open_case, again, outcome) is False
    assert open_case.first_response_at == LATER
    assert [(e.type, e.data.first_response, e.data.agent_id) for e in outcome.events] == [
        (ev.CASE_RESPONDED, True, "amal"),
        (ev.CASE_RESPONDED, False, "amal"),
    ]
    stored, case_id = outcome.stored_messages[0]
    assert (stored.direction, stored.conversation_id, case_id) == (
        "outbound",
        open_case.conversation_id,
        "c1",
    )
    assert stored.id != again.id


def test_a_reply_on_a_closed_case_is_refused() -> None:
    closed = case(status="resolved")
    reply = case_actions.reply_message(closed, "amal", "late", LATER, LATER)
    with pytest.raises(TransitionError):
        case_actions.record_reply(closed, reply, RoutingOutcome())


def test_a_reply_sent_before_the_case_opened_is_refused() -> None:
    open_case = case(status="assigned", assignee="amal")
    reply = case_actions.reply_message(open_case, "amal", "early", T0 - timedelta(1), LATER)
    with pytest.raises(case_actions.InvalidInput, match="before case c1 opened"):
        case_actions.record_reply(open_case, reply, RoutingOutcome())
