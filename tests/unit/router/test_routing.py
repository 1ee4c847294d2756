import itertools

from casewire_common import events as ev
from casewire_common.messages import CanonicalMessage
from casewire_router.domain.assignment import AgentState, choose_agent
from casewire_router.domain.batch import BatchState
from casewire_router.domain.case import CaseState
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.routing import CaseRouter
from casewire_router.domain.rules import PRIORITY_ORDER, parse_rules
from casewire_router.domain.urgency import W_NEGATIVE_MILD, default_model, priority_for, score

from tests.unit.router.factories import T0, message

RULES = parse_rules(
    """
version: 1
default_team: care
teams: [care, shipping]
rules:
  - id: shipping
    when: {any: [shipping, "حالة الطلب"]}
    then: {team: shipping, priority: P3, tags: [shipping]}
  - id: praise
    when: {any: ["thank you"]}
    then: {skip: true}
    stop: true
"""
)


def agents() -> dict[str, AgentState]:
    return {
        "amal": AgentState("amal", ["shipping", "care"], ["ar", "en"], 2, True, 0, None),
        "nikos": AgentState("nikos", ["care"], ["el", "en"], 1, True, 0, None),
        "off": AgentState("off", ["shipping"], ["ar"], 5, False, 0, None),
    }


def route(
    messages: list[CanonicalMessage],
    open_cases: dict[str, CaseState],
    team_agents: dict[str, AgentState],
) -> RoutingOutcome:
    counter = itertools.count(1)
    state = BatchState(open_cases=open_cases, agents=team_agents)
    return CaseRouter(RULES, default_model()).route_batch(
        messages, state, new_id=lambda: f"case-{next(counter)}", now=T0
    )


def test_first_customer_message_opens_an_assigned_case_with_its_decision() -> None:
    team_agents = agents()
    outcome = route([message("where is my shipping?", language="en")], {}, team_agents)
    types = [event.type for event in outcome.events]
    assert types == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    case = outcome.cases["case-1"]
    assert (case.team, case.status, case.assignee) == ("shipping", "assigned", "amal")
    decision = outcome.events[1].data.decision
    assert decision is not None
    assert decision.matched_rules == ["shipping"]
    assert decision.assignee == "amal"
    assert [c.agent_id for c in decision.candidates] == ["amal", "off"]
    assert team_agents["amal"].load == 1


def test_follow_up_threads_into_the_open_case_and_brand_reply_is_first_response() -> None:
    open_cases: dict[str, CaseState] = {}
    outcome = route(
        [
            message("shipping?", pid="1"),
            message("hello??", pid="2", minutes=1),
            message("We are on it", pid="3", direction="outbound", author="brand", minutes=5),
            message("ok", pid="4", minutes=6),
            message("Done", pid="5", direction="outbound", author="brand", minutes=7),
        ],
        open_cases,
        agents(),
    )
    assert list(outcome.cases) == ["case-1"]
    responded = [e for e in outcome.events if e.type == ev.CASE_RESPONDED]
    assert [e.data.first_response for e in responded] == [True, False]
    assert outcome.cases["case-1"].first_response_at == T0.replace(minute=5)
    assert [e.type for e in outcome.events].count(ev.CASE_MESSAGE_ADDED) == 2


def test_brand_message_without_a_case_opens_nothing() -> None:
    outcome = route([message("Hi!", direction="outbound", author="brand")], {}, agents())
    assert outcome.cases == {}
    assert outcome.events == []
    assert len(outcome.stored_messages) == 1


def test_skip_rule_closes_the_case_as_no_action_without_assignment() -> None:
    team_agents = agents()
    open_cases: dict[str, CaseState] = {}
    outcome = route([message("thank you!")], open_cases, team_agents)
    case = outcome.cases["case-1"]
    assert case.status == "no_action"
    assert case.resolved_at == T0
    assert open_cases == {}
    assert all(agent.load == 0 for agent in team_agents.values())


def test_case_waits_in_queue_when_nobody_has_room() -> None:
    team_agents = agents()
    team_agents["nikos"].load = 1
    team_agents["amal"].online = False
    outcome = route([message("hello")], {}, team_agents)
    assert [e.type for e in outcome.events] == [ev.CASE_CREATED]
    assert outcome.cases["case-1"].status == "queued"


def test_assignment_never_exceeds_capacity_and_prefers_language() -> None:
    pool = agents()
    choice = choose_agent("care", "el", list(pool.values()))
    assert choice.agent_id == "nikos"
    pool["nikos"].load = 1
    choice = choose_agent("care", "el", list(pool.values()))
    assert choice.agent_id == "amal"
    assert "nobody with room speaks el" in choice.reason


def test_least_loaded_then_longest_waiting_wins() -> None:
    a = AgentState("a", ["care"], [], 4, True, 2, None)
    b = AgentState("b", ["care"], [], 4, True, 1, T0)
    c = AgentState("c", ["care"], [], 4, True, 1, T0.replace(hour=8))
    assert choose_agent("care", None, [a, b, c]).agent_id == "c"


def test_a_large_team_lists_the_chosen_agent_and_runners_up_and_counts_the_rest() -> None:
    """The decision's size does not grow with the team: five listed, best first, every agent
    counted by reason; the ranking of those listed is the one the choice used."""
    team = [
        AgentState(
            f"a{index:03d}",
            ["care"],
            ["el"] if index % 10 == 0 else ["en"],
            4,
            True,
            index % 4,
            None,
        )
        for index in range(100)
    ]
    team += [
        AgentState("full1", ["care"], ["el"], 2, True, 2, None),
        AgentState("gone", ["care"], ["el"], 2, False, 0, None),
        AgentState("other", ["billing"], ["el"], 2, True, 0, None),
    ]
    choice = choose_agent("care", "el", team)
    assert choice.agent_id == "a000"  # speaks Greek, load 0
    assert [c.agent_id for c in choice.candidates] == ["a000", "a020", "a040", "a060", "a080"]
    assert choice.considered == {"has room": 100, "at capacity": 1, "offline": 1}
    assert all(c.eligible and c.speaks_language for c in choice.candidates)

    everyone_busy = [
        AgentState(a.id, a.teams, a.languages, a.capacity, a.online, a.capacity, None) for a in team
    ]
    waiting = choose_agent("care", "el", everyone_busy)
    assert waiting.agent_id is None
    assert [c.agent_id for c in waiting.candidates] == ["a000", "a001", "a002", "a003", "a004"]
    assert waiting.considered == {"at capacity": 101, "offline": 1}

    requested = choose_agent("care", "el", team, requested="a099")
    assert [c.agent_id for c in requested.candidates][:2] == ["a099", "a000"]
    assert requested.reason == "requested by rule"


def test_crisis_words_in_every_language_raise_urgency_to_p1_or_p2() -> None:
    model = default_model()
    for text in (
        "the app is down and I was hacked",
        "التطبيق لا يعمل وتم اختراق حسابي",
        "η εφαρμογή δεν λειτουργεί, απάτη!",
        "แอปล่ม ใช้งานไม่ได้เลย",
        "la app no funciona, es una estafa",
    ):
        urgency = score(model, message(text))
        assert priority_for(urgency.score) in {"P1", "P2"}, (text, urgency)
        assert "crisis" in {signal.name for signal in urgency.signals}


def test_calm_private_question_is_low_priority() -> None:
    urgency = score(default_model(), message("what are your opening hours?", channel="dm"))
    # At most a mild negative tone (the English model learnt from airline tweets, where a
    # question is often a complaint): far from P3.
    assert urgency.score <= W_NEGATIVE_MILD
    assert priority_for(urgency.score) == "P4"


def test_each_case_event_counts_one_version_from_1_at_creation() -> None:
    open_cases: dict[str, CaseState] = {}
    opening = route([message("shipping?", pid="1")], open_cases, agents())
    assert opening.opened == {"case-1"}
    assert [(e.type, e.data.case.version) for e in opening.events] == [
        (ev.CASE_CREATED, 1),
        (ev.CASE_ASSIGNED, 2),
    ]

    later = route(
        [
            message("any news?", pid="2", minutes=1),
            message("On it", pid="3", direction="outbound", author="brand", minutes=3),
            message("On it, really", pid="4", direction="outbound", author="brand", minutes=4),
        ],
        open_cases,
        agents(),
    )
    assert [e.data.case.version for e in later.events] == [3, 4, 5]
    # Every event changes the case's version, so the case is written back even when nothing
    # else about it changed (a second reply).
    assert (later.opened, list(later.cases)) == (set(), ["case-1"])
    assert later.cases["case-1"].version == 5


def test_new_tag_or_first_known_language_changes_an_open_case() -> None:
    open_cases: dict[str, CaseState] = {}
    route([message("hello", pid="1")], open_cases, agents())
    tagged = route([message("about my shipping", pid="2", minutes=1)], open_cases, agents())
    assert tagged.cases["case-1"].tags == ["shipping"]
    with_language = route([message("hi", pid="3", language="en", minutes=2)], open_cases, agents())
    assert with_language.cases["case-1"].language == "en"


def test_shouting_counts_capitals_among_letters_that_have_a_case_in_any_script() -> None:
    model = default_model()

    def signals(text: str) -> set[str]:
        return {signal.name for signal in score(model, message(text, channel="dm")).signals}

    assert "shouting" in signals("WHERE IS MY PARCEL")
    assert "shouting" in signals("ΠΟΥ ΕΙΝΑΙ Η ΠΑΡΑΓΓΕΛΙΑ ΜΟΥ")
    assert "shouting" in signals("شكرا جزيلا لكم على المساعدة THANK YOUUU")  # Arabic has no case
    assert "shouting" in signals("hello!!!")
    assert "shouting" not in signals("Where Is My Parcel")
    assert "shouting" not in signals("OK 👍 FINE")  # fewer than ten letters with a case


def test_an_edit_is_published_on_its_case_and_a_more_urgent_text_raises_the_priority() -> None:
    outcome = route(
        [
            message("what are your opening hours?", pid="1", channel="dm"),
            message(
                "YOUR APP IS DOWN, outage everywhere, I lost my money!!",
                pid="1",
                channel="dm",
                event="edit",
                minutes=2,
            ),
        ],
        {},
        agents(),
    )
    opened_priority = outcome.events[0].data.case.priority
    events = [e for e in outcome.events if e.type not in (ev.CASE_CREATED, ev.CASE_ASSIGNED)]
    assert [e.type for e in events] == [ev.CASE_MESSAGE_UPDATED, ev.CASE_PRIORITY_CHANGED]
    updated, raised = events
    assert updated.data.text == "YOUR APP IS DOWN, outage everywhere, I lost my money!!"
    assert updated.data.deleted is None
    assert updated.at == T0.replace(minute=2)  # published at the edit's time
    assert raised.data.previous_priority == opened_priority
    assert PRIORITY_ORDER[raised.data.case.priority] < PRIORITY_ORDER[opened_priority]
    assert [message.event for message in outcome.edits] == ["edit"]


def test_an_edit_to_a_calmer_text_never_lowers_the_priority_and_a_delete_is_published() -> None:
    outcome = route(
        [
            message("outage! nothing works, I am furious", pid="1"),
            message("all fine now, thanks", pid="1", event="edit", minutes=1),
            message("", pid="1", event="delete", minutes=2),
        ],
        {},
        agents(),
    )
    case = outcome.cases["case-1"]
    opened_priority = outcome.events[0].data.case.priority
    updates = [e for e in outcome.events if e.type == ev.CASE_MESSAGE_UPDATED]
    assert [(e.data.text, e.data.deleted) for e in updates] == [
        ("all fine now, thanks", None),
        (None, True),
    ]
    assert case.priority == opened_priority
    assert ev.CASE_PRIORITY_CHANGED not in [e.type for e in outcome.events]


def test_an_edit_of_a_message_the_router_never_got_is_stored_and_publishes_nothing() -> None:
    outcome = route([message("edited", pid="unknown", event="edit")], {}, agents())
    assert outcome.events == []
    assert [message.platform_message_id for message in outcome.edits] == ["unknown"]


def test_a_batch_locks_only_the_agents_its_cases_can_reach() -> None:
    router = CaseRouter(RULES, default_model())
    new = message("حالة الطلب؟", language="ar", conversation="x:brand:new:cust-new")
    follow_up = message("still waiting", conversation="x:brand:open:cust-open")
    reopening = CaseState(
        id="old",
        conversation_id="x:brand:old:cust-old",
        customer_id="cust-old",
        account_id="brand",
        platform="x",
        channel="dm",
        visibility="private",
        status="resolved",
        priority="P3",
        urgency_score=10,
        team="vip",
        assignee="sara",
        tags=[],
        language="en",
        opened_at=T0,
    )
    scope = router.agents_needed(
        [new, follow_up], [reopening], open_conversations={"x:brand:open:cust-open"}
    )
    # The new case's team by the rules, the loaded case's team and owner; not `care`, whose
    # follow-up joins an open case and assigns nobody.
    assert (scope.teams, scope.agent_ids) == (frozenset({"shipping", "vip"}), frozenset({"sara"}))
