"""The stores in memory, with the rules of their PostgreSQL counterparts: for unit tests and
the offline `route` tool, in place of a database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from casewire_common import events as ev
from casewire_common.messages import CanonicalMessage

from casewire_router.domain.assignment import AgentScope, AgentState
from casewire_router.domain.batch import BatchState, MessageReading, QuietIncident, TopicState
from casewire_router.domain.case import CLOSED_STATUSES, CaseState, CaseWindows, CustomerKey
from casewire_router.domain.case import customer_key as key_of
from casewire_router.domain.deliveries import Routable, processing_key
from casewire_router.domain.desk import FeedEntry
from casewire_router.domain.escalation import Alert, EscalationRecord, alert_key
from casewire_router.domain.incidents import is_quiet
from casewire_router.domain.leases import LeaseEcho
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.routing import CaseRouter


class InMemoryMessageStore:
    """The message path's storage in memory. One `BatchState` is carried from batch to batch
    (routing changes its cases, agents and threads in place, as PostgreSQL would store
    them); what the database reads within a time window is kept with its time and read
    within the same windows: each customer's contacts (repeat contact) and each crisis
    topic's case hits (bursts, incidents). No locks: one batch at a time. A transaction that
    fails keeps no claims and no events; the case changes routing made stay (no rollback)."""

    def __init__(self, windows: CaseWindows, agents: Mapping[str, AgentState] | None = None):
        self.windows = windows
        self.state = BatchState(agents=dict(agents or {}))
        self.processed: set[str] = set()
        self.outbox: list[tuple[str, ev.EventRecord]] = []  # committed events, in order
        self.cases: dict[str, CaseState] = {}  # every case saved, by id
        self._contacts: dict[CustomerKey, list[datetime]] = {}
        self._hits: dict[str, list[tuple[datetime, str]]] = {}  # topic -> (at, case id)
        self._incident_last_seen: dict[str, datetime] = {}
        self.escalations: dict[str, EscalationRecord] = {}  # by the alert that caused it
        self.undone: dict[str, str] = {}  # escalation's alert id -> the retraction's
        self.feed: list[FeedEntry] = []  # the desks' feed, in commit order
        self.leases: dict[str, str] = {}  # live reply leases: case id -> holder
        self.lease_echoes: list[LeaseEcho] = []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[InMemoryMessageTransaction]:
        work = InMemoryMessageTransaction(self)
        yield work
        self.processed |= work.claimed
        self.outbox.extend(work.events)
        self.feed.extend(work.feed)
        self.lease_echoes.extend(work.held_echoes)

    def claim(self, keys: Iterable[str]) -> set[str]:
        """The keys not processed before (the caller marks them processed on commit)."""
        return {key for key in keys if key not in self.processed}

    def load_state(self, items: Sequence[Routable], now: datetime) -> BatchState:
        """The state as PostgreSQL would load it for `messages` at `now`: the customers'
        contacts within the repeat-contact window, the topics' hits within the incident
        window, incidents quiet for a whole window closed (`quiet_incidents`)."""
        state = self.state
        messages = [item for item in items if isinstance(item, CanonicalMessage)]
        customers = [m for m in messages if m.event == "message" and m.direction == "inbound"]
        if customers:
            since_contact = min(m.sent_at for m in customers) - self.windows.repeat_contact
            for key in {key_of(m) for m in customers}:
                earlier = self._contacts.get(key, [])
                state.contact_times[key] = [at for at in earlier if at >= since_contact]
        since = now - self.windows.incident
        state.quiet_incidents.extend(self.close_quiet_incidents(since))
        for topic in list(state.topics):
            recent = [(at, case_id) for at, case_id in self._hits.get(topic, ()) if at >= since]
            self._hits[topic] = recent
            topic_state = state.topics[topic]
            topic_state.recent_count = len(recent)
            if topic_state.incident_id is None:
                topic_state.recent_case_ids = sorted({case_id for _, case_id in recent})
                topic_state.open_cases = {
                    case_id: self.cases[case_id]
                    for case_id in topic_state.recent_case_ids
                    if case_id in self.cases and self.cases[case_id].status not in CLOSED_STATUSES
                }
        return state

    def close_quiet_incidents(self, since: datetime) -> list[QuietIncident]:
        """Close the open incidents last seen before `since`: their topics start afresh."""
        quiet: list[QuietIncident] = []
        for topic, topic_state in list(self.state.topics.items()):
            last_seen = self._incident_last_seen.get(topic)
            if topic_state.incident_id is None or last_seen is None:
                continue
            if is_quiet(last_seen, since):
                assert topic_state.opened_at is not None
                quiet.append(
                    QuietIncident(
                        incident_id=topic_state.incident_id,
                        topic=topic,
                        opened_at=topic_state.opened_at,
                        last_seen_at=last_seen,
                        case_count=topic_state.incident_case_count,
                    )
                )
                self.state.topics[topic] = TopicState()
        return quiet

    def save(self, items: Sequence[Routable], outcome: RoutingOutcome, now: datetime) -> None:
        """Remember what the windows will read: the customers' messages and the topic hits.
        (A conversation's handovers and transcript stay in the carried state's `controls`.)"""
        for message in items:
            if (
                isinstance(message, CanonicalMessage)
                and message.event == "message"
                and message.direction == "inbound"
            ):
                self._contacts.setdefault(key_of(message), []).append(message.sent_at)
        for topic, case_id in outcome.topic_hits:
            self._hits.setdefault(topic, []).append((now, case_id))
            self._incident_last_seen[topic] = now
        self.cases.update(outcome.cases)


@dataclass
class InMemoryMessageTransaction:
    """One batch on the in-memory store: its claims and events count once it commits."""

    store: InMemoryMessageStore
    duplicates: int = 0
    claimed: set[str] = field(default_factory=set)
    events: list[tuple[str, ev.EventRecord]] = field(default_factory=list)
    messages: list[Routable] = field(default_factory=list)
    feed: list[FeedEntry] = field(default_factory=list)
    held_echoes: list[LeaseEcho] = field(default_factory=list)

    async def claim_new(self, messages: Sequence[Routable]) -> list[Routable]:
        first_by_key: dict[str, Routable] = {}
        for message in messages:
            first_by_key.setdefault(processing_key(message), message)
        new_keys = self.store.claim(first_by_key) - self.claimed
        self.claimed |= new_keys
        fresh = [message for key, message in first_by_key.items() if key in new_keys]
        self.duplicates += len(messages) - len(fresh)
        return fresh

    async def load_state(
        self,
        messages: Sequence[Routable],
        case_router: CaseRouter,
        now: datetime,
        readings: Mapping[str, MessageReading],
    ) -> BatchState:
        self.messages = list(messages)
        return self.store.load_state(messages, now)

    async def save(self, outcome: RoutingOutcome, now: datetime) -> None:
        self.store.save(self.messages, outcome, now)

    async def claim_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        first_by_key: dict[str, Alert] = {}
        for alert in alerts:
            first_by_key.setdefault(alert_key(alert), alert)
        new_keys = self.store.claim(first_by_key) - self.claimed
        self.claimed |= new_keys
        return [alert for key, alert in first_by_key.items() if key in new_keys]

    async def lock_cases(self, case_ids: Collection[str]) -> dict[str, CaseState]:
        return {i: self.store.cases[i] for i in sorted(case_ids) if i in self.store.cases}

    async def lock_agents(self, scope: AgentScope) -> dict[str, AgentState]:
        return self.store.state.agents  # one process, one transaction at a time: all of them

    async def lock_queues(self, teams: Collection[str]) -> list[CaseState]:
        return [
            case
            for case in self.store.cases.values()
            if case.team in teams and case.assignee is None and case.status not in CLOSED_STATUSES
        ]

    async def standing_escalations(self, alert_ids: Sequence[str]) -> dict[str, EscalationRecord]:
        return {
            alert_id: self.store.escalations[alert_id]
            for alert_id in alert_ids
            if alert_id in self.store.escalations and alert_id not in self.store.undone
        }

    async def record_escalations(
        self, made: Mapping[str, EscalationRecord], undone: Mapping[str, str], now: datetime
    ) -> None:
        self.store.escalations.update(made)
        self.store.undone.update(undone)

    async def close_quiet_incidents(self, since: datetime) -> list[QuietIncident]:
        return self.store.close_quiet_incidents(since)

    def add_events(self, records: Iterable[tuple[str, ev.EventRecord]]) -> None:
        self.events.extend(records)

    def add_feed(self, entries: Iterable[FeedEntry]) -> None:
        self.feed.extend(entries)

    async def live_leases(self, case_ids: Collection[str]) -> dict[str, str]:
        return {
            case_id: self.store.leases[case_id]
            for case_id in case_ids
            if case_id in self.store.leases
        }

    async def hold_echoes(self, echoes: Sequence[LeaseEcho]) -> None:
        self.held_echoes.extend(echoes)
