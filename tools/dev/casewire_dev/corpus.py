"""Real customer-care conversations from the shared corpora, as plain data for the replay.

Two corpora (see `corpus/SOURCES.md`): the TWCS threads grouped by conversation
(`twcs_threads_ericsson/*.csv`) and the IBM Twitter customer-care dialogs
(`ibm_twitter_customer_care/{dev,test}.json`). Both become `Conversation`s keyed the way
DESIGN.md keys public threads: one brand, one root tweet, one customer.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from pathlib import Path
from typing import Any

from casewire_ingest.domain.normalized import x_text

TWCS_THREADS = Path("twcs_threads_ericsson")
IBM_DIALOGS = Path("ibm_twitter_customer_care")
IBM_SPLITS = ("dev.json", "test.json")

# X ("Twitter") snowflake ids carry their creation time: milliseconds since this epoch, << 22.
SNOWFLAKE_EPOCH_MS = 1288834974657

_MENTION = re.compile(r"@(\w+)")


@dataclass(frozen=True)
class CorpusMessage:
    """One tweet of a conversation, with its original time."""

    tweet_id: str
    author_id: str
    author_handle: str
    inbound: bool  # False: written by the brand
    text: str
    sent_at: datetime
    in_reply_to: str | None


@dataclass(frozen=True)
class Conversation:
    """The tweets between one brand and one customer under one root tweet, in order."""

    source: str
    brand: str
    root_tweet_id: str
    customer_id: str
    messages: tuple[CorpusMessage, ...]

    @property
    def conversation_id(self) -> str:
        return f"x:{self.brand}:{self.root_tweet_id}:{self.customer_id}"


def snowflake_time(tweet_id: str | int) -> datetime:
    """When a tweet was created, from its id (the IBM set gives no time for the final reply)."""
    milliseconds = (int(tweet_id) >> 22) + SNOWFLAKE_EPOCH_MS
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=milliseconds)


def _twcs_time(value: str) -> datetime:
    # ISO-8601 UTC without an offset in the Ericsson conversion.
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_twcs_threads(rows: Iterable[Mapping[str, str]]) -> list[Conversation]:
    """TWCS rows (one brand's threads) to conversations, one per (root tweet, customer).

    Several customers may answer the same brand tweet; each gets its own conversation. A brand
    tweet belongs to the customer it answers, found by following `in_response_to_tweet_id`
    (brand tweets split in 1/2, 2/2 answer each other); when that tweet was dropped from the
    corpus, the customer is the one the reply starts by mentioning. Threads with no customer
    tweet left are dropped: they give a care team nothing to do.
    """
    ordered = list(rows)
    by_id = {row["tweet_id"]: row for row in ordered}

    def customer_of(row: Mapping[str, str]) -> str:
        seen: set[str] = set()
        while row["inbound"].lower() != "true":
            seen.add(row["tweet_id"])
            parent = by_id.get(row["in_response_to_tweet_id"])
            if parent is None or parent["tweet_id"] in seen:
                mention = _MENTION.match(row["text"])
                return mention.group(1) if mention else row["author_id"]
            row = parent
        return row["author_id"]

    grouped: dict[tuple[str, str], list[tuple[int, Mapping[str, str]]]] = defaultdict(list)
    for position, row in enumerate(ordered):
        grouped[(row["main_tweet_id"], customer_of(row))].append((position, row))

    conversations = []
    for (root, customer), members in grouped.items():
        members.sort(key=lambda item: (_twcs_time(item[1]["created_at"]), item[0]))
        messages = tuple(
            CorpusMessage(
                tweet_id=row["tweet_id"],
                author_id=row["author_id"],
                author_handle=row["author_id"],  # TWCS replaced customer handles by ids
                inbound=row["inbound"].lower() == "true",
                text=x_text(row["text"]),
                sent_at=_twcs_time(row["created_at"]),
                in_reply_to=row["in_response_to_tweet_id"] or None,
            )
            for _, row in members
        )
        if any(message.inbound for message in messages):
            conversations.append(
                Conversation(
                    source="twcs",
                    brand=members[0][1]["company"],
                    root_tweet_id=root,
                    customer_id=customer,
                    messages=messages,
                )
            )
    return conversations


def parse_ibm_dialog(dialog: Mapping[str, Any]) -> Conversation:
    """One IBM dialog to a conversation between its brand and the customer its final reply
    answers.

    The final agent turn (`agentURL`) has no time: it comes from the snowflake id. Turns by
    anyone else (another customer joining the thread, another brand), and brand replies to
    another customer, are left out: the platform would key them to other conversations. The
    dialogs are reply chains, so each turn answers the one before it.
    """
    brand = str(dialog["dialogHeader"]["company"])
    turns: Sequence[Mapping[str, str]] = dialog["dialogContent"]
    final = dialog["agentURL"]
    clients = [turn.get("client") or turn.get("client1") for turn in turns if "agent" not in turn]
    mentioned = [handle.lower() for handle in _MENTION.findall(final["url_utterance"])]
    by_lower = {str(handle).lower(): str(handle) for handle in clients if handle}
    customer = next(
        (by_lower[handle] for handle in mentioned if handle in by_lower),
        str(clients[-1]),  # the account was renamed since: the last customer turn is answered
    )

    def answers_someone_else(text: str) -> bool:
        addressee = _MENTION.match(text)
        return (
            addressee is not None and by_lower.get(addressee.group(1).lower(), customer) != customer
        )

    messages: list[CorpusMessage] = []
    previous: str | None = None
    for turn in turns:
        author = turn.get("agent") or turn.get("client") or turn.get("client1") or ""
        if author == customer or (author == brand and not answers_someone_else(turn["message"])):
            messages.append(
                CorpusMessage(
                    tweet_id=turn["tweet_ID"],
                    author_id=author,
                    author_handle=author,
                    inbound=author == customer,
                    text=x_text(turn["message"]),
                    sent_at=datetime.fromisoformat(turn["datetime"]).astimezone(UTC),
                    in_reply_to=previous,
                )
            )
        previous = turn["tweet_ID"]
    messages.append(
        CorpusMessage(
            tweet_id=final["tweet_ID"],
            author_id=brand,
            author_handle=brand,
            inbound=False,
            text=x_text(final["url_utterance"]),
            sent_at=snowflake_time(final["tweet_ID"]),
            in_reply_to=previous,
        )
    )
    return Conversation(
        source="ibm",
        brand=brand,
        root_tweet_id=turns[0]["tweet_ID"],
        customer_id=customer,
        messages=tuple(messages),
    )


def read_twcs_threads(corpus: Path) -> list[Conversation]:
    """Every TWCS thread file, conversations in the order they started."""
    conversations: list[Conversation] = []
    for path in sorted((corpus / TWCS_THREADS).glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            conversations.extend(parse_twcs_threads(csv.DictReader(handle)))
    conversations.sort(key=lambda conversation: conversation.messages[0].sent_at)
    return conversations


def read_ibm_dialogs(corpus: Path) -> list[Conversation]:
    """The IBM dev and test dialogs, in file order (already a mix of brands)."""
    conversations: list[Conversation] = []
    for split in IBM_SPLITS:
        dialogs = json.loads((corpus / IBM_DIALOGS / split).read_text(encoding="utf-8"))
        conversations.extend(parse_ibm_dialog(dialog) for dialog in dialogs)
    return conversations


def interleave(*sources: Sequence[Conversation]) -> Iterator[Conversation]:
    """Take one conversation from each source in turn, so the demo shows both corpora early."""
    for batch in zip_longest(*sources):
        yield from (conversation for conversation in batch if conversation is not None)


def load_corpus(corpus: Path) -> list[Conversation]:
    """Both corpora, interleaved: the order in which the demo opens conversations. A
    conversation that appears twice (the IBM dev and test splits share one) is replayed once."""
    seen: set[str] = set()
    unique = []
    for conversation in interleave(read_twcs_threads(corpus), read_ibm_dialogs(corpus)):
        if conversation.conversation_id not in seen:
            seen.add(conversation.conversation_id)
            unique.append(conversation)
    return unique
