"""Threading decided by sending times, not by processing order: pure domain."""

from casewire_common import events as ev
from casewire_common.messages import CanonicalMessage
from casewire_router.domain.batch import OrphanReplies
from casewire_router.domain.routing import case_router_for
from casewire_router.domain.rules import parse_rules
from casewire_router.domain.threading import counts_as_response

from tests.unit.router.factories import T0, message
from tests.unit.router.test_threading import WINDOWS, Desk, types, x_tweet


def brand_reply(pid: str, *, to: str, minutes: float) -> CanonicalMessage:
    """The brand's tweet answering tweet `to`: its root, so another conversation key."""
    return x_tweet(
        "@cust1 sorry!", pid, root=to, replying_to=to, minutes=minutes, direction="outbound"
    )


def complaint(pid: str = "t1", *, minutes: float = 0) -> CanonicalMessage:
    """A customer's tweet answering the brand's earlier tweet b0."""
    return x_tweet("@brand my order never came", pid, root="b0", replying_to="b0", minutes=minutes)


def dm(text: str, pid: str, *, minutes: float, direction: str = "inbound") -> CanonicalMessage:
    return message(
        text,
        pid=pid,
        channel="dm",
        conversation="x:brand:cust1",
        direction=direction,
        author="brand" if direction == "outbound" else "cust1",
        minutes=minutes,
    )


def test_reply_processed_before_the_tweet_it_answers_is_its_first_response_when_it_arrives() -> (
    None
):
    desk = Desk()
    reply = brand_reply("r1", to="t1", minutes=3)

    early = desk.route(reply)

    assert types(early) == []
    assert early.stored_messages == [(reply, None)]

    outcome = desk.route(complaint("t1"))

    assert types(outcome) == [ev.CASE_CREATED, ev.CASE_ASSIGNED, ev.CASE_RESPONDED]
    responded = outcome.events[-1].data
    assert responded.message_id == reply.id
    assert responded.first_response is True
    assert responded.case.first_response_at == reply.sent_at
    assert outcome.attached_replies == [(reply, "id-1")]
    assert len(desk.state.orphan_replies) == 0


def test_reply_sent_before_the_tweet_it_names_is_not_counted_as_its_response() -> None:
    desk = Desk()
    reply = brand_reply("r1", to="t1", minutes=-1)
    desk.route(reply)

    outcome = desk.route(complaint("t1", minutes=0))

    assert types(outcome) == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    assert outcome.attached_replies == []
    assert desk.cases["id-1"].first_response_at is None
    assert reply.id in desk.state.orphan_replies


def test_reply_and_the_tweet_it_answers_in_one_batch_in_the_wrong_order_are_one_case() -> None:
    desk = Desk()
    reply = brand_reply("r1", to="t1", minutes=3)

    outcome = desk.route(reply, complaint("t1"))

    assert types(outcome) == [ev.CASE_CREATED, ev.CASE_ASSIGNED, ev.CASE_RESPONDED]
    assert outcome.stored_messages[0] == (reply, None)
    assert outcome.attached_replies == [(reply, "id-1")]


def test_dm_reply_processed_before_the_customer_dm_joins_its_case() -> None:
    desk = Desk()
    reply = dm("we are on it", "r1", minutes=2, direction="outbound")
    desk.route(reply)

    outcome = desk.route(dm("my order never came", "d1", minutes=0))

    assert types(outcome) == [ev.CASE_CREATED, ev.CASE_ASSIGNED, ev.CASE_RESPONDED]
    assert outcome.events[-1].data.case.first_response_at == reply.sent_at


def test_orphan_reply_to_a_follow_up_is_the_next_response_of_the_case() -> None:
    desk = Desk()
    desk.route(complaint("t1", minutes=0))
    desk.route(brand_reply("r1", to="t1", minutes=2))
    follow_up = x_tweet("@brand still nothing", "t3", root="r1", replying_to="r1", minutes=5)
    second = brand_reply("r2", to="t3", minutes=7)
    desk.route(second)

    outcome = desk.route(follow_up)

    assert types(outcome) == [ev.CASE_MESSAGE_ADDED, ev.CASE_RESPONDED]
    responded = outcome.events[-1].data
    assert (responded.case.id, responded.first_response) == ("id-1", False)
    assert responded.case.first_response_at == T0.replace(minute=2)


def test_a_reply_sent_earlier_but_processed_later_becomes_the_first_response() -> None:
    desk = Desk()
    desk.route(dm("my order never came", "d1", minutes=0))
    desk.route(dm("which order?", "r2", minutes=4, direction="outbound"))

    earlier = desk.route(dm("looking into it", "r1", minutes=1, direction="outbound"))

    responded = earlier.events[-1].data
    assert responded.first_response is True
    assert responded.case.first_response_at == T0.replace(minute=1)


def test_reply_sent_before_the_case_opened_does_not_count() -> None:
    desk = Desk()
    desk.route(dm("my order never came", "d1", minutes=0))

    outcome = desk.route(dm("our newsletter", "r0", minutes=-5, direction="outbound"))

    assert types(outcome) == []
    assert outcome.stored_messages[0][1] is None
    assert desk.cases["id-1"].first_response_at is None


def test_message_sent_before_resolution_but_processed_after_joins_the_case_without_reopening() -> (
    None
):
    desk = Desk()
    desk.route(dm("my order never came", "d1", minutes=0))
    desk.resolve("id-1", minutes=10)

    late = desk.route(dm("order 4521", "d2", minutes=5))

    assert types(late) == [ev.CASE_MESSAGE_ADDED]
    assert late.events[0].data.case.status == "resolved"
    assert late.stored_messages[0][1] == "id-1"
    assert desk.state.agents["amal"].load == 0
    # Sent after the resolution: reopens, as before.
    again = desk.route(dm("it did not arrive", "d3", minutes=20))
    assert types(again)[0] == ev.CASE_STATUS_CHANGED
    assert again.events[0].data.case.status == "reopened"


def test_tweet_answering_the_brand_sent_before_resolution_joins_the_resolved_case() -> None:
    desk = Desk()
    desk.route(complaint("t1", minutes=0))
    desk.route(brand_reply("r1", to="t1", minutes=2))
    desk.resolve("id-1", minutes=10)

    late = desk.route(x_tweet("@brand #4521", "t3", root="r1", replying_to="r1", minutes=5))

    assert types(late) == [ev.CASE_MESSAGE_ADDED]
    assert late.events[0].data.case.id == "id-1"


def test_reply_sent_before_resolution_but_processed_after_is_the_resolved_cases_response() -> None:
    desk = Desk()
    desk.route(dm("my order never came", "d1", minutes=0))
    desk.resolve("id-1", minutes=10)

    late = desk.route(dm("refund sent", "r1", minutes=8, direction="outbound"))

    assert types(late) == [ev.CASE_RESPONDED]
    responded = late.events[0].data
    assert (responded.case.status, responded.first_response) == ("resolved", True)
    assert responded.case.first_response_at == T0.replace(minute=8)
    after = desk.route(dm("anything else?", "r2", minutes=12, direction="outbound"))
    assert types(after) == []


def test_a_response_is_sent_after_the_message_it_answers_and_before_the_case_closed() -> None:
    desk = Desk()
    desk.route(dm("my order never came", "d1", minutes=0))
    case = desk.cases["id-1"]
    reply = dm("on it", "r1", minutes=5, direction="outbound")

    assert counts_as_response(reply, case, answered_at=T0)
    assert not counts_as_response(reply, case, answered_at=T0.replace(minute=6))
    desk.resolve("id-1", minutes=5)
    assert not counts_as_response(reply, case, answered_at=T0)


def test_repeat_contact_never_counts_a_message_the_customer_sent_later() -> None:
    def repeat_contacts(processed: list[CanonicalMessage]) -> dict[str, str | None]:
        desk = Desk()
        found: dict[str, str | None] = {}
        for sent in processed:
            [decision] = desk.route(sent).decisions.values()
            signal = [s for s in decision.urgency.signals if s.name == "repeated_contact"]
            found[sent.platform_message_id] = signal[0].detail if signal else None
        return found

    first, second = dm("hello?", "d1", minutes=0), dm("anyone?", "d2", minutes=5)
    in_order = repeat_contacts([first, second])
    reversed_order = repeat_contacts([second, first])

    assert in_order == {"d1": None, "d2": "1 earlier contacts in 24 h"}
    # Processed late, the first message is not a repeat of the one sent after it.
    assert reversed_order["d1"] is None


def test_dm_sent_while_the_public_case_was_open_but_processed_after_it_closed_merges_into_it() -> (
    None
):
    desk = Desk()
    desk.route(message("my order never came", pid="p1", conversation="x:brand:t1:cust1"))
    desk.resolve("id-1", minutes=10)
    # What the adapter loads: the customer's cases closed since the batch's messages were sent.
    desk.state.closed_by_customer[("x", "brand", "cust1")] = [desk.cases["id-1"]]

    late = desk.route(dm("order 4521", "d1", minutes=5))

    assert types(late) == [ev.CASE_MERGED, ev.CASE_MESSAGE_ADDED]
    assert late.events[0].data.case.status == "resolved"
    assert late.links == [("x:brand:cust1", "id-1")]
    assert late.stored_messages[0][1] == "id-1"
    after = desk.route(dm("hello again", "d2", minutes=15))
    assert types(after)[0] == ev.CASE_CREATED


def test_a_message_sent_before_the_one_that_opened_the_case_moves_its_opening_back() -> None:
    desk = Desk()
    desk.route(dm("anyone there?", "d2", minutes=3))
    early_reply = dm("hi! how can we help?", "r1", minutes=1, direction="outbound")
    assert types(desk.route(early_reply)) == []  # sent before the case opened: not yet counted

    late = desk.route(dm("my order never came", "d1", minutes=0))

    assert (types(late)[0], types(late)[-1]) == (ev.CASE_MESSAGE_ADDED, ev.CASE_RESPONDED)
    case = late.events[-1].data.case
    assert (case.opened_at, case.first_response_at) == (T0, T0.replace(minute=1))
    assert "id-1" in late.cases  # written back


def test_orphans_are_found_by_the_message_they_name_or_in_its_conversation_earliest_first() -> None:
    orphans = OrphanReplies()
    named = brand_reply("r2", to="t1", minutes=5)
    in_conversation = x_tweet(
        "@cust1 hi", "r1", root="b0", replying_to=None, minutes=4, direction="outbound"
    )
    elsewhere = brand_reply("r3", to="t9", minutes=1)
    other_account = named.model_copy(update={"account_id": "other-brand", "id": "x"})
    for reply in (named, in_conversation, elsewhere, other_account):
        orphans.add(reply)

    assert orphans.answering(complaint("t1")) == [in_conversation, named]
    orphans.remove(named)
    assert orphans.answering(complaint("t1")) == [in_conversation]
    assert (len(orphans), named.id in orphans) == (3, False)


def test_a_dm_sent_before_a_thank_you_post_processed_after_it_is_not_hidden_in_its_case() -> None:
    rules = parse_rules(
        """
version: 1
default_team: care
teams: [care]
rules:
  - id: praise
    when: {any: [thank you]}
    then: {skip: true, tags: [praise]}
"""
    )
    desk = Desk()
    desk.router = case_router_for(rules, WINDOWS)
    thanks = desk.route(message("thank you!", pid="p1", conversation="x:brand:t1:cust1", minutes=5))
    assert thanks.events[0].data.case.status == "no_action"
    desk.state.closed_by_customer[("x", "brand", "cust1")] = [desk.cases["id-1"]]

    complaint_dm = desk.route(dm("my order never came", "d1", minutes=0))

    assert types(complaint_dm)[0] == ev.CASE_CREATED
