"""Threading across conversations, reopening, bursts and incidents, escalation: pure domain."""

import itertools
from datetime import timedelta

from casewire_common import events as ev
from casewire_common.messages import CanonicalMessage
from casewire_router.domain.assignment import AgentState
from casewire_router.domain.batch import BatchState, QuietIncident, TopicState
from casewire_router.domain.case import CaseState, CaseWindows
from casewire_router.domain.escalation import escalate, escalate_recorded, undo_escalation
from casewire_router.domain.incidents import INCIDENT_TAG
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.routing import CaseRouter, case_router_for
from casewire_router.domain.rules import parse_rules

from tests.unit.router.factories import T0, message

RULES = parse_rules(
    """
version: 1
default_team: care
teams: [care, incidents, leads]
rules:
  - id: outage
    when: {any: [outage]}
    then: {team: incidents, priority: P2}
escalation:
  - id: breach-to-leads
    when: {alerts: [breached], clocks: [first_response], priorities: [P2, P3, P4]}
    then: {priority: P1, team: leads, assign_to: lena, tags: [escalated]}
"""
)
WINDOWS = CaseWindows(
    reopen=timedelta(days=2),
    merge=timedelta(hours=1),
    incident=timedelta(minutes=15),
    incident_threshold=3,
)


def team() -> dict[str, AgentState]:
    return {
        "amal": AgentState("amal", ["care", "incidents"], ["ar", "en"], 5, True, 0, None),
        "lena": AgentState("lena", ["leads"], ["en"], 2, True, 0, None),
    }


class Desk:
    """One router and the state it keeps between batches, as the database would."""

    def __init__(self, agents: dict[str, AgentState] | None = None) -> None:
        self.router: CaseRouter = case_router_for(RULES, WINDOWS)
        self.state = BatchState(agents=team() if agents is None else agents)
        self.counter = itertools.count(1)
        self.cases: dict[str, CaseState] = {}

    def route(self, *messages: CanonicalMessage) -> RoutingOutcome:
        outcome = self.router.route_batch(
            list(messages), self.state, new_id=lambda: f"id-{next(self.counter)}", now=T0
        )
        self.cases.update(outcome.cases)
        return outcome

    def resolve(self, case_id: str, minutes: float) -> None:
        """What the case API does on resolve, as far as threading needs to know."""
        case = self.cases[case_id]
        case.status = "resolved"
        case.resolved_at = T0 + timedelta(minutes=minutes)
        self.state.open_cases = {
            conversation: open_case
            for conversation, open_case in self.state.open_cases.items()
            if open_case.id != case_id
        }
        self.state.resolved[case.conversation_id] = case
        if case.assignee is not None:
            self.state.agents[case.assignee].load -= 1


def types(outcome: RoutingOutcome) -> list[str]:
    return [event.type for event in outcome.events]


def test_public_post_and_dm_of_one_customer_within_the_window_are_one_case() -> None:
    desk = Desk()
    desk.route(message("my order never came", pid="p1", conversation="x:brand:t1:cust1"))
    dm = desk.route(
        message("sent you the order number", pid="d1", channel="dm", conversation="x:brand:cust1")
    )
    assert types(dm) == [ev.CASE_MERGED, ev.CASE_MESSAGE_ADDED]
    merged = dm.events[0].data
    assert merged.case.id == "id-1"
    assert merged.merged_conversation_id == "x:brand:cust1"
    assert dm.links == [("x:brand:cust1", "id-1")]
    assert dm.stored_messages[0][1] == "id-1"
    # Follow-ups in the DM now attach to that case too.
    follow_up = desk.route(
        message("any news?", pid="d2", channel="dm", conversation="x:brand:cust1", minutes=5)
    )
    assert types(follow_up) == [ev.CASE_MESSAGE_ADDED]


def test_dm_outside_the_merge_window_or_from_another_customer_opens_its_own_case() -> None:
    desk = Desk()
    desk.route(message("my order never came", pid="p1", conversation="x:brand:t1:cust1"))
    late = desk.route(
        message("hello", pid="d1", channel="dm", conversation="x:brand:cust1", minutes=61)
    )
    assert types(late)[0] == ev.CASE_CREATED
    other = desk.route(
        message("hello", pid="d2", channel="dm", conversation="x:brand:cust2", author="cust2")
    )
    assert types(other)[0] == ev.CASE_CREATED


def test_same_visibility_is_never_merged() -> None:
    desk = Desk()
    desk.route(message("order late", pid="p1", conversation="x:brand:t1:cust1"))
    second_thread = desk.route(message("still late", pid="p2", conversation="x:brand:t2:cust1"))
    assert types(second_thread)[0] == ev.CASE_CREATED


def test_message_after_resolution_reopens_within_the_window_back_to_its_owner() -> None:
    desk = Desk()
    desk.route(message("where is my refund", pid="1"))
    assert desk.cases["id-1"].assignee == "amal"
    desk.resolve("id-1", minutes=10)
    again = desk.route(message("it did not arrive", pid="2", minutes=60))
    assert types(again) == [ev.CASE_STATUS_CHANGED, ev.CASE_ASSIGNED, ev.CASE_MESSAGE_ADDED]
    reopened = again.events[0].data
    assert (reopened.previous_status, reopened.case.status) == ("resolved", "reopened")
    assert reopened.case.resolved_at is None
    assert again.events[1].data.agent_id == "amal"
    assert desk.state.agents["amal"].load == 1


def test_message_after_the_reopen_window_opens_a_new_case() -> None:
    desk = Desk()
    desk.route(message("where is my refund", pid="1"))
    desk.resolve("id-1", minutes=10)
    later = desk.route(message("new problem", pid="2", minutes=10 + 2 * 24 * 60 + 1))
    assert types(later)[0] == ev.CASE_CREATED
    assert later.events[0].data.case.id != "id-1"


def test_reopened_case_waits_in_the_queue_when_its_owner_has_no_room() -> None:
    agents = team()
    desk = Desk(agents)
    desk.route(message("where is my refund", pid="1"))
    desk.resolve("id-1", minutes=10)
    agents["amal"].online = False
    again = desk.route(message("still nothing", pid="2", minutes=30))
    assert types(again) == [ev.CASE_STATUS_CHANGED, ev.CASE_MESSAGE_ADDED]
    assert again.events[-1].data.case.assignee is None


def test_customer_answer_takes_a_pending_case_back_to_its_owner() -> None:
    desk = Desk()
    desk.route(message("refund please", pid="1"))
    desk.cases["id-1"].status = "pending"
    answer = desk.route(message("here is the receipt", pid="2", minutes=3))
    status = [e.data for e in answer.events if e.type == ev.CASE_STATUS_CHANGED]
    assert [(d.previous_status, d.case.status) for d in status] == [("pending", "assigned")]


def test_repeat_contact_counts_the_customers_earlier_messages() -> None:
    desk = Desk()
    desk.state.contact_times[("x", "brand", "cust1")] = [T0 - timedelta(hours=2), T0]
    outcome = desk.route(message("hello?", pid="1", minutes=1))
    [decision] = outcome.decisions.values()
    [repeat] = [s for s in decision.urgency.signals if s.name == "repeated_contact"]
    assert repeat.detail == "2 earlier contacts in 24 h"
    assert len(desk.state.contact_times[("x", "brand", "cust1")]) == 3


def outage(n: int, minutes: float = 0) -> CanonicalMessage:
    return message(
        "your app has an outage",
        pid=f"o{n}",
        author=f"c{n}",
        conversation=f"x:brand:t{n}:c{n}",
        minutes=minutes,
    )


def test_burst_on_one_crisis_topic_opens_one_incident_and_raises_its_cases() -> None:
    desk = Desk()
    below = desk.route(outage(1), outage(2))
    assert below.incidents == []
    assert {topic for topic, _ in below.topic_hits} == {"outage"}
    burst = desk.route(outage(3))
    [change] = burst.incidents
    assert change.event_type == ev.INCIDENT_OPENED
    assert change.data.topic == "outage"
    assert change.data.case_count == 3
    assert len(change.data.added_case_ids) == 3
    assert desk.state.topics["outage"].incident_id == change.data.incident_id
    assert desk.state.topics["outage"].recent_case_ids == []  # counted from now on, not listed
    # The third case is in the batch; the two earlier ones are raised when the adapter
    # loaded them (TopicState.open_cases); here only the batch's own is at hand.
    raised = [e.data for e in burst.events if e.type == ev.CASE_PRIORITY_CHANGED]
    assert [(d.case.priority, d.incident_id) for d in raised] == [("P1", change.data.incident_id)]
    assert INCIDENT_TAG in raised[0].case.tags


def test_later_cases_on_the_topic_join_the_open_incident() -> None:
    desk = Desk()
    desk.route(outage(1), outage(2), outage(3))
    incident_id = desk.state.topics["outage"].incident_id
    assert incident_id is not None
    update = desk.route(outage(4, minutes=1))
    [decision] = update.decisions.values()
    assert "burst" in {signal.name for signal in decision.urgency.signals}  # 3 others before
    [change] = update.incidents
    assert change.event_type == ev.INCIDENT_UPDATED
    assert change.data.incident_id == incident_id
    assert len(change.data.added_case_ids) == 1
    assert change.data.case_count == 4


def test_incident_links_and_raises_earlier_cases_the_adapter_loaded() -> None:
    desk = Desk()
    earlier = desk.route(outage(1), outage(2))
    loaded = {case_id: desk.cases[case_id] for case_id in earlier.opened}
    desk.state.topics["outage"] = TopicState(
        recent_count=len(loaded), recent_case_ids=sorted(loaded), open_cases=loaded
    )
    burst = desk.route(outage(3))
    raised = {e.data.case.id for e in burst.events if e.type == ev.CASE_PRIORITY_CHANGED}
    assert raised == set(loaded) | {next(iter(burst.opened))}


def test_an_incident_the_adapter_found_quiet_is_published_closed_before_a_new_burst() -> None:
    desk = Desk()
    quiet = QuietIncident("inc-1", "outage", T0 - timedelta(hours=1), T0 - timedelta(minutes=20), 4)
    desk.state.quiet_incidents = [quiet]
    burst = desk.route(outage(1), outage(2), outage(3))
    assert [change.event_type for change in burst.incidents] == [
        ev.INCIDENT_CLOSED,
        ev.INCIDENT_OPENED,
    ]
    closed = burst.incidents[0].data
    assert (closed.incident_id, closed.status, closed.case_count) == ("inc-1", "closed", 4)
    assert closed.added_case_ids == []
    assert desk.state.quiet_incidents == []  # published once


def test_escalation_raises_priority_moves_team_and_gives_the_case_to_the_lead() -> None:
    desk = Desk()
    desk.route(message("where is my parcel", pid="1"))
    case = desk.cases["id-1"]
    assert (case.team, case.priority, case.assignee) == ("care", case.priority, "amal")
    rule = RULES.escalation_for("breached", "first_response", case.team, case.priority)
    assert rule is not None
    outcome = RoutingOutcome()
    drain = escalate(case, rule, "alert-1", desk.state.agents, outcome, T0)
    assert types(outcome) == [ev.CASE_ESCALATED, ev.CASE_ASSIGNED]
    escalated = outcome.events[0].data
    assert (escalated.escalation_rule, escalated.sla_alert_id) == ("breach-to-leads", "alert-1")
    assert (escalated.case.priority, escalated.case.team) == ("P1", "leads")
    assert "escalated" in escalated.case.tags
    assert case.assignee == "lena"
    assert desk.state.agents["amal"].load == 0
    assert desk.state.agents["lena"].load == 1
    assert "care" in drain  # amal has room again


def test_escalation_leaves_closed_cases_and_never_overfills_the_lead() -> None:
    desk = Desk()
    desk.route(message("a", pid="1", author="a", conversation="x:brand:t1:a"))
    desk.state.agents["lena"].load = 2  # full
    case = desk.cases["id-1"]
    rule = RULES.escalation_for("breached", "first_response", case.team, case.priority)
    assert rule is not None
    outcome = RoutingOutcome()
    escalate(case, rule, "alert-2", desk.state.agents, outcome, T0)
    assert types(outcome) == [ev.CASE_ESCALATED]
    assert (case.team, case.assignee, case.status) == ("leads", None, "queued")
    closed = RoutingOutcome()
    case.status = "resolved"
    assert escalate(case, rule, "alert-3", desk.state.agents, closed, T0) == set()
    assert closed.events == []


def test_undoing_an_escalation_restores_priority_team_tags_and_the_owner_before_it() -> None:
    desk = Desk()
    desk.route(message("where is my parcel", pid="1"))
    case = desk.cases["id-1"]
    before = (case.priority, case.team, list(case.tags), case.assignee)
    rule = RULES.escalation_for("breached", "first_response", case.team, case.priority)
    assert rule is not None
    _, record = escalate_recorded(case, rule, "breach-1", desk.state.agents, RoutingOutcome(), T0)
    assert record is not None
    assert record.case_version == case.version  # escalated, then given to the lead

    outcome = RoutingOutcome()
    drain = undo_escalation(case, record, "retraction-1", desk.state.agents, outcome, T0)
    assert drain == {"leads"}  # lena's place is free again
    assert types(outcome) == [ev.CASE_ESCALATED, ev.CASE_ASSIGNED]
    undo = outcome.events[0].data
    assert (undo.undoes_sla_alert_id, undo.sla_alert_id) == ("breach-1", "retraction-1")
    assert undo.previous_priority == "P1"
    assert (case.priority, case.team, case.tags, case.assignee) == before
    assert desk.state.agents["lena"].load == 0
    assert desk.state.agents["amal"].load == 1
    versions = [e.data.case.version for e in outcome.events]
    assert versions == [record.case_version + 1, record.case_version + 2]


def test_an_escalation_is_not_undone_once_something_else_changed_the_case() -> None:
    desk = Desk()
    desk.route(message("where is my parcel", pid="1"))
    case = desk.cases["id-1"]
    rule = RULES.escalation_for("breached", "first_response", case.team, case.priority)
    assert rule is not None
    _, record = escalate_recorded(case, rule, "breach-1", desk.state.agents, RoutingOutcome(), T0)
    assert record is not None
    desk.route(message("any news?", pid="2", minutes=1))  # the customer wrote again
    outcome = RoutingOutcome()
    assert undo_escalation(case, record, "retraction-1", desk.state.agents, outcome, T0) is None
    assert outcome.events == []
    assert (case.priority, case.team, case.assignee) == ("P1", "leads", "lena")


def test_public_brand_reply_without_customer_finds_its_case_by_the_message_it_answers() -> None:
    """Meta does not say whom the Page answered: the reply's conversation names the Page."""
    desk = Desk()
    desk.route(
        message(
            "my order is late",
            pid="c1",
            platform="facebook",
            channel="comment",
            conversation="facebook:brand:post1:cust1",
        )
    )
    reply = message(
        "Sorry! Sending a DM",
        pid="r1",
        platform="facebook",
        channel="reply",
        direction="outbound",
        author="brand",
        conversation="facebook:brand:post1:brand",
        minutes=2,
    )
    reply = reply.model_copy(update={"in_reply_to": "c1"})
    outcome = desk.route(reply)
    assert types(outcome) == [ev.CASE_RESPONDED]
    responded = outcome.events[0].data
    assert (responded.case.id, responded.first_response) == ("id-1", True)
    assert outcome.stored_messages[0][1] == "id-1"
    unrelated = message(
        "Hello all",
        pid="r2",
        platform="facebook",
        channel="reply",
        direction="outbound",
        author="brand",
        conversation="facebook:brand:post1:brand",
        minutes=3,
    )
    unrelated = unrelated.model_copy(update={"in_reply_to": "someone-else"})
    assert types(desk.route(unrelated)) == []


def x_tweet(
    text: str,
    pid: str,
    *,
    root: str,
    replying_to: str | None,
    minutes: float,
    customer: str = "cust1",
    direction: str = "inbound",
) -> CanonicalMessage:
    """A tweet as ingest gives it: X names only the tweet it answers, taken as the root."""
    tweet = message(
        text,
        pid=pid,
        channel="reply" if replying_to else "mention",
        conversation=f"x:brand:{root}:{customer}",
        minutes=minutes,
        direction=direction,
        author="brand" if direction == "outbound" else customer,
    )
    return tweet.model_copy(update={"in_reply_to": replying_to})


def test_a_back_and_forth_on_x_stays_one_case_although_each_hop_has_a_new_root() -> None:
    desk = Desk()
    complaint = x_tweet("@brand my order never came", "t1", root="t1", replying_to=None, minutes=0)
    answer = x_tweet(
        "@cust1 sorry, which order?",
        "t2",
        root="t1",
        replying_to="t1",
        minutes=2,
        direction="outbound",
    )
    follow_up = x_tweet("@brand #4521, still nothing", "t3", root="t2", replying_to="t2", minutes=5)
    assert types(desk.route(complaint)) == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    assert types(desk.route(answer)) == [ev.CASE_RESPONDED]

    outcome = desk.route(follow_up)

    assert types(outcome) == [ev.CASE_MESSAGE_ADDED]
    assert outcome.events[0].data.case.id == "id-1"
    assert outcome.stored_messages == [(follow_up, "id-1")]
    assert outcome.links == [("x:brand:t2:cust1", "id-1")]
    # The next hop is found through the new key, and in one batch through the message itself.
    again = x_tweet("@brand hello?", "t4", root="t2", replying_to="t2", minutes=9)
    hop = x_tweet("@brand anyone?", "t5", root="t4", replying_to="t4", minutes=10)
    assert [e.data.case.id for e in desk.route(again, hop).events] == ["id-1", "id-1"]


def test_another_customer_answering_the_brands_reply_opens_their_own_case() -> None:
    desk = Desk()
    desk.route(x_tweet("@brand my order never came", "t1", root="t1", replying_to=None, minutes=0))
    desk.route(
        x_tweet(
            "@cust1 sorry!",
            "t2",
            root="t1",
            replying_to="t1",
            minutes=2,
            direction="outbound",
        )
    )
    stranger = x_tweet(
        "@brand same here",
        "t3",
        root="t2",
        replying_to="t2",
        minutes=5,
        customer="cust2",
    )

    outcome = desk.route(stranger)

    assert types(outcome) == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    assert outcome.events[0].data.case.id == "id-2"


def test_a_thank_you_after_resolution_is_kept_with_the_case_which_stays_resolved() -> None:
    rules = parse_rules(
        """
version: 1
default_team: care
teams: [care]
rules:
  - id: praise
    when: {any: [thank you, thanks], none: [not, still]}
    then: {skip: true, tags: [praise]}
"""
    )
    desk = Desk()
    desk.router = case_router_for(rules, WINDOWS)
    desk.route(message("where is my refund", pid="1"))
    desk.resolve("id-1", minutes=10)

    thanks = desk.route(message("got it, thank you!", pid="2", minutes=60))

    assert types(thanks) == [ev.CASE_MESSAGE_ADDED]
    assert thanks.events[0].data.case.status == "resolved"
    assert [(m.platform_message_id, case_id) for m, case_id in thanks.stored_messages] == [
        ("2", "id-1")
    ]
    assert desk.state.agents["amal"].load == 0
    # A real follow-up within the window still reopens it.
    again = desk.route(message("it still did not arrive", pid="3", minutes=70))
    assert types(again)[0] == ev.CASE_STATUS_CHANGED
