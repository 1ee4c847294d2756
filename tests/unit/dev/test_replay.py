"""The replay schedule and the messages it posts to ingest's generic endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from casewire_common.messages import message_id
from casewire_dev import corpus
from casewire_dev.replay import ScheduledMessage, message_body, schedule
from casewire_ingest.domain.generic import GenericMessage, to_canonical

T0 = datetime(2020, 3, 1, 12, 0, tzinfo=UTC)


def conversation(
    root: str, gaps_minutes: list[float], brand: str = "AcmeCare"
) -> corpus.Conversation:
    """A customer message, then alternating brand and customer messages after the given gaps."""
    messages = []
    sent_at = T0
    for position, gap in enumerate([0.0, *gaps_minutes]):
        sent_at += timedelta(minutes=gap)
        inbound = position % 2 == 0
        messages.append(
            corpus.CorpusMessage(
                tweet_id=f"{root}{position}",
                author_id="42" if inbound else brand,
                author_handle="42" if inbound else brand,
                inbound=inbound,
                text="where is my order &" if inbound else "on its way",
                sent_at=sent_at,
                in_reply_to=f"{root}{position - 1}" if position else None,
            )
        )
    return corpus.Conversation("twcs", brand, root, "42", tuple(messages))


def plan_of(items: list[ScheduledMessage]) -> list[tuple[float, str]]:
    return [(round(item.at, 6), item.message.tweet_id) for item in items]


def test_conversations_open_every_arrival_interval_and_keep_their_gaps_divided_by_speed() -> None:
    first = conversation("1", [30, 60])  # brand after 30 min, customer again 60 min later
    second = conversation("2", [6])
    items = schedule([first, second], speed=60, arrival_seconds=0.5)
    assert plan_of(items) == [
        (0.0, "10"),
        (0.5, "20"),
        (6.5, "21"),
        (30.0, "11"),
        (90.0, "12"),
    ]


def test_only_a_conversations_first_message_is_its_opening() -> None:
    items = schedule([conversation("1", [1, 1])], speed=60, arrival_seconds=0.5)
    assert [item.opening for item in items] == [True, False, False]


def test_messages_sent_in_the_same_second_keep_their_order() -> None:
    items = schedule([conversation("1", [0, 0, 0])], speed=60, arrival_seconds=1)
    assert [item.message.tweet_id for item in items] == ["10", "11", "12", "13"]


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed"):
        schedule([conversation("1", [])], speed=0, arrival_seconds=1)


def test_body_is_accepted_by_ingest_as_a_public_x_message() -> None:
    opening, reply = schedule([conversation("7", [5])], speed=60, arrival_seconds=0)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    inbound = to_canonical(GenericMessage.model_validate(message_body(opening, now)), now)
    outbound = to_canonical(GenericMessage.model_validate(message_body(reply, now)), now)

    assert (inbound.channel, inbound.direction, inbound.visibility) == (
        "mention",
        "inbound",
        "public",
    )
    assert (outbound.channel, outbound.direction) == ("reply", "outbound")
    assert inbound.conversation_id == outbound.conversation_id == "x:AcmeCare:7:42"
    assert inbound.account_id == outbound.account_id == "AcmeCare"
    assert inbound.id == message_id("x", "70")
    assert outbound.in_reply_to == "70"
    assert outbound.author.id == "AcmeCare"
    assert inbound.sent_at == now
    assert inbound.text == "where is my order &"


def test_the_real_corpus_replays_brand_replies_after_their_original_delay(
    shared_data: Path,
) -> None:
    conversations = corpus.load_corpus(shared_data / "corpus")[:2]
    items = schedule(conversations, speed=60, arrival_seconds=0.5)
    ibm_items = [item for item in items if item.conversation.source == "ibm"]
    customer, brand = ibm_items
    # Conversation 2 opens at 0.5 s; the brand answered after 1 h 26 min 55.135 s.
    assert customer.at == 0.5
    assert brand.at == pytest.approx(0.5 + 5215.135 / 60)
    assert message_body(brand, T0)["direction"] == "outbound"
