"""The state a batch of messages is routed against: what the adapter loaded (and locked) for
it — cases, agents, orphan replies, crisis topics and quiet incidents, the texts already read —
and the batch in progress (its outcome and its crisis-topic hits). The decisions that read it
(routing, threading, incidents) import it; it imports none of them, so there is no loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from casewire_common.messages import CanonicalMessage

from casewire_router.domain.assignment import AgentState
from casewire_router.domain.case import CaseState, CustomerKey
from casewire_router.domain.handover import ConversationControl, DeliveryMarks
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.urgency import TextReading


@dataclass(frozen=True)
class MessageReading:
    """A message's text as routing reads it: folded once for the rules and the urgency
    signals, and what the urgency vocabularies found in it."""

    text: str  # the text read (a reading is used only for the message with this text)
    folded: str
    vocabulary: TextReading


@dataclass
class TopicState:
    """One crisis topic's recent past, as the adapter found it. Bounded whatever the burst:
    case ids are kept only below the incident threshold; once an incident is open, counts."""

    recent_count: int = 0  # hits on the topic in the window before the batch (capped count)
    recent_case_ids: list[str] = field(default_factory=list)  # them, while no incident is open
    incident_id: str | None = None  # its open incident
    opened_at: datetime | None = None
    incident_case_count: int = 0
    # The incident's cases among those this batch can touch (every case the adapter loaded).
    incident_case_ids: set[str] = field(default_factory=set)
    open_cases: dict[str, CaseState] = field(default_factory=dict)  # linkable, locked, by id


@dataclass(frozen=True)
class QuietIncident:
    """An open incident whose crisis topic had no new case for a whole incident window."""

    incident_id: str
    topic: str
    opened_at: datetime
    last_seen_at: datetime
    case_count: int


class OrphanReplies:
    """Brand replies without a case, found by the message they name (`in_reply_to`) or by
    their conversation, on the same platform and brand account: a lookup per customer
    message, whatever the number of orphans."""

    def __init__(self) -> None:
        self._replies: dict[str, CanonicalMessage] = {}  # by id
        self._ids: dict[tuple[str, str, str, str], set[str]] = {}  # by what they answer

    def add(self, reply: CanonicalMessage) -> None:
        self._replies[reply.id] = reply
        for key in _orphan_keys(reply):
            self._ids.setdefault(key, set()).add(reply.id)

    def remove(self, reply: CanonicalMessage) -> None:
        del self._replies[reply.id]
        for key in _orphan_keys(reply):
            ids = self._ids[key]
            ids.discard(reply.id)
            if not ids:
                del self._ids[key]

    def answering(self, message: CanonicalMessage) -> list[CanonicalMessage]:
        """The orphans that name the customer message or are in its conversation, earliest
        sent first. (Whether each counts depends on when it was sent: `counts_as_response`.)"""
        where = (message.platform, message.account_id)
        ids = self._ids.get(("answers", *where, message.platform_message_id), set())
        ids = ids | self._ids.get(("conversation", *where, message.conversation_id), set())
        return sorted((self._replies[i] for i in ids), key=lambda reply: reply.sent_at)

    def __contains__(self, reply_id: object) -> bool:
        return reply_id in self._replies

    def __iter__(self) -> Iterator[CanonicalMessage]:
        return iter(list(self._replies.values()))

    def __len__(self) -> int:
        return len(self._replies)


def _orphan_keys(reply: CanonicalMessage) -> list[tuple[str, str, str, str]]:
    keys: list[tuple[str, str, str, str]] = [
        ("conversation", reply.platform, reply.account_id, reply.conversation_id)
    ]
    if reply.in_reply_to is not None:
        keys.append(("answers", reply.platform, reply.account_id, reply.in_reply_to))
    return keys


@dataclass
class BatchState:
    """What the adapter loaded (and locked) for one batch: updated in place as it is applied."""

    open_cases: dict[str, CaseState] = field(default_factory=dict)  # by conversation (or merged)
    open_by_customer: dict[CustomerKey, list[CaseState]] = field(default_factory=dict)
    # The customers' cases resolved since the batch's earliest message was sent: a message
    # sent while one was open still merges into it (into its history).
    closed_by_customer: dict[CustomerKey, list[CaseState]] = field(default_factory=dict)
    resolved: dict[str, CaseState] = field(default_factory=dict)  # last resolved, by conversation
    # The agents the batch can reach, locked (`CaseRouter.agents_needed`,
    # `handover_agents_needed`): loaded whenever a case may open, reopen or be absorbed (its
    # owner's load is released).
    agents: dict[str, AgentState] = field(default_factory=dict)
    # Sending times of the customers' messages within the repeat-contact window of the batch's
    # (the most recent ones, enough for the signal): a message counts those sent before it.
    contact_times: dict[CustomerKey, list[datetime]] = field(default_factory=dict)
    topics: dict[str, TopicState] = field(default_factory=dict)
    # Open cases by (platform, platform message id) of the customer messages they hold: a
    # brand reply whose conversation names no customer (Meta public replies) finds its case
    # through the message it answers. Also the cases, open or closed, of the messages the
    # batch edits or deletes.
    cases_by_message: dict[tuple[str, str], CaseState] = field(default_factory=dict)
    # Open incidents of the batch's topics found quiet for a whole window, closed by the
    # adapter: the batch publishes their `casewire.incident.closed`.
    quiet_incidents: list[QuietIncident] = field(default_factory=list)
    # Brand replies kept without a case (processed before the message they answer): those
    # that may answer the batch's customer messages, and the batch's own.
    orphan_replies: OrphanReplies = field(default_factory=lambda: OrphanReplies())
    # Open cases holding a customer message that answers (platform, platform message id), of
    # the customer of that message: a reply chain processed out of order (the answer before
    # the message it answers) split into two cases, merged when the message gets its case.
    cases_answering: dict[tuple[str, str], list[CaseState]] = field(default_factory=dict)
    # Who answers the conversations a chatbot may answer, and their transcripts still without
    # a case (bot handover), by conversation.
    controls: dict[str, ConversationControl] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """A case on a crisis topic, as the batch saw it."""

    case: CaseState
    at: datetime


@dataclass
class Batch:
    """One batch being applied: the loaded state, the outcome, and the batch's topic hits."""

    state: BatchState
    result: RoutingOutcome
    new_id: Callable[[], str]
    now: datetime
    readings: Mapping[str, MessageReading]
    # How ingest delivered each message (standby channel, sending app), by message id.
    marks: Mapping[str, DeliveryMarks] = field(default_factory=dict)
    hits: dict[str, dict[str, Hit]] = field(default_factory=dict)  # topic -> case id -> hit

    def hit(self, topic: str, case: CaseState) -> None:
        topic_hits = self.hits.setdefault(topic, {})
        if case.id not in topic_hits:
            topic_hits[case.id] = Hit(case, self.now)
            self.result.topic_hits.append((topic, case.id))

    def topic_cases(self, topic: str) -> list[str]:
        """The cases on the topic within the window while no incident is open (fewer than the
        threshold before the batch): before the batch, then in it."""
        earlier = self.state.topics[topic].recent_case_ids if topic in self.state.topics else []
        seen = dict.fromkeys(earlier)
        seen.update(dict.fromkeys(self.hits.get(topic, {})))
        return list(seen)

    def topic_count(self, topic: str) -> int:
        """How many cases hit the topic within the window, before the batch and in it (a case
        of the batch already counted before is counted once while its id is known)."""
        topic_state = self.state.topics.get(topic)
        if topic_state is None:
            return len(self.hits.get(topic, {}))
        known = set(topic_state.recent_case_ids)
        fresh = [case_id for case_id in self.hits.get(topic, {}) if case_id not in known]
        return topic_state.recent_count + len(fresh)
