"""The state a batch of messages is routed against: what the adapter loaded (and locked) for
it, and the batch in progress (its outcome and its crisis-topic hits)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from casewire_router.domain.assignment import AgentState
from casewire_router.domain.case import CaseState, CustomerKey
from casewire_router.domain.incidents import QuietIncident, TopicState
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.threading import OrphanReplies

if TYPE_CHECKING:
    from casewire_router.domain.routing import MessageReading


@dataclass
class BatchState:
    """What the adapter loaded (and locked) for one batch: updated in place as it is applied."""

    open_cases: dict[str, CaseState] = field(default_factory=dict)  # by conversation (or merged)
    open_by_customer: dict[CustomerKey, list[CaseState]] = field(default_factory=dict)
    # The customers' cases resolved since the batch's earliest message was sent: a message
    # sent while one was open still merges into it (into its history).
    closed_by_customer: dict[CustomerKey, list[CaseState]] = field(default_factory=dict)
    resolved: dict[str, CaseState] = field(default_factory=dict)  # last resolved, by conversation
    # Every agent, locked: loaded whenever a case may open, reopen or be absorbed (its owner's
    # load is released).
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
