"""A reply chain split into two cases by processing order is merged by absorption: pure domain.

On X each hop of a back-and-forth has its own conversation key, so a customer's answer to the
brand's reply, processed before that reply has a case, opens a case of its own; when the
reply (or the tweet it answers) gets its case, the two become one."""

import itertools
from datetime import timedelta

import pytest
from casewire_common import events as ev
from casewire_common.messages import CanonicalMessage
from casewire_router.domain.case import CLOSED_STATUSES, CaseState
from casewire_router.domain.outcome import RoutingOutcome

from tests.unit.router.factories import T0
from tests.unit.router.test_threading import Desk, types, x_tweet


def tweet(customer: str = "cust1") -> CanonicalMessage:
    """The customer's complaint, answering the brand's earlier tweet b0."""
    text = "@brand my order never came"
    return x_tweet(text, "t1", root="b0", replying_to="b0", minutes=0, customer=customer)


def brand_reply(minutes: float = 2) -> CanonicalMessage:
    return x_tweet(
        "@cust1 sorry, which order?",
        "b1",
        root="t1",
        replying_to="t1",
        minutes=minutes,
        direction="outbound",
    )


def answer(customer: str = "cust1", pid: str = "c1") -> CanonicalMessage:
    """The customer's answer to the brand's reply: keyed by the reply, another conversation."""
    text = "@brand #4521, still nothing"
    return x_tweet(text, pid, root="b1", replying_to="b1", minutes=5, customer=customer)


class ChainDesk(Desk):
    """A desk that remembers which case holds each message, as the messages table would."""

    def __init__(self) -> None:
        super().__init__()
        self.case_of: dict[str, str] = {}
        self.outcomes: list[RoutingOutcome] = []

    def route(self, *messages: CanonicalMessage) -> RoutingOutcome:
        outcome = super().route(*messages)
        self.outcomes.append(outcome)
        for message, case_id in [*outcome.stored_messages, *outcome.attached_replies]:
            if case_id is not None:
                self.case_of[message.id] = case_id
        for absorbed, kept in outcome.absorbed:
            self.case_of = {m: kept if c == absorbed else c for m, c in self.case_of.items()}
        return outcome

    def open_cases(self) -> list[CaseState]:
        return [case for case in self.cases.values() if case.status not in CLOSED_STATUSES]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_tweet_the_brands_reply_and_the_customers_answer_end_as_one_case_in_any_order(
    order: tuple[int, ...],
) -> None:
    chain = [tweet(), brand_reply(), answer()]
    desk = ChainDesk()

    for index in order:
        desk.route(chain[index])

    [case] = desk.open_cases()
    assert {desk.case_of.get(m.id) for m in chain} == {case.id}
    assert case.opened_at == T0
    assert case.first_response_at == T0 + timedelta(minutes=2)
    assert desk.state.agents["amal"].load == 1


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_the_whole_chain_in_one_batch_in_any_order_is_one_case(order: tuple[int, ...]) -> None:
    chain = [tweet(), brand_reply(), answer()]
    desk = ChainDesk()

    desk.route(*(chain[index] for index in order))

    [case] = desk.open_cases()
    assert {desk.case_of.get(m.id) for m in chain} == {case.id}
    assert desk.state.agents["amal"].load == 1


def test_the_answer_processed_first_is_absorbed_into_the_tweets_case_when_the_reply_comes() -> None:
    desk = ChainDesk()
    desk.route(answer())  # id-1: its own case, the reply it answers unknown yet
    desk.route(tweet())  # id-2
    reply = brand_reply()

    outcome = desk.route(reply)

    assert types(outcome) == [ev.CASE_RESPONDED, ev.CASE_MERGED, ev.CASE_MERGED]
    absorbed, kept = outcome.events[1].data, outcome.events[2].data
    assert (absorbed.case.id, absorbed.merged_into_case_id) == ("id-1", "id-2")
    assert (absorbed.case.status, absorbed.case.resolved_at) == ("resolved", T0)  # batch's now
    assert absorbed.case.version == 3  # created, assigned, merged
    assert (kept.case.id, kept.merged_case_id) == ("id-2", "id-1")
    assert kept.merged_conversation_id == "x:brand:b1:cust1"
    assert kept.merged_into_case_id is None
    assert kept.case.status == "assigned"
    assert kept.case.opened_at == T0
    assert kept.case.first_response_at == reply.sent_at
    assert kept.case.version == 4  # created, assigned, responded, merged
    assert {event.data.message_id for event in outcome.events} == {reply.id}
    assert outcome.absorbed == [("id-1", "id-2")]
    assert outcome.agents["amal"].load == 1  # held the two cases; now the one kept


def test_the_kept_case_takes_the_absorbed_ones_tags_priority_and_earlier_response() -> None:
    desk = ChainDesk()
    desk.route(answer())
    desk.route(tweet())
    absorbed, kept = desk.cases["id-1"], desk.cases["id-2"]
    absorbed.tags, absorbed.priority, absorbed.urgency_score = ["vip", "late"], "P1", 90
    absorbed.first_response_at = T0 + timedelta(minutes=1)
    kept.tags, kept.priority, kept.urgency_score, kept.language = ["late"], "P3", 20, None
    absorbed.language = "en"

    desk.route(brand_reply(minutes=2))

    assert (kept.tags, kept.priority, kept.urgency_score) == (["late", "vip"], "P1", 90)
    assert kept.first_response_at == T0 + timedelta(minutes=1)
    assert kept.language == "en"


def test_a_reply_kept_as_an_orphan_joins_the_tweets_case_and_brings_the_answer_with_it() -> None:
    desk = ChainDesk()
    reply = brand_reply()
    desk.route(reply)  # no case yet: an orphan
    desk.route(answer())  # the reply it answers is an orphan: its own case, id-1

    outcome = desk.route(tweet())

    assert outcome.attached_replies == [(reply, "id-2")]
    assert types(outcome) == [
        ev.CASE_CREATED,
        ev.CASE_ASSIGNED,
        ev.CASE_RESPONDED,
        ev.CASE_MERGED,
        ev.CASE_MERGED,
    ]
    assert outcome.absorbed == [("id-1", "id-2")]
    assert outcome.events[-1].data.message_id == reply.id


def test_a_customers_own_reply_processed_before_the_tweet_it_answers_is_absorbed() -> None:
    desk = ChainDesk()
    first = tweet()
    second = x_tweet("@brand hello??", "t2", root="t1", replying_to="t1", minutes=3)
    desk.route(second)  # id-1, in the conversation keyed by t1

    outcome = desk.route(first)  # id-2, keyed by b0: opened earlier, so kept

    assert types(outcome)[-2:] == [ev.CASE_MERGED, ev.CASE_MERGED]
    assert outcome.absorbed == [("id-1", "id-2")]
    [case] = desk.open_cases()
    assert (case.id, case.opened_at) == ("id-2", T0)
    # The absorbed case's conversation now leads to the case kept.
    assert desk.state.open_cases["x:brand:t1:cust1"] is case
    third = x_tweet("@brand??", "t3", root="t1", replying_to="t1", minutes=4)
    assert desk.route(third).stored_messages == [(third, "id-2")]


def test_another_customer_answering_the_brands_reply_is_never_merged() -> None:
    desk = ChainDesk()
    desk.route(answer(customer="cust2", pid="s1"))  # id-1: a stranger joins the thread
    desk.route(tweet())

    outcome = desk.route(brand_reply())

    assert types(outcome) == [ev.CASE_RESPONDED]
    assert outcome.absorbed == []
    assert len(desk.open_cases()) == 2


def test_a_closed_case_is_not_merged() -> None:
    desk = ChainDesk()
    desk.route(answer())  # id-1
    desk.resolve("id-1", minutes=6)
    desk.route(tweet())

    outcome = desk.route(brand_reply())

    assert types(outcome) == [ev.CASE_RESPONDED]
    assert outcome.absorbed == []
    assert desk.cases["id-1"].resolved_at == T0 + timedelta(minutes=6)


def test_the_absorbed_cases_owner_is_released_whoever_owns_the_case_kept() -> None:
    desk = ChainDesk()
    desk.route(answer())  # id-1, given to amal
    desk.state.agents["amal"].capacity = 1  # amal is full: the tweet's case waits in the queue
    desk.route(tweet())
    assert desk.cases["id-2"].assignee is None

    outcome = desk.route(brand_reply())

    absorbed = outcome.events[1].data.case
    assert (absorbed.status, absorbed.assignee) == ("resolved", "amal")  # no longer held
    assert outcome.agents["amal"].load == 0
    assert desk.cases["id-2"].status == "queued"
