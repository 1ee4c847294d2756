"""Reading a message's text once: the urgency vocabularies in one automaton find what each
would find alone, and routing with readings taken in advance decides as routing without."""

from __future__ import annotations

import itertools

from casewire_router.domain.batch import BatchState, MessageReading
from casewire_router.domain.keywords import KeywordMatcher, TaggedKeywordMatcher, fold
from casewire_router.domain.routing import CaseRouter
from casewire_router.domain.rules import parse_rules
from casewire_router.domain.urgency import (
    CRISIS_VOCABULARY,
    EVENT_WORDS,
    FAILURE_WORDS,
    HOSTILE_WORDS,
    NEGATIVE_WORDS,
    TIME_WORDS,
    default_model,
)
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.router.factories import T0, message

LISTS = {
    "crisis": [word for words in CRISIS_VOCABULARY.values() for word in words],
    "negative": list(NEGATIVE_WORDS),
    "hostile": list(HOSTILE_WORDS),
    "failure": list(FAILURE_WORDS),
    "event": list(EVENT_WORDS),
    "time": list(TIME_WORDS),
}
TAGGED = TaggedKeywordMatcher(LISTS)
ALONE = {tag: KeywordMatcher(words) for tag, words in LISTS.items()}
ALL_WORDS = sorted({word for words in LISTS.values() for word in words})


def found_alone(folded: str) -> dict[str, set[str]]:
    found = {tag: matcher.find_folded(folded) for tag, matcher in ALONE.items()}
    return {tag: words for tag, words in found.items() if words}


def test_a_word_in_two_lists_is_found_under_both_tags() -> None:
    matcher = TaggedKeywordMatcher({"a": ["still waiting", "refund"], "b": ["refund"]})

    assert matcher.find_folded(fold("REFUND? Still waiting")) == {
        "a": {"still waiting", "refund"},
        "b": {"refund"},
    }
    assert matcher.find_folded(fold("refunded")) == {}  # whole words only, as alone
    assert TaggedKeywordMatcher({}).find_folded("anything") == {}


@given(
    words=st.lists(st.sampled_from(ALL_WORDS), max_size=6),
    glue=st.lists(st.sampled_from([" ", "", "x", "!", "ไทย", "\u0301", "#1 "]), min_size=7),
)
def test_tagged_matcher_finds_by_tag_what_each_list_finds_alone(
    words: list[str], glue: list[str]
) -> None:
    text = "".join(part for pair in zip(glue, [*words, ""], strict=False) for part in pair)
    folded = fold(text)

    assert TAGGED.find_folded(folded) == found_alone(folded)


RULES = parse_rules(
    """
version: 1
default_team: care
teams: [care, incidents]
rules:
  - id: outage
    when: {any: ["not working"]}
    then: {team: incidents, tags: [outage]}
"""
)


def route(router: CaseRouter, readings: dict[str, MessageReading] | None) -> list[str]:
    messages = [
        message("the app is NOT working, since yesterday!!!", pid="m1"),
        message("my account was hacked @brand", pid="m2", conversation="x:brand:root2:c2"),
        message("terrible service", pid="m3", conversation="x:brand:root3:c3"),
    ]
    if readings is not None:
        readings.update(router.read_customer_messages(messages))
    ids = itertools.count()
    outcome = router.route_batch(
        messages, BatchState(), new_id=lambda: f"id-{next(ids)}", now=T0, readings=readings
    )
    return [event.data.model_dump_json() for event in outcome.events]


def test_routing_with_readings_decides_as_routing_without() -> None:
    router = CaseRouter(RULES, default_model())

    assert route(router, {}) == route(router, None)


def test_a_reading_of_another_text_is_not_used() -> None:
    router = CaseRouter(RULES, default_model())
    stale = router.read(message("my account was hacked", pid="m1"))
    current = message("thanks, all good now", pid="m1")

    reading = router.read(current, {current.id: stale})

    assert reading.text == current.text
    assert router.crisis_topics(current, {current.id: stale}) == frozenset()
    assert router.crisis_topics(message("my account was hacked", pid="m1")) == {"security"}
