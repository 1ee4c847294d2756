"""Bot handover in the routing domain (pure): a conversation a chatbot answers opens no case and
starts no clock; the handover to humans opens it at the handover's time with the transcript;
the bot's messages never count as a response. Decided by event time, whatever the order."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import decode_event
from casewire_common.messages import CanonicalMessage, message_id
from casewire_common.metrics import new_registry
from casewire_common.thread_control import PAGE_INBOX_APP_ID, ThreadControl, thread_control_id
from casewire_router.adapters.memory import InMemoryMessageStore
from casewire_router.domain.assignment import AgentScope, AgentState
from casewire_router.domain.batch import BatchState
from casewire_router.domain.case import CaseState, CaseWindows
from casewire_router.domain.deliveries import Routable
from casewire_router.domain.handover import DeliveryMarks, HandoverPolicy
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.routing import case_router_for
from casewire_router.domain.rules import RulesError, RuleSet, parse_rules
from casewire_router.message_service import MessageService, RouterMetrics
from casewire_router.settings import RouterSettings
from pydantic import ValidationError

from tests.unit.router.factories import T0
from tests.unit.router.test_message_service import RecordedDeadLetters

CASEWIRE_APP = "990011223344556"
BOT_APP = "618371462290011"
PAGE = "104569845012345"
PSID = "6582312765432101"
MESSENGER = f"facebook:{PAGE}:{PSID}"
WA_NUMBER = "106540352242922"
WA_CUSTOMER = "306912345678"
WHATSAPP = f"whatsapp:{WA_NUMBER}:{WA_CUSTOMER}"

RULES = parse_rules(
    """
version: 1
default_team: care
teams: [care, shipping]
rules:
  - id: shipping
    when: {any: [parcel, "αποστολή", "การจัดส่ง", "شحنة"]}
    then: {team: shipping, tags: [shipping]}
  - id: praise
    when: {any: [thanks]}
    then: {skip: true, tags: [praise]}
handoff:
  customer_says: [agent, human, "موظف", "άνθρωπο", "เจ้าหน้าที่"]
  bot_says: ["#handoff"]
"""
)
POLICY = HandoverPolicy(
    casewire_app_ids=frozenset({CASEWIRE_APP}),
    bot_accounts=frozenset({("whatsapp", WA_NUMBER)}),
)
STANDBY = DeliveryMarks(standby=True)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def dm(
    text: str,
    pid: str,
    minutes: float,
    *,
    outbound: bool = False,
    platform: str = "facebook",
) -> CanonicalMessage:
    account, customer = (PAGE, PSID) if platform == "facebook" else (WA_NUMBER, WA_CUSTOMER)
    fields: dict[str, Any] = {
        "id": message_id(platform, pid),
        "platform": platform,
        "channel": "dm",
        "visibility": "private",
        "direction": "outbound" if outbound else "inbound",
        "account_id": account,
        "platform_message_id": pid,
        "conversation_id": f"{platform}:{account}:{customer}",
        "author": {"id": account if outbound else customer},
        "text": text,
        "sent_at": at(minutes),
        "received_at": at(minutes) + timedelta(seconds=1),
    }
    return CanonicalMessage.model_validate(fields)


def control(action: str, minutes: float, app: str | None, **fields: Any) -> ThreadControl:
    named = "requested_owner_app_id" if action == "request" else "new_owner_app_id"
    return ThreadControl(
        id=thread_control_id("facebook", MESSENGER, action, str(minutes), app),
        platform="facebook",
        action=action,
        account_id=PAGE,
        conversation_id=MESSENGER,
        sent_at=at(minutes),
        received_at=at(minutes) + timedelta(seconds=1),
        **{named: app},
        **fields,
    )


class Desk:
    """One router and the state it keeps between batches, as the database would."""

    def __init__(self, policy: HandoverPolicy = POLICY, rules: RuleSet = RULES) -> None:
        self.router = case_router_for(rules, handover=policy)
        amal = AgentState("amal", ["care", "shipping"], ["ar", "el", "en", "th"], 5, True, 0, None)
        self.state = BatchState(agents={"amal": amal})
        self.counter = itertools.count(1)
        self.cases: dict[str, CaseState] = {}

    def route(
        self, *items: Routable, marks: dict[str, DeliveryMarks] | None = None
    ) -> RoutingOutcome:
        outcome = self.router.route_batch(
            list(items),
            self.state,
            new_id=lambda: f"case-{next(self.counter)}",
            now=at(60),
            marks=marks or {},
        )
        self.cases.update(outcome.cases)
        return outcome

    def standby(self, *messages: CanonicalMessage) -> RoutingOutcome:
        return self.route(*messages, marks={m.id: STANDBY for m in messages})

    def resolve(self, case_id: str, minutes: float) -> None:
        """What the case API does on resolve, as the next batch's load would show it."""
        case = self.cases[case_id]
        case.status, case.resolved_at = "resolved", at(minutes)
        self.state.open_cases = {
            key: open_case
            for key, open_case in self.state.open_cases.items()
            if open_case is not case
        }
        for handover in self.state.controls[case.conversation_id].handovers:
            if handover.case_id == case_id:
                handover.case_closed_at = case.resolved_at


def types(outcome: RoutingOutcome) -> list[str]:
    return [event.type for event in outcome.events]


# --- Meta's handover protocol --------------------------------------------------------------------


def test_standby_messages_open_no_case_and_the_pass_to_casewire_opens_it_then_with_them() -> None:
    desk = Desk()
    asks = dm("my parcel is lost", "m1", 0)
    bot = dm("I can help! What is your order number?", "m2", 1, outbound=True)
    again = dm("I want a human", "m3", 2)

    during = desk.standby(asks, bot, again)

    assert types(during) == []
    assert during.cases == {}
    assert during.stored_messages == [(asks, None), (bot, None), (again, None)]
    assert during.bot_phase == {asks.id, bot.id, again.id}

    handed = desk.route(control("pass", 5, CASEWIRE_APP, previous_owner_app_id=BOT_APP))

    assert types(handed) == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    created = handed.events[0]
    case = created.data.case
    assert case.opened_at == at(5)  # the clocks start at the handover, not at the first message
    assert created.at == at(5)
    assert handed.events[1].at == at(5)
    assert case.team == "shipping"  # routed on everything the customer told the bot
    assert "bot_handover" in case.tags
    assert case.first_response_at is None  # the bot's answer is no response
    assert created.data.message_id == again.id
    assert handed.transcripts == [(asks.id, case.id), (bot.id, case.id), (again.id, case.id)]
    assert handed.stored_messages == []
    assert [(h.owner, h.reason, h.case_id) for h in handed.handovers][-1] == (
        "human",
        "pass",
        case.id,
    )
    assert handed.thread_controls == [("pass", "human")]


def test_a_reply_from_casewire_after_the_handover_is_the_first_response() -> None:
    desk = Desk()
    desk.standby(dm("hello?", "m1", 0), dm("Bot here.", "m2", 1, outbound=True))
    desk.route(control("pass", 5, CASEWIRE_APP))

    reply = desk.route(dm("Hi, Nikos from care here", "m3", 8, outbound=True))

    assert types(reply) == [ev.CASE_RESPONDED]
    assert reply.events[0].data.first_response is True
    assert reply.events[0].data.case.first_response_at == at(8)


def test_a_standby_message_read_after_a_later_pass_is_transcript_not_a_second_case() -> None:
    desk = Desk()
    desk.standby(dm("the app crashes", "m1", 0))
    handed = desk.route(control("pass", 5, CASEWIRE_APP))
    case_id = handed.events[0].data.case.id
    late = dm("still crashing", "m2", 3)  # sent before the pass, delivered after it

    outcome = desk.standby(late)

    assert types(outcome) == []
    assert outcome.stored_messages == [(late, case_id)]
    assert outcome.bot_phase == {late.id}
    assert len(desk.cases) == 1
    assert desk.cases[case_id].opened_at == at(5)


def test_a_pass_read_before_the_standby_messages_sent_before_it_opens_the_case_all_the_same() -> (
    None
):
    for order in ("pass first", "messages first"):
        desk = Desk()
        first, second = dm("παραγγελία;", "m1", 0), dm("αποστολή", "m2", 1)
        handover = control("pass", 2, CASEWIRE_APP)
        items: list[Routable] = (
            [handover, first, second] if order == "pass first" else [first, second, handover]
        )

        outcome = desk.route(*items, marks={first.id: STANDBY, second.id: STANDBY})

        (created,) = [e for e in outcome.events if e.type == ev.CASE_CREATED]
        assert created.data.case.opened_at == at(2), order
        if order == "messages first":
            assert created.data.case.team == "shipping"  # routed on both (pass first: the
            # case opens on the first one read, the second joins it as transcript)
        kept_with = {message.id: case for message, case in outcome.stored_messages}
        kept_with.update(outcome.transcripts)
        assert kept_with == {first.id: created.case_id, second.id: created.case_id}
        assert outcome.bot_phase == {first.id, second.id}


def test_standby_messages_sent_after_a_pass_read_late_stay_the_bots() -> None:
    desk = Desk()
    before, after = dm("parcel?", "m1", 0), dm("hello? bot?", "m2", 5)
    desk.standby(before, after)

    handed = desk.route(control("pass", 2, CASEWIRE_APP))

    assert types(handed) == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    assert [message for message, _ in handed.transcripts] == [before.id]
    # Sent on standby after the pass: another app owned the thread again by then.
    assert handed.rerouted == set()
    assert [m.id for m in desk.state.controls[MESSENGER].waiting] == [after.id]


def test_the_page_inbox_counts_as_human_by_setting() -> None:
    desk = Desk()
    desk.standby(dm("help", "m1", 0))
    handed = desk.route(control("pass", 5, PAGE_INBOX_APP_ID))
    inbox_reply = dm("Hi! (from the Page inbox)", "m2", 7, outbound=True)
    customer = dm("thanks, and my parcel?", "m3", 8)

    answered = desk.route(
        inbox_reply,
        customer,
        marks={inbox_reply.id: DeliveryMarks(True, PAGE_INBOX_APP_ID), customer.id: STANDBY},
    )

    assert types(handed) == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    assert types(answered)[0] == ev.CASE_RESPONDED
    assert answered.events[0].data.first_response is True
    assert ev.CASE_MESSAGE_ADDED in types(answered)  # the inbox has it: customer messages count

    not_human = Desk(
        HandoverPolicy(casewire_app_ids=frozenset({CASEWIRE_APP}), page_inbox_is_human=False)
    )
    not_human.standby(dm("help", "m1", 0))
    assert types(not_human.route(control("pass", 5, PAGE_INBOX_APP_ID))) == []


def test_the_bot_taking_the_thread_back_leaves_the_case_open_and_the_next_pass_adds_to_it() -> None:
    desk = Desk()
    desk.standby(dm("help", "m1", 0))
    case_id = desk.route(control("pass", 5, CASEWIRE_APP)).events[0].data.case.id

    taken = desk.route(control("take", 10, BOT_APP, previous_owner_app_id=CASEWIRE_APP))
    second_round = dm("are you a bot?", "m2", 11)
    during = desk.standby(second_round, dm("Yes!", "m3", 12, outbound=True))
    back = desk.route(control("pass", 15, CASEWIRE_APP))

    assert types(taken) == []
    assert taken.thread_controls == [("take", "bot")]
    assert desk.cases[case_id].status == "assigned"
    assert types(during) == []
    assert {case for _, case in during.stored_messages} == {None}
    assert types(back) == []  # no second case: the open one takes the transcript
    assert [case for _, case in back.transcripts] == [case_id, case_id]


def test_a_request_for_control_changes_nothing() -> None:
    desk = Desk()
    desk.standby(dm("help", "m1", 0))

    outcome = desk.route(control("request", 3, PAGE_INBOX_APP_ID))

    assert types(outcome) == []
    assert outcome.thread_controls == [("request", "request")]
    assert desk.state.controls[MESSENGER].handovers == []


def test_without_casewires_app_ids_the_protocol_is_not_followed() -> None:
    desk = Desk(HandoverPolicy())
    message = dm("help", "m1", 0)

    outcome = desk.standby(message)
    handed = desk.route(control("pass", 5, CASEWIRE_APP))

    assert types(outcome) == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    assert outcome.events[0].data.case.opened_at == at(0)
    assert outcome.bot_phase == set()
    assert handed.thread_controls == [("pass", "not_followed")]
    assert types(handed) == []


def test_a_handover_with_no_customer_message_lets_the_next_one_open_the_case() -> None:
    desk = Desk()
    desk.standby(dm("Welcome! I'm the bot.", "m1", 0, outbound=True))
    handed = desk.route(control("pass", 1, CASEWIRE_APP))

    first = desk.route(dm("hi, my parcel", "m2", 3))

    assert types(handed) == []
    assert types(first) == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    case = first.events[0].data.case
    assert case.opened_at == at(3)
    assert desk.state.controls[MESSENGER].handovers[-1].case_id == case.id
    late_welcome = desk.standby(dm("(bot) one more thing", "m0", 0.5, outbound=True))
    assert late_welcome.stored_messages[0][1] == case.id


# --- Bot accounts and the rules file's handoff ---------------------------------------------------


def wa(text: str, pid: str, minutes: float, *, outbound: bool = False) -> CanonicalMessage:
    return dm(text, pid, minutes, outbound=outbound, platform="whatsapp")


def test_a_bot_accounts_conversation_reaches_a_human_when_the_customer_asks_for_one() -> None:
    desk = Desk()
    opening = desk.route(
        wa("وين شحنة طلبي؟", "w1", 0), wa("Your order ships today.", "w2", 1, outbound=True)
    )
    asks = wa("أريد التحدث مع موظف", "w3", 4)

    handed = desk.route(asks)
    answer = desk.route(wa("مرحبا، أنا أمل", "w4", 9, outbound=True))

    assert types(opening) == []
    assert opening.bot_phase == {message_id("whatsapp", "w1"), message_id("whatsapp", "w2")}
    assert types(handed) == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    case = handed.events[0].data.case
    assert case.opened_at == asks.sent_at
    assert case.team == "shipping"
    assert "bot_handover" in case.tags
    assert [m for m, _ in handed.transcripts] == [
        message_id("whatsapp", pid) for pid in ("w1", "w2", "w3")
    ]
    assert handed.handovers[-1].reason == "customer_asked"
    assert types(answer) == [ev.CASE_RESPONDED]
    assert answer.events[0].data.first_response is True
    assert answer.events[0].data.case.first_response_at == at(9)


def test_greek_thai_and_the_bots_marker_hand_over() -> None:
    for text, outbound, reason in (
        ("Θέλω να μιλήσω με άνθρωπο", False, "customer_asked"),
        ("ขอคุยกับเจ้าหน้าที่ค่ะ", False, "customer_asked"),
        ("Passing you to a colleague #handoff", True, "bot_said"),
    ):
        desk = Desk()
        desk.route(wa("hello", "w1", 0))
        outcome = desk.route(wa(text, "w2", 2, outbound=outbound))
        assert types(outcome) == [ev.CASE_CREATED, ev.CASE_ASSIGNED], text
        assert outcome.events[0].data.case.opened_at == at(2)
        assert outcome.handovers[-1].reason == reason


def test_agents_are_not_found_inside_other_words() -> None:
    desk = Desk()
    outcome = desk.route(wa("my travel agents booked it", "w1", 0))
    assert types(outcome) == []


def test_a_message_sent_after_the_handoff_but_read_before_it_joins_the_case() -> None:
    desk = Desk()
    desk.route(wa("hello", "w1", 0))
    after = wa("order 5521, parcel never came", "w3", 5)
    early = desk.route(after)  # read first: still the bot's, as far as the router knows
    handed = desk.route(wa("human please", "w2", 3))

    assert types(early) == []
    assert types(handed)[:3] == [ev.CASE_CREATED, ev.CASE_ASSIGNED, ev.CASE_MESSAGE_ADDED]
    case = handed.events[0].data.case
    assert case.opened_at == at(3)
    assert handed.rerouted == {after.id}
    assert (after, case.id) in handed.stored_messages
    assert after.id not in handed.bot_phase
    assert {e.data.message_id for e in handed.events[2:]} == {after.id}
    assert handed.events[-1].data.case.opened_at == at(3)  # the clock still starts at handover


def test_after_its_case_is_resolved_the_conversation_is_the_bots_again() -> None:
    desk = Desk()
    desk.route(wa("hello", "w1", 0))
    case_id = desk.route(wa("agent", "w2", 1)).events[0].data.case.id
    desk.resolve(case_id, 20)

    back_to_bot = desk.route(
        wa("hello again", "w3", 30), wa("Hi! Bot here", "w4", 31, outbound=True)
    )
    second = desk.route(wa("agent please", "w5", 40))

    assert types(back_to_bot) == []
    assert types(second)[:2] == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    new_case = second.events[0].data.case
    assert new_case.id != case_id
    assert new_case.opened_at == at(40)
    assert [m for m, _ in second.transcripts] == [
        message_id("whatsapp", pid) for pid in ("w3", "w4", "w5")
    ]


def test_other_accounts_are_not_bot_accounts() -> None:
    desk = Desk()
    other = dm("hello", "w1", 0, platform="whatsapp").model_copy(
        update={"account_id": "999", "conversation_id": f"whatsapp:999:{WA_CUSTOMER}"}
    )
    assert types(desk.route(other)) == [ev.CASE_CREATED, ev.CASE_ASSIGNED]


# --- The message service: records of the messages topic ------------------------------------------


def record(value: bytes, offset: int, *headers: tuple[str, bytes]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topics.MESSAGES,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=MESSENGER.encode(),
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=list(headers),
    )


async def test_the_service_tells_records_apart_by_header_and_dead_letters_what_it_cannot_read() -> (
    None
):
    store = InMemoryMessageStore(CaseWindows(), Desk().state.agents)
    dead = RecordedDeadLetters()
    metrics = RouterMetrics(new_registry())
    service = MessageService(store, case_router_for(RULES, handover=POLICY), dead, metrics)
    asks, bot = dm("my parcel?", "m1", 0), dm("Bot: checking", "m2", 1, outbound=True)
    handover = control("pass", 3, CASEWIRE_APP)
    standby = (topics.STANDBY_HEADER, b"true")
    as_control = (topics.RECORD_HEADER, b"thread_control")

    await service.handle_records(
        [
            record(asks.model_dump_json().encode(), 0, standby),
            record(bot.model_dump_json().encode(), 1, standby, (topics.APP_ID_HEADER, b"6183")),
            record(handover.model_dump_json().encode(), 2, as_control),
            record(handover.model_dump_json().encode(), 3, as_control),  # redelivered
            record(asks.model_dump_json().encode(), 4, (topics.RECORD_HEADER, b"reaction")),
            record(b'{"id": "x", "action": "pass"}', 5, as_control),
            record(handover.model_dump_json().encode(), 6),  # not a canonical message
        ]
    )

    assert [reason for reason, _ in dead.sent] == [
        "unknown_record",
        "invalid_thread_control",
        "invalid_message",
    ]
    created = [
        decode_event(r.headers, r.value, r.key.encode())
        for _, r in store.outbox
        if r.headers["ce_type"] == ev.CASE_CREATED.encode()
    ]
    assert len(created) == 1
    assert created[0].data["case"]["opened_at"] == at(3).isoformat().replace("+00:00", "Z")
    assert metrics.duplicates._value.get() == 1
    labels = {"action": "pass", "outcome": "human"}
    assert metrics.thread_controls.labels(**labels)._value.get() == 1
    assert metrics.bot_phase_messages.labels("inbound")._value.get() == 1
    assert metrics.bot_phase_messages.labels("outbound")._value.get() == 1


# --- Settings and the rules file -----------------------------------------------------------------


def test_bot_accounts_are_platform_and_account() -> None:
    settings = RouterSettings(
        router_handover_bot_accounts=["whatsapp:106540352242922", "x:2975699229"]
    )
    assert settings.handover_bot_accounts == {
        ("whatsapp", "106540352242922"),
        ("x", "2975699229"),
    }
    for wrong in ("106540352242922", "telegram:1", "whatsapp:"):
        with pytest.raises(ValidationError, match="platform:account_id"):
            RouterSettings(router_handover_bot_accounts=[wrong])


def test_a_broken_handoff_section_is_listed_by_line() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(
            "version: 1\ndefault_team: care\nteams: [care]\nhandoff:\n"
            "  customer_says: [agent, 'ـــ']\n  bot_sez: ['#handoff']\n",
            "rules.yaml",
        )
    problems = str(caught.value)
    assert "rules.yaml:5: handoff.customer_says.1: keyword 'ـــ' folds to nothing" in problems
    assert "rules.yaml:6: handoff.bot_sez: Extra inputs are not permitted" in problems


def test_a_batch_that_may_open_a_handover_case_locks_the_teams_its_transcript_can_reach() -> None:
    rules = parse_rules(
        """
version: 1
default_team: care
teams: [care, shipping, billing, orders]
rules:
  - id: whatsapp
    when: {platforms: [whatsapp]}
    then: {team: orders}
  - id: shipping
    when: {any: [parcel]}
    then: {team: shipping}
  - id: refunds
    when: {any: [refund], platforms: [instagram]}
    then: {team: billing, assign_to: bea}
handoff:
  customer_says: [agent]
  bot_says: ["#handoff"]
"""
    )
    desk = Desk(rules=rules)
    router, state = desk.router, desk.state

    def scope(*items: Routable) -> AgentScope:
        return router.handover_agents_needed(list(items), state)

    nothing = AgentScope.of()
    # Nothing the customer said yet: no handover here can open a case.
    assert scope(control("pass", 1, CASEWIRE_APP)) == nothing
    assert scope(wa("hello", "w1", 0)) == nothing
    # A WhatsApp case goes to orders whatever it says; billing is Instagram's.
    assert scope(wa("agent please", "w2", 1)) == AgentScope.of(["orders"])
    desk.route(wa("bye #handoff", "w3", 5, outbound=True))  # no customer message: no case yet
    assert scope(wa("parcel?", "w4", 3)) == AgentScope.of(["orders"])  # it would open it
    assert scope(wa("parcel?", "w4", 6)) == nothing  # sent after the handoff: ordinary
    # Messenger: the transcript's text decides between the default team and shipping.
    desk.standby(dm("where is it?", "m0", 0))
    assert scope(control("pass", 1, CASEWIRE_APP)) == AgentScope.of(["care", "shipping"])
    assert scope(control("pass", 1, BOT_APP)) == nothing
    assert scope(control("request", 1, CASEWIRE_APP)) == nothing
    assert desk.route(control("pass", 5, CASEWIRE_APP)).opened
    assert scope(control("pass", 7, CASEWIRE_APP)) == nothing  # its case is open
