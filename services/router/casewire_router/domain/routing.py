"""From messages to cases: threading, routing decisions, assignment, and the events they cause.

`route_batch` is pure: given a batch of messages, the open cases of their conversations and
the agents, it returns what changed and which events to publish. The adapter loads that
state and stores the outcome in one transaction.

Outcomes follow the messages' sending times (`sent_at`), not the order they are processed
in: a brand reply processed before the message it answers waits as an orphan and counts when
that message arrives, if it was sent after it; a customer message sent before its case was
resolved joins the case's history instead of reopening it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from casewire_common import events as ev
from casewire_common.events import (
    CaseEventData,
    CaseSnapshot,
    CaseStatus,
    MessageSentiment,
    Priority,
    RoutingDecision,
)
from casewire_common.messages import CanonicalMessage, Channel, Platform, Visibility

from casewire_router.domain.assignment import AgentState, choose_agent
from casewire_router.domain.keywords import fold
from casewire_router.domain.rules import PRIORITY_ORDER, RuleSet, most_urgent
from casewire_router.domain.sentiment import Sentiment
from casewire_router.domain.urgency import (
    Assessment,
    TextReading,
    UrgencyContext,
    UrgencyModel,
    assess,
    default_model,
    priority_for,
    read_text,
)

CLOSED_STATUSES: frozenset[CaseStatus] = frozenset({"resolved", "no_action"})


@dataclass
class CaseState:
    id: str
    conversation_id: str
    customer_id: str
    account_id: str
    platform: Platform
    channel: Channel
    visibility: Visibility
    status: CaseStatus
    priority: Priority
    urgency_score: int
    team: str
    assignee: str | None
    tags: list[str]
    language: str | None
    opened_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    # When the case last went back to its team queue (reopened); None: waiting since opened_at.
    queued_at: datetime | None = None
    # The decision that opened the case: set and stored when the case opens, never read back.
    decision: RoutingDecision | None = None
    # How many events the case has had (`CaseSnapshot.version`): each event counts one.
    version: int = 0
    # The sentiment of its latest customer message, and the most negative one so far.
    sentiment: Sentiment | None = None
    worst_sentiment: Sentiment | None = None

    def feel(self, sentiment: Sentiment) -> None:
        """A customer message of the case was read: its tone is the latest, maybe the worst."""
        self.sentiment = sentiment
        if sentiment.worse_than(self.worst_sentiment):
            self.worst_sentiment = sentiment

    def snapshot(self) -> CaseSnapshot:
        return CaseSnapshot(
            id=self.id,
            conversation_id=self.conversation_id,
            platform=self.platform,
            channel=self.channel,
            visibility=self.visibility,
            status=self.status,
            priority=self.priority,
            urgency_score=self.urgency_score,
            team=self.team,
            assignee=self.assignee,
            tags=list(self.tags),
            language=self.language,
            opened_at=self.opened_at,
            first_response_at=self.first_response_at,
            resolved_at=self.resolved_at,
            version=self.version,
            sentiment=_sentiment_of(self.sentiment),
            worst_sentiment=_sentiment_of(self.worst_sentiment),
        )


def _sentiment_of(sentiment: Sentiment | None) -> MessageSentiment | None:
    if sentiment is None:
        return None
    return MessageSentiment(label=sentiment.label, score=sentiment.score)


@dataclass(frozen=True)
class CaseEvent:
    type: str
    case_id: str
    data: CaseEventData
    at: datetime | None = None  # when it happened, if not when its message was sent


@dataclass
class BatchOutcome:
    cases: dict[str, CaseState] = field(default_factory=dict)  # opened or changed, by id
    opened: set[str] = field(default_factory=set)  # ids of the cases the batch opened
    stored_messages: list[tuple[CanonicalMessage, str | None]] = field(default_factory=list)
    # Brand replies stored earlier without a case (orphans) that now join one: (reply, case id).
    attached_replies: list[tuple[CanonicalMessage, str]] = field(default_factory=list)
    edits: list[CanonicalMessage] = field(default_factory=list)
    events: list[CaseEvent] = field(default_factory=list)
    agents: dict[str, AgentState] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)  # (conversation, case) to remember
    topic_hits: list[tuple[str, str]] = field(default_factory=list)  # (crisis topic, case id)
    incidents: list[IncidentChange] = field(default_factory=list)
    decisions: dict[str, RoutingDecision] = field(default_factory=dict)  # by customer message id
    # Cases absorbed into another of the same reply chain, in the order merged: (absorbed id,
    # kept id). Their messages and conversations move to the kept case, after the batch's own.
    absorbed: list[tuple[str, str]] = field(default_factory=list)
    # Cases that got their first brand reply in this batch (none before): each answered once
    # in the care metrics, even when an earlier-sent reply read later takes the first's place.
    first_answers: set[str] = field(default_factory=set)

    def emit(
        self,
        event_type: str,
        case: CaseState,
        message_id: str | None = None,
        *,
        at: datetime | None = None,
        **details: Any,
    ) -> None:
        """Record an event carrying the case as it is now (the snapshot is taken here). Every
        event counts one more version of the case, so the case is written back."""
        case.version += 1
        self.cases[case.id] = case
        data = CaseEventData(case=case.snapshot(), message_id=message_id, **details)
        self.events.append(CaseEvent(event_type, case.id, data, at))

    def assign(
        self,
        case: CaseState,
        agent: AgentState,
        now: datetime,
        *,
        message_id: str | None = None,
        decision: RoutingDecision | None = None,
    ) -> None:
        """Give the case to `agent` (who must have room): one owner, the agent's load counted."""
        previous = case.status
        if case.assignee is not None and case.assignee != agent.id and case.assignee in self.agents:
            self.release(self.agents[case.assignee])
        agent.load += 1
        agent.last_assigned_at = now
        self.agents[agent.id] = agent
        case.assignee = agent.id
        case.status = "assigned"
        self.cases[case.id] = case
        self.emit(
            ev.CASE_ASSIGNED,
            case,
            message_id,
            decision=decision,
            agent_id=agent.id,
            previous_status=previous,
        )

    def release(self, agent: AgentState) -> None:
        """The agent no longer owns one of their open cases."""
        agent.load = max(0, agent.load - 1)
        self.agents[agent.id] = agent

    def change_status(
        self,
        case: CaseState,
        status: CaseStatus,
        *,
        message_id: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        previous = case.status
        case.status = status
        self.cases[case.id] = case
        self.emit(
            ev.CASE_STATUS_CHANGED,
            case,
            message_id,
            agent_id=agent_id,
            previous_status=previous,
        )


CustomerKey = tuple[str, str, str]  # platform, brand account, customer


def customer_key(message: CanonicalMessage) -> CustomerKey:
    return (message.platform, message.account_id, message.customer_id)


@dataclass(frozen=True)
class CaseWindows:
    """How close in time messages must be to join, reopen or burst together."""

    reopen: timedelta = timedelta(days=7)
    merge: timedelta = timedelta(hours=24)
    repeat_contact: timedelta = timedelta(hours=24)  # earlier messages this recent: urgency
    incident: timedelta = timedelta(minutes=15)
    incident_threshold: int = 5


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


@dataclass(frozen=True)
class MessageReading:
    """A message's text as routing reads it: folded once for the rules and the urgency
    signals, and what the urgency vocabularies found in it."""

    text: str  # the text read (a reading is used only for the message with this text)
    folded: str
    vocabulary: TextReading


@dataclass(frozen=True)
class Router:
    """The routing policy in force: rules, urgency model and case windows."""

    rules: RuleSet
    urgency: UrgencyModel
    windows: CaseWindows = CaseWindows()

    def read(
        self, message: CanonicalMessage, readings: Mapping[str, MessageReading] | None = None
    ) -> MessageReading:
        """The message's text folded and read by the urgency vocabularies: taken from
        `readings` (by message id) if it holds this text's reading, else read now."""
        known = readings.get(message.id) if readings is not None else None
        if known is not None and known.text == message.text:
            return known
        folded = fold(message.text)
        return MessageReading(
            message.text, folded, read_text(self.urgency, folded, message.language)
        )

    def read_customer_messages(
        self, messages: Sequence[CanonicalMessage]
    ) -> dict[str, MessageReading]:
        """The readings of the batch's customer messages, by id: read once, then used to lock
        their crisis topics and to route them (`route_batch(readings=...)`)."""
        return {
            message.id: self.read(message)
            for message in messages
            if message.event == "message" and message.direction == "inbound"
        }

    def crisis_topics(
        self, message: CanonicalMessage, readings: Mapping[str, MessageReading] | None = None
    ) -> frozenset[str]:
        """The crisis topics an inbound message is about (what bursts and incidents group by)."""
        return self.read(message, readings).vocabulary.crisis_topics

    def decide(
        self,
        message: CanonicalMessage,
        context: UrgencyContext | None = None,
        reading: MessageReading | None = None,
    ) -> tuple[RoutingDecision, Assessment, str | None]:
        """The routing decision for a message, its urgency assessment, and the agent a rule
        asks for (`assign_to`); `reading` is the message's `read`, if the caller has it."""
        if reading is None or reading.text != message.text:
            reading = self.read(message)  # once for the rules and every urgency signal
        outcome = self.rules.evaluate(message, reading.folded)
        assessment = assess(self.urgency, message, reading.folded, context, reading.vocabulary)
        priority = most_urgent(outcome.priority, priority_for(assessment.urgency.score))
        assert priority is not None
        tags = list(outcome.tags)
        if assessment.troll_likely and TROLL_TAG not in tags:
            tags.append(TROLL_TAG)
        return (
            RoutingDecision(
                rules_version=self.rules.version,
                matched_rules=outcome.matched_rules,
                urgency=assessment.urgency,
                team=outcome.team,
                priority=priority,
                tags=tags,
                skip=outcome.skip,
                reply_template=outcome.reply_template,
            ),
            assessment,
            outcome.assign_to,
        )

    def route_batch(
        self,
        messages: Sequence[CanonicalMessage],
        state: BatchState,
        *,
        new_id: Callable[[], str],
        now: datetime,
        readings: Mapping[str, MessageReading] | None = None,
    ) -> BatchOutcome:
        """Apply messages in order to the loaded state (updated in place), then incidents.
        `readings`: the customer messages' texts already read (`read_customer_messages`)."""
        result = BatchOutcome()
        result.incidents.extend(close_incident(quiet) for quiet in state.quiet_incidents)
        state.quiet_incidents = []
        batch = _Batch(state, result, new_id, now, readings or {})
        for message in messages:
            if message.event != "message":
                self._on_message_update(message, batch)
            elif message.direction == "outbound":
                self._on_brand_message(message, batch)
            else:
                self._on_customer_message(message, batch)
        self._incidents(batch)
        for topic in batch.hits:  # the state stays current for the next batch
            topic_state = state.topics.setdefault(topic, TopicState())
            count = batch.topic_count(topic)
            topic_state.recent_case_ids = (
                batch.topic_cases(topic) if topic_state.incident_id is None else []
            )
            topic_state.recent_count = count
        return result

    def _on_customer_message(self, message: CanonicalMessage, batch: _Batch) -> None:
        state, result = batch.state, batch.result
        key = customer_key(message)
        reading = self.read(message, batch.readings)
        topics = reading.vocabulary.crisis_topics
        contact_times = state.contact_times.setdefault(key, [])
        context = UrgencyContext(
            recent_contacts=self._earlier_contacts(message, contact_times),
            similar_recent=max((batch.topic_count(topic) for topic in topics), default=0),
        )
        contact_times.append(message.sent_at)
        decision, _, requested = self.decide(message, context, reading)
        result.decisions[message.id] = decision
        case = state.open_cases.get(message.conversation_id)
        if case is None:
            case = self._answered_case(message, state)
            if case is not None:
                state.open_cases[message.conversation_id] = case
                result.links.append((message.conversation_id, case.id))
        if case is None:
            closed = self._closed_after_sending(message, state)
            if closed is not None:
                # Sent while the case was open, processed after it closed: part of its history.
                self._keep_with_closed_case(closed, message, batch)
                return
            case = self._merge_target(message, state)
            if case is not None:
                state.open_cases[message.conversation_id] = case
                result.links.append((message.conversation_id, case.id))
                result.emit(
                    ev.CASE_MERGED,
                    case,
                    message.id,
                    merged_conversation_id=message.conversation_id,
                )
        if case is None:
            closed = self._closed_merge_target(message, state)
            if closed is not None:
                result.links.append((message.conversation_id, closed.id))
                result.emit(
                    ev.CASE_MERGED,
                    closed,
                    message.id,
                    merged_conversation_id=message.conversation_id,
                )
                self._keep_with_closed_case(closed, message, batch)
                return
        if case is None:
            resolved = state.resolved.get(message.conversation_id)
            if (
                resolved is not None
                and resolved.resolved_at is not None
                and message.sent_at - resolved.resolved_at <= self.windows.reopen
            ):
                if decision.skip:
                    # "Thank you" for the answer: kept with the case, which stays resolved
                    # (reopening it would put it back in an agent's queue for nothing).
                    self._keep_with_closed_case(resolved, message, batch)
                    return
                case = resolved
                del state.resolved[message.conversation_id]
                self._reopen(case, message, batch)
        if case is None:
            case = self._open_case(message, decision, requested, batch)
        else:
            self._follow_up(case, message, decision, batch)
        state.cases_by_message[(message.platform, message.platform_message_id)] = case
        if message.in_reply_to is not None and case.status not in CLOSED_STATUSES:
            answering = state.cases_answering.setdefault(
                (message.platform, message.in_reply_to), []
            )
            if all(held is not case for held in answering):
                answering.append(case)
        case = self._absorb_split_chain(message, case, batch)
        case = self._attach_orphan_replies(message, case, batch)
        if case.status not in CLOSED_STATUSES:
            for topic in topics:
                batch.hit(topic, case)

    def _closed_after_sending(
        self, message: CanonicalMessage, state: BatchState
    ) -> CaseState | None:
        """The resolved case of the message's conversation, or holding the message it answers,
        that was resolved after the message was sent (the message only arrived late)."""
        candidates = [state.resolved.get(message.conversation_id)]
        if message.in_reply_to is not None:
            candidates.append(state.cases_by_message.get((message.platform, message.in_reply_to)))
        for case in candidates:
            if (
                case is not None
                and case.status == "resolved"
                and case.resolved_at is not None
                and message.sent_at < case.resolved_at
                and case.account_id == message.account_id
                and case.customer_id == message.customer_id
            ):
                return case
        return None

    def _keep_with_closed_case(
        self, case: CaseState, message: CanonicalMessage, batch: _Batch
    ) -> None:
        """A customer message that joins a closed case's history: the case stays closed."""
        case.feel(self.read(message, batch.readings).vocabulary.sentiment)
        batch.result.stored_messages.append((message, case.id))
        batch.result.emit(ev.CASE_MESSAGE_ADDED, case, message.id)
        batch.state.cases_by_message[(message.platform, message.platform_message_id)] = case
        self._attach_orphan_replies(message, case, batch)

    def _attach_orphan_replies(
        self, message: CanonicalMessage, case: CaseState, batch: _Batch
    ) -> CaseState:
        """Brand replies processed before the customer message they answer join its case now,
        earliest first, each counted as a response if it was sent after the message. Returns
        the message's case: another one if a reply's own answers were in it (absorbed)."""
        orphans = batch.state.orphan_replies
        for reply in orphans.answering(message):
            if counts_as_response(reply, case, answered_at=message.sent_at):
                orphans.remove(reply)
                batch.result.attached_replies.append((reply, case.id))
                self._respond(case, reply, batch)
                case = self._absorb_split_chain(reply, case, batch)
        return case

    def _absorb_split_chain(
        self, message: CanonicalMessage, case: CaseState, batch: _Batch
    ) -> CaseState:
        """`message` just got its open case: the customer's other open cases holding an answer
        to it are the same reply chain, split because the answer was processed first (it found
        no case to join). They become one: the earliest opened is kept, the other absorbed.
        Returns the message's case after it (the kept one)."""
        if case.status in CLOSED_STATUSES:
            return case
        answering = batch.state.cases_answering.get((message.platform, message.platform_message_id))
        for other in list(answering or []):
            if (
                other.id == case.id
                or other.status in CLOSED_STATUSES
                or _customer_of(other) != _customer_of(case)
            ):
                continue
            kept, absorbed = sorted((case, other), key=lambda c: _seniority(c, batch.result))
            self._absorb(kept, absorbed, message, batch)
            case = kept
        return case

    def _absorb(
        self, kept: CaseState, absorbed: CaseState, message: CanonicalMessage, batch: _Batch
    ) -> None:
        """One case takes another's history (`casewire.case.merged` on both): the kept case
        answers for what either did (earliest opening and response, the more urgent priority,
        every tag); the absorbed one is closed now and its owner's load released, so that no
        agent holds one reply chain twice."""
        state, result = batch.state, batch.result
        kept.opened_at = min(kept.opened_at, absorbed.opened_at)
        responses = [
            at for at in (kept.first_response_at, absorbed.first_response_at) if at is not None
        ]
        kept.first_response_at = min(responses, default=None)
        kept.tags.extend(tag for tag in absorbed.tags if tag not in kept.tags)
        if PRIORITY_ORDER[absorbed.priority] < PRIORITY_ORDER[kept.priority]:
            kept.priority = absorbed.priority
        kept.urgency_score = max(kept.urgency_score, absorbed.urgency_score)
        if absorbed.worst_sentiment is not None:
            if absorbed.worst_sentiment.worse_than(kept.worst_sentiment):
                kept.worst_sentiment = absorbed.worst_sentiment
            if kept.sentiment is None:
                kept.sentiment = absorbed.sentiment
        if kept.language is None:
            kept.language = absorbed.language
        absorbed.status = "resolved"
        absorbed.resolved_at = batch.now
        if absorbed.assignee is not None:
            result.release(state.agents[absorbed.assignee])
        result.absorbed.append((absorbed.id, kept.id))
        result.emit(ev.CASE_MERGED, absorbed, message.id, merged_into_case_id=kept.id)
        result.emit(
            ev.CASE_MERGED,
            kept,
            message.id,
            merged_case_id=absorbed.id,
            merged_conversation_id=absorbed.conversation_id,
        )
        _repoint(state, absorbed, kept)

    def _earlier_contacts(self, message: CanonicalMessage, times: Sequence[datetime]) -> int:
        """How many of the customer's messages were sent within the repeat-contact window
        before this one: by sending time, so a message processed late does not count the
        messages its customer sent after it."""
        since = message.sent_at - self.windows.repeat_contact
        return sum(1 for at in times if since <= at < message.sent_at)

    def _answered_case(self, message: CanonicalMessage, state: BatchState) -> CaseState | None:
        """The customer's open case holding the message this one answers. A tweet names only
        the tweet it answers, which ingest takes as its thread's root, so a back-and-forth on
        X gets a new conversation key at every reply: this keeps it one case."""
        if message.in_reply_to is None:
            return None
        case = state.cases_by_message.get((message.platform, message.in_reply_to))
        if (
            case is None
            or case.status in CLOSED_STATUSES
            or case.account_id != message.account_id
            or case.customer_id != message.customer_id
        ):
            return None
        return case

    def _merge_target(self, message: CanonicalMessage, state: BatchState) -> CaseState | None:
        """The customer's open case on the same platform, in the other visibility (their
        public post and their DM), opened within the merge window."""
        for case in reversed(state.open_by_customer.get(customer_key(message), [])):
            if (
                case.visibility != message.visibility
                and case.status not in CLOSED_STATUSES
                and abs(message.sent_at - case.opened_at) <= self.windows.merge
            ):
                return case
        return None

    def _closed_merge_target(
        self, message: CanonicalMessage, state: BatchState
    ) -> CaseState | None:
        """The customer's case in the other visibility that was open when the message was sent,
        within the merge window, and has been resolved since: processed in time, the message
        would have merged into it. (Never a `no_action` case: it was never open.)"""
        for case in reversed(state.closed_by_customer.get(customer_key(message), [])):
            if (
                case.status == "resolved"
                and case.visibility != message.visibility
                and case.resolved_at is not None
                and message.sent_at < case.resolved_at
                and abs(message.sent_at - case.opened_at) <= self.windows.merge
            ):
                return case
        return None

    def _follow_up(
        self,
        case: CaseState,
        message: CanonicalMessage,
        decision: RoutingDecision,
        batch: _Batch,
    ) -> None:
        result = batch.result
        result.stored_messages.append((message, case.id))
        case.tags.extend(tag for tag in decision.tags if tag not in case.tags)
        if message.sent_at < case.opened_at:
            # Sent before the message that opened the case, processed after it: the case has
            # been open since the customer first wrote (its clocks run from then).
            case.opened_at = message.sent_at
        if case.language is None and message.language is not None:
            case.language = message.language
        case.feel(self.read(message, batch.readings).vocabulary.sentiment)
        result.emit(ev.CASE_MESSAGE_ADDED, case, message.id)  # the case is written back
        if case.status == "pending":
            # The customer answered: the case is theirs to work on again.
            result.change_status(
                case, "assigned" if case.assignee is not None else "queued", message_id=message.id
            )
        if PRIORITY_ORDER[decision.priority] < PRIORITY_ORDER[case.priority]:
            previous = case.priority
            case.priority = decision.priority
            case.urgency_score = max(case.urgency_score, decision.urgency.score)
            result.cases[case.id] = case
            result.emit(
                ev.CASE_PRIORITY_CHANGED,
                case,
                message.id,
                decision=decision,
                previous_priority=previous,
            )

    def _reopen(self, case: CaseState, message: CanonicalMessage, batch: _Batch) -> None:
        """A customer wrote again soon after resolution: the same case, opened again."""
        state = batch.state
        state.open_cases[case.conversation_id] = case
        state.open_cases[message.conversation_id] = case
        state.open_by_customer.setdefault(customer_key(message), []).append(case)
        reopen_case(case, state.agents, batch.result, batch.now, message_id=message.id)

    def _open_case(
        self,
        message: CanonicalMessage,
        decision: RoutingDecision,
        requested: str | None,
        batch: _Batch,
    ) -> CaseState:
        state, result = batch.state, batch.result
        case = CaseState(
            id=batch.new_id(),
            conversation_id=message.conversation_id,
            customer_id=message.customer_id,
            account_id=message.account_id,
            platform=message.platform,
            channel=message.channel,
            visibility=message.visibility,
            status="queued",
            priority=decision.priority,
            urgency_score=decision.urgency.score,
            team=decision.team,
            assignee=None,
            tags=list(decision.tags),
            language=message.language,
            opened_at=message.sent_at,
            decision=decision,
        )
        case.feel(self.read(message, batch.readings).vocabulary.sentiment)
        result.cases[case.id] = case
        result.opened.add(case.id)
        result.links.append((message.conversation_id, case.id))
        result.stored_messages.append((message, case.id))
        if decision.skip:
            # Needs no reply: recorded and counted, closed at once.
            case.status = "no_action"
            case.resolved_at = message.sent_at
            result.emit(ev.CASE_CREATED, case, message.id, decision=decision)
            return case
        state.open_cases[case.conversation_id] = case
        state.open_by_customer.setdefault(customer_key(message), []).append(case)
        choice = choose_agent(
            case.team, case.language, list(state.agents.values()), requested=requested
        )
        decision = replace_decision(decision, choice.candidates, choice.agent_id, choice.reason)
        case.decision = decision
        result.emit(ev.CASE_CREATED, case, message.id, decision=decision)
        if choice.agent_id is not None:
            result.assign(
                case,
                state.agents[choice.agent_id],
                batch.now,
                message_id=message.id,
                decision=decision,
            )
        return case

    def _on_brand_message(self, message: CanonicalMessage, batch: _Batch) -> None:
        state = batch.state
        case = state.open_cases.get(message.conversation_id)
        if case is None and message.in_reply_to is not None:
            case = state.cases_by_message.get((message.platform, message.in_reply_to))
        if case is None:
            case = state.resolved.get(message.conversation_id)
        if case is None or not counts_as_response(message, case, answered_at=case.opened_at):
            # A brand message never opens a case. Kept without one, as an orphan: the message
            # it answers may not have been processed yet (`_attach_orphan_replies`).
            batch.result.stored_messages.append((message, None))
            state.orphan_replies.add(message)
            return
        batch.result.stored_messages.append((message, case.id))
        self._respond(case, message, batch)
        self._absorb_split_chain(message, case, batch)

    def _respond(self, case: CaseState, reply: CanonicalMessage, batch: _Batch) -> None:
        """Count a brand reply on its case. The first response is the earliest sent: a reply
        processed after a later-sent one takes its place (and says it is the first)."""
        batch.state.cases_by_message[(reply.platform, reply.platform_message_id)] = case
        first = case.first_response_at is None or reply.sent_at < case.first_response_at
        if case.first_response_at is None:
            batch.result.first_answers.add(case.id)
        if first:
            case.first_response_at = reply.sent_at
            batch.result.cases[case.id] = case
        batch.result.emit(
            ev.CASE_RESPONDED, case, reply.id, first_response=first, agent_id=reply.author.id
        )

    def _on_message_update(self, message: CanonicalMessage, batch: _Batch) -> None:
        """An edit or delete of a message (the same id as the original): stored, published on
        the original's case (`casewire.case.message_updated`), and an edited customer message
        of an open case re-scored on its own: the case's priority rises if the new text is
        more urgent, and is never lowered by an edit."""
        result = batch.result
        result.edits.append(message)
        case = batch.state.cases_by_message.get((message.platform, message.platform_message_id))
        if case is None:
            return  # a message kept without a case (a brand message), or never seen
        if message.event == "delete":
            result.emit(ev.CASE_MESSAGE_UPDATED, case, message.id, at=message.sent_at, deleted=True)
            return
        reading = self.read(message) if message.direction == "inbound" else None
        if reading is not None:
            case.feel(reading.vocabulary.sentiment)  # the edited text is what it now says
        result.emit(
            ev.CASE_MESSAGE_UPDATED, case, message.id, at=message.sent_at, text=message.text
        )
        if reading is None or case.status in CLOSED_STATUSES:
            return
        decision, _, _ = self.decide(message, reading=reading)
        if PRIORITY_ORDER[decision.priority] < PRIORITY_ORDER[case.priority]:
            previous = case.priority
            case.priority = decision.priority
            case.urgency_score = max(case.urgency_score, decision.urgency.score)
            result.emit(
                ev.CASE_PRIORITY_CHANGED,
                case,
                message.id,
                at=message.sent_at,
                decision=decision,
                previous_priority=previous,
            )

    def _incidents(self, batch: _Batch) -> None:
        """A burst of cases on one crisis topic opens one incident (or grows the open one),
        links the cases and raises them to P1."""
        for topic, hits in batch.hits.items():
            topic_state = batch.state.topics.setdefault(topic, TopicState())
            opened = topic_state.incident_id is None
            if opened:
                added = batch.topic_cases(topic)
                if len(added) < self.windows.incident_threshold:
                    continue
                topic_state.incident_id = batch.new_id()
                topic_state.opened_at = batch.now
            else:
                added = [
                    case_id for case_id in hits if case_id not in topic_state.incident_case_ids
                ]
                if not added:
                    continue
            assert topic_state.incident_id is not None
            assert topic_state.opened_at is not None
            topic_state.incident_case_ids.update(added)
            topic_state.incident_case_count += len(added)
            batch.result.incidents.append(
                IncidentChange(
                    event_type=ev.INCIDENT_OPENED if opened else ev.INCIDENT_UPDATED,
                    data=ev.IncidentData(
                        incident_id=topic_state.incident_id,
                        topic=topic,
                        status="open",
                        opened_at=topic_state.opened_at,
                        last_seen_at=batch.now,
                        case_count=topic_state.incident_case_count,
                        added_case_ids=added,
                    ),
                )
            )
            for case_id in added:
                case = (
                    hits[case_id].case if case_id in hits else topic_state.open_cases.get(case_id)
                )
                if case is None or case.status in CLOSED_STATUSES:
                    continue
                if INCIDENT_TAG not in case.tags:
                    case.tags.append(INCIDENT_TAG)
                    batch.result.cases[case.id] = case
                if case.priority != "P1":
                    previous = case.priority
                    case.priority = "P1"
                    batch.result.cases[case.id] = case
                    batch.result.emit(
                        ev.CASE_PRIORITY_CHANGED,
                        case,
                        previous_priority=previous,
                        incident_id=topic_state.incident_id,
                    )


def counts_as_response(reply: CanonicalMessage, case: CaseState, answered_at: datetime) -> bool:
    """Whether a brand reply is a response of the case: sent after the message it answers
    (`answered_at`; the case's opening when it names none of its messages) and, on a closed
    case, before the case was closed. Decided by sending times, whatever the arrival order."""
    if reply.sent_at < answered_at:
        return False
    if case.status in CLOSED_STATUSES:
        return case.resolved_at is not None and reply.sent_at < case.resolved_at
    return True


def _customer_of(case: CaseState) -> CustomerKey:
    return (case.platform, case.account_id, case.customer_id)


def _seniority(case: CaseState, result: BatchOutcome) -> tuple[datetime, bool, str]:
    """Which of two cases of one reply chain is kept: the earliest opened (event time); on a
    tie the earliest created, as far as the router knows: one stored before the batch before
    one the batch opened (the table records no creation time), then by id."""
    return (case.opened_at, case.id in result.opened, case.id)


def _repoint(state: BatchState, absorbed: CaseState, kept: CaseState) -> None:
    """The rest of the batch finds the kept case wherever it would have found the absorbed
    one: by conversation (the absorbed case's own included), customer, message, answer."""
    for conversation, case in list(state.open_cases.items()):
        if case is absorbed:
            state.open_cases[conversation] = kept
    state.open_cases[absorbed.conversation_id] = kept
    for cases in state.open_by_customer.values():
        cases[:] = [case for case in cases if case is not absorbed]
    for key, case in list(state.cases_by_message.items()):
        if case is absorbed:
            state.cases_by_message[key] = kept
    for cases in state.cases_answering.values():
        if any(case is absorbed for case in cases):
            held = [case for case in cases if case is not absorbed and case is not kept]
            cases[:] = [*held, kept]


def reopen_case(
    case: CaseState,
    agents: Mapping[str, AgentState],
    outcome: BatchOutcome,
    now: datetime,
    message_id: str | None = None,
) -> None:
    """A closed case opens again (`status_changed` to reopened, resolved_at cleared, back in
    the team queue), then goes to its previous owner if they are online with room, else to
    the best agent of the team with room (`choose_agent`), else it waits as `reopened`."""
    previous_owner = case.assignee
    case.assignee = None
    case.resolved_at = None
    case.queued_at = now
    outcome.change_status(case, "reopened", message_id=message_id)
    choice = choose_agent(case.team, case.language, list(agents.values()), requested=previous_owner)
    if choice.agent_id is not None:
        outcome.assign(case, agents[choice.agent_id], now, message_id=message_id)


def router_for(rules: RuleSet, windows: CaseWindows | None = None) -> Router:
    """The router for a rules file: its rules, and the shipped urgency vocabularies extended
    by the file's `urgency` and `vocabulary` sections."""
    crisis = {
        topic: [
            *rules.extra_crisis_words.get(topic, []),
            *rules.vocabulary_crisis_words.get(topic, []),
        ]
        for topic in {**rules.extra_crisis_words, **rules.vocabulary_crisis_words}
    }
    urgency = default_model(crisis, rules.extra_negative_words, rules.vocabulary_words)
    return Router(rules=rules, urgency=urgency, windows=windows or CaseWindows())


TROLL_TAG = "likely-troll"
INCIDENT_TAG = "incident"


@dataclass(frozen=True)
class IncidentChange:
    event_type: str
    data: ev.IncidentData


@dataclass(frozen=True)
class QuietIncident:
    """An open incident whose crisis topic had no new case for a whole incident window."""

    incident_id: str
    topic: str
    opened_at: datetime
    last_seen_at: datetime
    case_count: int


def close_incident(incident: QuietIncident) -> IncidentChange:
    """A quiet incident is over (`casewire.incident.closed`): the next burst on its topic
    opens a new one."""
    return IncidentChange(
        event_type=ev.INCIDENT_CLOSED,
        data=ev.IncidentData(
            incident_id=incident.incident_id,
            topic=incident.topic,
            status="closed",
            opened_at=incident.opened_at,
            last_seen_at=incident.last_seen_at,
            case_count=incident.case_count,
            added_case_ids=[],
        ),
    )


@dataclass(frozen=True)
class _Hit:
    case: CaseState
    at: datetime


@dataclass
class _Batch:
    """One batch being applied: the loaded state, the outcome, and the batch's topic hits."""

    state: BatchState
    result: BatchOutcome
    new_id: Callable[[], str]
    now: datetime
    readings: Mapping[str, MessageReading]
    hits: dict[str, dict[str, _Hit]] = field(default_factory=dict)  # topic -> case id -> hit

    def hit(self, topic: str, case: CaseState) -> None:
        topic_hits = self.hits.setdefault(topic, {})
        if case.id not in topic_hits:
            topic_hits[case.id] = _Hit(case, self.now)
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


def replace_decision(
    decision: RoutingDecision,
    candidates: list[ev.CandidateAgent],
    assignee: str | None,
    reason: str,
) -> RoutingDecision:
    return decision.model_copy(
        update={"candidates": candidates, "assignee": assignee, "assignment_reason": reason}
    )
