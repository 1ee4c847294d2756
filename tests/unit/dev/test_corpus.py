"""Parsing the real corpora (read in place from the shared data folder) for the demo replay."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from casewire_dev import corpus
from casewire_ingest.domain.normalized import x_text


@pytest.fixture(scope="module")
def corpus_dir(shared_data: Path) -> Path:
    return shared_data / "corpus"


@pytest.fixture(scope="module")
def twcs(corpus_dir: Path) -> list[corpus.Conversation]:
    return corpus.read_twcs_threads(corpus_dir)


@pytest.fixture(scope="module")
def ibm(corpus_dir: Path) -> list[corpus.Conversation]:
    return corpus.read_ibm_dialogs(corpus_dir)


def by_id(conversations: list[corpus.Conversation]) -> dict[str, corpus.Conversation]:
    return {conversation.conversation_id: conversation for conversation in conversations}


def test_twcs_threads_give_one_conversation_per_brand_root_and_customer(
    twcs: list[corpus.Conversation],
) -> None:
    assert len(twcs) == 169
    assert Counter(c.brand for c in twcs) == {
        "AmazonHelp": 84,
        "AppleSupport": 58,
        "SpotifyCares": 27,
    }
    assert sum(len(c.messages) for c in twcs) == 335


def test_customers_answering_the_same_brand_tweet_get_separate_conversations(
    twcs: list[corpus.Conversation],
) -> None:
    under_root = {c.customer_id: c for c in twcs if c.root_tweet_id == "19137"}
    assert set(under_root) == {"295975", "456024", "686601", "400095"}
    answered = under_root["400095"]
    assert answered.conversation_id == "x:AmazonHelp:19137:400095"
    assert [m.tweet_id for m in answered.messages] == ["19151", "2435680"]
    assert answered.messages[1].in_reply_to == "19151"


def test_brand_reply_whose_parent_was_dropped_joins_the_customer_it_mentions(
    twcs: list[corpus.Conversation],
) -> None:
    conversation = by_id(twcs)["x:AmazonHelp:2976528:820896"]
    assert [(m.tweet_id, m.inbound) for m in conversation.messages] == [
        ("2976525", False),
        ("2976527", True),
    ]


def test_threads_without_any_customer_tweet_are_left_out(
    twcs: list[corpus.Conversation], ibm: list[corpus.Conversation]
) -> None:
    assert all(any(m.inbound for m in c.messages) for c in [*twcs, *ibm])


def test_brand_replies_are_outbound_and_customer_messages_inbound(
    twcs: list[corpus.Conversation], ibm: list[corpus.Conversation]
) -> None:
    for conversation in [*twcs, *ibm]:
        for message in conversation.messages:
            if message.inbound:
                assert message.author_id == conversation.customer_id
            else:
                assert message.author_id == conversation.brand


def test_messages_of_a_conversation_are_in_time_order(
    twcs: list[corpus.Conversation], ibm: list[corpus.Conversation]
) -> None:
    for conversation in [*twcs, *ibm]:
        times = [message.sent_at for message in conversation.messages]
        assert times == sorted(times), conversation.conversation_id


def test_ibm_dialogs_end_with_the_brand_reply_timed_by_its_snowflake(
    ibm: list[corpus.Conversation],
) -> None:
    assert len(ibm) == 1025
    conversation = by_id(ibm)["x:TeamYouTube:1245403438755852288:CinVakas"]
    opening, reply = conversation.messages
    assert opening.inbound
    assert opening.sent_at == datetime(2020, 4, 1, 17, 31, 32, tzinfo=UTC)
    assert reply.tweet_id == "1245425308704149506"
    assert not reply.inbound
    assert reply.sent_at == datetime(2020, 4, 1, 18, 58, 27, 135000, tzinfo=UTC)
    assert reply.in_reply_to == "1245403438755852288"


def test_snowflake_time_agrees_with_the_dialog_timestamps(
    ibm: list[corpus.Conversation],
) -> None:
    # dialogContent times are truncated to the second; the snowflake keeps milliseconds.
    timed_turns = [m for c in ibm for m in c.messages[:-1]]
    assert len(timed_turns) > 1000
    for message in timed_turns:
        offset = corpus.snowflake_time(message.tweet_id) - message.sent_at
        assert timedelta(0) <= offset < timedelta(seconds=2), message.tweet_id


def test_ibm_turns_by_other_people_are_left_out(ibm: list[corpus.Conversation]) -> None:
    # Two customers joined a thread started by a third; each has their own conversation, and
    # the brand's answer to the thread's starter (JSenrac) belongs to neither.
    conversations = by_id(ibm)
    for customer in ("Matek42251558", "PixelHackN1"):
        conversation = conversations[f"x:RockstarSupport:1227749037991919616:{customer}"]
        tweet_ids = [message.tweet_id for message in conversation.messages]
        assert "1227749361809068032" not in tweet_ids
        assert {m.author_id for m in conversation.messages} == {customer, "RockstarSupport"}


def test_customer_renamed_since_is_the_last_customer_turn(ibm: list[corpus.Conversation]) -> None:
    # The final reply mentions @nenabab84691592: the account was renamed after the dialog.
    conversation = by_id(ibm)["x:YahooCare:1157034795203026944:NENABABE300"]
    assert [m.inbound for m in conversation.messages] == [True, False]


def test_html_entities_are_unescaped(
    twcs: list[corpus.Conversation], ibm: list[corpus.Conversation]
) -> None:
    texts = {m.tweet_id: m.text for c in [*twcs, *ibm] for m in c.messages}
    assert "here: https://t.co/beaaDm0muc & we'll get this sorted" in texts["2644154"]
    assert "The transfer of music & podcasts" in texts["1160643688403472385"]
    assert not [tweet for tweet, text in texts.items() if "&amp;" in text or "&gt;" in text]


def test_unescape_decodes_each_entity_once() -> None:
    assert x_text("a &amp;lt; b &gt; c &lt; d") == "a &lt; b > c < d"


def test_load_corpus_interleaves_both_corpora_and_replays_duplicates_once(
    corpus_dir: Path,
) -> None:
    conversations = corpus.load_corpus(corpus_dir)
    # The IBM dev and test splits share one dialog: 169 + 1025 - 1.
    assert len(conversations) == 1193
    assert len({c.conversation_id for c in conversations}) == 1193
    assert [c.source for c in conversations[:4]] == ["twcs", "ibm", "twcs", "ibm"]
    assert sum(len(c.messages) for c in conversations) == 2641
