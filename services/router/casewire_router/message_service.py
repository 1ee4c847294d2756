"""The message-routing use case: a batch of canonical messages in, case changes and events
out; and SLA alerts in, escalations out.

One transaction per batch (`MessageStore.transaction`; in PostgreSQL a unit of work,
`casewire_common.unit_of_work`) holds the case changes, the outbox rows and the
processed-message markers, so a redelivered batch changes nothing and a crash loses nothing.
The store is a port: `adapters.message_store.PostgresMessageStore` in the service,
`adapters.memory.InMemoryMessageStore` in unit tests and the offline `route` tool.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, get_args

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import Priority, decode_event, encode_event
from casewire_common.messages import CanonicalMessage, Direction, Platform
from casewire_common.metrics import precreate
from casewire_common.thread_control import THREAD_CONTROL_RECORD, ThreadControl
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ValidationError

from casewire_router.adapters.care_metrics import CareMetrics
from casewire_router.domain.assignment import AgentScope, AgentState
from casewire_router.domain.batch import BatchState, MessageReading, QuietIncident
from casewire_router.domain.case import CaseState
from casewire_router.domain.deliveries import Routable
from casewire_router.domain.desk import FeedEntry
from casewire_router.domain.escalation import (
    ALERT_KINDS,
    Alert,
    EscalationRecord,
    escalate_recorded,
    escalation_scope,
    undo_escalation,
)
from casewire_router.domain.handover import NO_MARKS, DeliveryMarks
from casewire_router.domain.incidents import close_incident
from casewire_router.domain.leases import LeaseEcho, ReplySource, echoes_to_hold
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.queue import drain as drain_queues
from casewire_router.domain.routing import CaseRouter
from casewire_router.domain.sentiment import SentimentLabel

log = structlog.get_logger(__name__)

EVENT_SOURCE = "casewire/router"
_EVENTS_BETWEEN_YIELDS = 32  # about half a millisecond of encoding

# Errors that mean "PostgreSQL is not reachable right now": retry the batch, never dead-letter.
TRANSIENT_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
# The reasons MessageService dead-letters each topic's records for (their series start at 0).
DEAD_LETTER_REASONS = {
    topics.MESSAGES: (
        "invalid_message",
        "invalid_thread_control",
        "unknown_record",
        "processing_failed",
    ),
    topics.SLA_ALERTS: (
        "invalid_sla_alert",
        "not_a_cloudevent",
        "processing_failed",
        "unknown_case",
    ),
}


Rejected = tuple[ConsumerRecord[bytes, bytes], str, str]  # record, reason, error


class MessageTransaction(Protocol):
    """One transaction of the message path: what it claims, writes and queues commits
    together, or nothing does."""

    @property
    def duplicates(self) -> int:
        """How many inputs claimed so far were processed before (redelivery)."""
        ...

    async def claim_new(self, messages: Sequence[Routable]) -> list[Routable]:
        """Mark the messages (and thread-control records) processed; returns those not
        processed before, in order."""
        ...

    async def load_state(
        self,
        messages: Sequence[Routable],
        case_router: CaseRouter,
        now: datetime,
        readings: Mapping[str, MessageReading],
    ) -> BatchState:
        """Lock and load what routing the messages (and thread-control records) may read or
        change."""
        ...

    async def save(self, outcome: RoutingOutcome, now: datetime) -> None:
        """Write what routing changed."""
        ...

    async def claim_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Mark the alerts processed; returns those not processed before, in order."""
        ...

    async def lock_cases(self, case_ids: Collection[str]) -> dict[str, CaseState]:
        """The cases with these ids that this router holds, locked."""
        ...

    async def lock_agents(self, scope: AgentScope) -> dict[str, AgentState]:
        """The agents of `scope`, locked."""
        ...

    async def lock_queues(self, teams: Collection[str]) -> list[CaseState]:
        """The waiting cases of these teams, locked."""
        ...

    async def standing_escalations(self, alert_ids: Sequence[str]) -> dict[str, EscalationRecord]:
        """The escalations these alerts caused that no retraction has undone yet."""
        ...

    async def record_escalations(
        self, made: Mapping[str, EscalationRecord], undone: Mapping[str, str], now: datetime
    ) -> None:
        """Remember the escalations made (with what they changed) and those undone (by which
        retraction)."""
        ...

    async def close_quiet_incidents(self, since: datetime) -> list[QuietIncident]:
        """Close the open incidents last seen before `since`."""
        ...

    def add_events(self, records: Iterable[tuple[str, ev.EventRecord]]) -> None:
        """Queue events: published once the transaction commits."""
        ...

    def add_feed(self, entries: Iterable[FeedEntry]) -> None:
        """Queue entries of the desks' feed: written with the transaction."""
        ...

    async def live_leases(self, case_ids: Collection[str]) -> dict[str, str]:
        """The holders of the live reply leases on these cases, by case id."""
        ...

    async def hold_echoes(self, echoes: Sequence[LeaseEcho]) -> None:
        """Keep echoes that came during someone's lease for their author to claim."""
        ...


class Publishing(Protocol):
    """A transaction that publishes: its outbox and the desks' feed."""

    def add_events(self, records: Iterable[tuple[str, ev.EventRecord]]) -> None: ...

    def add_feed(self, entries: Iterable[FeedEntry]) -> None: ...


@dataclass
class Escalations:
    """What a batch of alerts did: the changes to save and publish, in order."""

    outcomes: list[RoutingOutcome] = field(default_factory=list)
    escalated: int = 0
    # Retractions by what became of the escalation: undone, case_changed, no_escalation.
    retractions: collections.Counter[str] = field(default_factory=collections.Counter)
    unknown_cases: list[Alert] = field(default_factory=list)


class MessageStore(Protocol):
    """Where the message path keeps cases, agents, threads, topic hits and incidents."""

    def transaction(self) -> AbstractAsyncContextManager[MessageTransaction]: ...


class DeadLetterTopic(Protocol):
    """Where records that cannot be read or processed go (`<topic>.dlq`)."""

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str, error: str) -> None: ...

    async def send_many(self, rejected: Sequence[Rejected]) -> None: ...


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "casewire_router_messages_total",
            "Canonical messages applied to cases, by direction.",
            ["direction"],
            registry=registry,
        )
        self.duplicates = Counter(
            "casewire_router_duplicates_total",
            "Messages skipped because they were processed before (redelivery).",
            registry=registry,
        )
        self.cases_created = Counter(
            "casewire_router_cases_created_total",
            "Cases opened, by team and priority.",
            ["team", "priority"],
            registry=registry,
        )
        self.assignments = Counter(
            "casewire_router_assignments_total",
            "Cases given to an agent, by team.",
            ["team"],
            registry=registry,
        )
        self.incidents = Counter(
            "casewire_router_incidents_total",
            "Incident events: an incident opened on a crisis-topic burst, cases added to it, or"
            " closed after a quiet window.",
            ["kind"],
            registry=registry,
        )
        self.escalations = Counter(
            "casewire_router_escalations_total",
            "Cases escalated on an SLA alert by the rules file's escalation section.",
            registry=registry,
        )
        self.retractions = Counter(
            "casewire_router_breach_retractions_total",
            "SLA breach retractions read, by what became of the breach's escalation: undone,"
            " case_changed (kept: something else changed the case since) or no_escalation.",
            ["outcome"],
            registry=registry,
        )
        self.message_updates = Counter(
            "casewire_router_message_updates_total",
            "Edits and deletes of messages, by kind and outcome: published on the message's case"
            " (casewire.case.message_updated), or no_case (a brand message kept without a case,"
            " or a message the router never got).",
            ["kind", "outcome"],
            registry=registry,
        )
        self.thread_controls = Counter(
            "casewire_router_thread_controls_total",
            "Thread-control records (Meta's handover protocol) read, by action and what they"
            " did: human (handed to humans), bot (to a chatbot), request (changes nothing),"
            " not_followed (CASEWIRE_ROUTER_HANDOVER_APP_IDS unset).",
            ["action", "outcome"],
            registry=registry,
        )
        self.bot_phase_messages = Counter(
            "casewire_router_bot_phase_messages_total",
            "Messages sent while a chatbot answered their conversation (the bot's transcript:"
            " no case, no clock, never a response), by direction.",
            ["direction"],
            registry=registry,
        )
        self.message_sentiment = Counter(
            "casewire_router_message_sentiment_total",
            "Customer messages applied to cases, by the team of their case, platform and"
            " sentiment (negative, neutral, positive).",
            ["team", "platform", "sentiment"],
            registry=registry,
        )
        self.collisions = Counter(
            "casewire_router_collisions_total",
            "Replies that collided (casewire.case.collision): made by someone other than the"
            " holder of the case's live reply lease, or with no lease by someone other than its"
            " owner; by team and by how the reply was seen: api (recorded through the API) or"
            " platform (an echo its lease holder did not record as theirs).",
            ["team", "source"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "casewire_router_batch_seconds",
            "Time to apply one batch of messages (one transaction).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.care = CareMetrics(registry)
        precreate(self.messages, [(direction,) for direction in get_args(Direction)])
        precreate(self.bot_phase_messages, [(direction,) for direction in get_args(Direction)])
        precreate(
            self.thread_controls,
            itertools.product(
                ("pass", "take", "request"), ("human", "bot", "request", "not_followed")
            ),
        )
        precreate(self.incidents, [("opened",), ("updated",), ("closed",)])
        precreate(self.retractions, [("undone",), ("case_changed",), ("no_escalation",)])
        precreate(
            self.message_updates,
            itertools.product(("edit", "delete"), ("published", "no_case")),
        )

    def precreate_teams(self, teams: Iterable[str]) -> None:
        """Start the series of the rules file's teams at 0 (at start and on each reload)."""
        teams = list(teams)
        precreate(self.cases_created, itertools.product(teams, get_args(Priority)))
        precreate(self.assignments, [(team,) for team in teams])
        precreate(self.collisions, itertools.product(teams, get_args(ReplySource)))
        precreate(
            self.message_sentiment,
            itertools.product(teams, get_args(Platform), get_args(SentimentLabel)),
        )
        self.care.use_teams(teams)

    def count_collisions(self, outcome: RoutingOutcome) -> None:
        """Count the outcome's collisions by team and source."""
        for event in outcome.events:
            if event.type == ev.CASE_COLLISION and event.data.reply_source is not None:
                self.collisions.labels(event.data.case.team, event.data.reply_source).inc()


class MessageService:
    """Routes batches of canonical messages into cases, escalates cases on SLA alerts, and
    closes quiet incidents, each in one transaction of the store."""

    def __init__(
        self,
        store: MessageStore,
        case_router: CaseRouter,
        dead_letters: DeadLetterTopic,
        metrics: RouterMetrics,
        *,
        echo_window: timedelta = timedelta(seconds=30),
    ) -> None:
        self._store = store
        self.case_router = case_router  # replaced when the rules file changes
        self._dead_letters = dead_letters
        self._metrics = metrics
        # How long a lease holder has to record an echo as theirs (`domain.leases`).
        self._echo_window = echo_window

    async def handle_records(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Apply a batch of Kafka records; unreadable or unprocessable ones are dead-lettered.
        A record is a canonical message, or, with the header `casewire-record:
        thread_control`, a thread-control record (docs/handover.md)."""
        parsed: list[tuple[ConsumerRecord[bytes, bytes], Routable]] = []
        marks: dict[str, DeliveryMarks] = {}
        rejected: list[Rejected] = []
        for record in records:
            headers = dict(record.headers or ())
            kind = headers.get(topics.RECORD_HEADER)
            try:
                if kind is None:
                    message = CanonicalMessage.model_validate_json(record.value or b"")
                    parsed.append((record, message))
                    delivered = _marks(headers)
                    if delivered != NO_MARKS:
                        marks[message.id] = delivered
                elif kind == _THREAD_CONTROL:
                    parsed.append((record, ThreadControl.model_validate_json(record.value or b"")))
                else:
                    detail = f"{topics.RECORD_HEADER} {kind.decode(errors='replace')!r}"
                    rejected.append((record, "unknown_record", detail[:200]))
            except ValidationError as error:
                reason = "invalid_message" if kind is None else "invalid_thread_control"
                rejected.append((record, reason, _summary(error)))
        if rejected:
            await self._dead_letters.send_many(rejected)
        if not parsed:
            return
        started = time.perf_counter()
        try:
            await self._apply([item for _, item in parsed], marks)
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            # One bad message must not block its partition: find it by applying one at a time.
            log.exception("batch failed; retrying message by message", size=len(parsed))
            for record, item in parsed:
                try:
                    await self._apply([item], marks)
                except TRANSIENT_ERRORS:
                    raise
                except Exception as error:
                    await self._dead_letters.send(record, "processing_failed", repr(error))
        self._metrics.batch_seconds.observe(time.perf_counter() - started)

    async def _apply(
        self, items: Sequence[Routable], marks: Mapping[str, DeliveryMarks] | None = None
    ) -> None:
        now = datetime.now(UTC)
        case_router = self.case_router  # one routing for the whole batch, whatever reloads
        async with self._store.transaction() as work:
            fresh = await work.claim_new(items)
            self._metrics.duplicates.inc(work.duplicates)
            if not fresh:
                return
            messages = [item for item in fresh if isinstance(item, CanonicalMessage)]
            readings = case_router.read_customer_messages(messages)  # once for locks, routing
            state = await work.load_state(fresh, case_router, now, readings)
            outcome = case_router.route_batch(
                fresh,
                state,
                new_id=lambda: str(uuid.uuid4()),
                now=now,
                readings=readings,
                marks=marks,
            )
            await self._hold_echoes(work, outcome, now)
            # The events are encoded while PostgreSQL applies the case and message writes
            # (the event loop otherwise sat idle a third of the time, waiting for it).
            saving = asyncio.create_task(work.save(outcome, now))
            try:
                records = await event_records(outcome, now)
            except BaseException:
                saving.cancel()
                await asyncio.wait([saving])  # never leave the writes running on the connection
                raise
            await saving
            queue_events(work, outcome, records)
        self._count(messages, outcome, readings)

    async def _hold_echoes(
        self, work: MessageTransaction, outcome: RoutingOutcome, now: datetime
    ) -> None:
        """Brand replies seen on a platform that joined a case while someone held its reply
        lease wait for the holder to claim them (`domain.leases`): one read of the leases,
        only for a batch with such replies. A chatbot's replies (its transcript) are no
        person's: never a collision."""
        echoes = [
            (message, case_id)
            for message, case_id in outcome.stored_messages
            if case_id is not None
            and message.direction == "outbound"
            and message.id not in outcome.bot_phase
        ]
        if not echoes:
            return
        holders = await work.live_leases({case_id for _, case_id in echoes})
        held = echoes_to_hold(echoes, holders, now + self._echo_window)
        if held:
            await work.hold_echoes(held)

    async def handle_alerts(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Escalate cases on SLA warnings and breaches (the rules file's `escalation`) and undo
        an escalation whose breach is retracted; the other SLA events (the clock audit trail)
        are not the router's concern. An alert that cannot be applied is dead-lettered, the
        others applied: only PostgreSQL being away makes the batch wait and retry."""
        alerts: list[tuple[ConsumerRecord[bytes, bytes], Alert]] = []
        rejected: list[Rejected] = []
        for record in records:
            try:
                event = decode_event(record.headers, record.value or b"", record.key)
                if event.type in ALERT_KINDS:
                    data = ev.SlaAlertData.model_validate(event.data)
                    if event.type == ev.SLA_BREACH_RETRACTED and data.retracted_alert_id is None:
                        rejected.append(
                            (record, "invalid_sla_alert", "retracted_alert_id: missing")
                        )
                        continue
                    alerts.append((record, Alert(event.id, ALERT_KINDS[event.type], data)))
            except ValidationError as error:
                rejected.append((record, "invalid_sla_alert", _summary(error)))
            except ValueError as error:
                rejected.append((record, "not_a_cloudevent", str(error)))
        if rejected:
            await self._dead_letters.send_many(rejected)
        if not alerts:
            return
        try:
            unknown = await self._apply_alerts(alerts)
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            # One bad alert must not block its partition for ever: find it alone.
            log.exception("alert batch failed; retrying alert by alert", size=len(alerts))
            unknown = []
            for one in alerts:
                try:
                    unknown += await self._apply_alerts([one])
                except TRANSIENT_ERRORS:
                    raise
                except Exception as error:
                    await self._dead_letters.send(one[0], "processing_failed", repr(error))
        if unknown:
            # Not marked processed: should this send fail, the redelivered batch sends again.
            await self._dead_letters.send_many(unknown)

    async def _apply_alerts(
        self, alerts: Sequence[tuple[ConsumerRecord[bytes, bytes], Alert]]
    ) -> list[Rejected]:
        """Apply alerts in one transaction; returns those about a case this router does not
        hold, as dead letters to send."""
        now = datetime.now(UTC)
        async with self._store.transaction() as work:
            escalations = await self._escalate(work, [alert for _, alert in alerts], now)
            for outcome in escalations.outcomes:
                queue_events(work, outcome, await event_records(outcome, now))
        self._metrics.escalations.inc(escalations.escalated)
        for outcome_name, count in escalations.retractions.items():
            self._metrics.retractions.labels(outcome_name).inc(count)
        record_of = {alert.event_id: record for record, alert in alerts}
        return [
            (record_of[alert.event_id], "unknown_case", f"no case {alert.data.case_id}")
            for alert in escalations.unknown_cases
        ]

    async def _escalate(
        self, work: MessageTransaction, alerts: Sequence[Alert], now: datetime
    ) -> Escalations:
        """Escalate (or undo escalations of) the cases the alerts are about, save the changes and
        record the escalations. The transaction claims the alerts about cases this router holds
        (after locking them), so a redelivered alert changes nothing and an alert about an
        unknown case stays unclaimed (it is dead-lettered, and sent again if that fails)."""
        result = Escalations()
        cases = await work.lock_cases({alert.data.case_id for alert in alerts})
        result.unknown_cases = [alert for alert in alerts if alert.data.case_id not in cases]
        known = [alert for alert in alerts if alert.data.case_id in cases]
        fresh = await work.claim_alerts(known)  # also the same alert twice in one batch
        if not fresh:
            return result
        standing = await work.standing_escalations(
            [a.data.retracted_alert_id for a in fresh if a.data.retracted_alert_id]
        )
        scope = escalation_scope(
            (cases[alert.data.case_id] for alert in fresh),
            standing.values(),
            self.case_router.rules.escalation,
        )
        agents = await work.lock_agents(scope)
        outcome = RoutingOutcome()
        made: dict[str, EscalationRecord] = {}
        undone: dict[str, str] = {}  # escalation's alert id -> the retraction's
        teams_to_drain: set[str] = set()
        for alert in fresh:
            case = cases[alert.data.case_id]
            if alert.kind == "retracted":
                escalation = standing.get(alert.data.retracted_alert_id or "")
                if (
                    escalation is None
                    or escalation.case_id != case.id
                    or escalation.alert_id in undone
                ):
                    result.retractions["no_escalation"] += 1
                    continue
                drain = undo_escalation(case, escalation, alert.event_id, agents, outcome, now)
                if drain is None:
                    result.retractions["case_changed"] += 1
                    log.info(
                        "escalation kept: the case changed after it",
                        case_id=case.id,
                        alert_id=escalation.alert_id,
                        escalated_at_version=escalation.case_version,
                        version=case.version,
                    )
                    continue
                result.retractions["undone"] += 1
                undone[escalation.alert_id] = alert.event_id
                teams_to_drain |= drain
                continue
            rule = self.case_router.rules.escalation_for(
                alert.kind, alert.data.clock, case.team, case.priority
            )
            if rule is None:
                continue
            drain, record = escalate_recorded(case, rule, alert.event_id, agents, outcome, now)
            teams_to_drain |= drain
            if record is not None:
                made[record.alert_id] = record
                standing[record.alert_id] = record  # a retraction later in the batch finds it
                result.escalated += 1
        await work.save(outcome, now)
        result.outcomes.append(outcome)
        if teams_to_drain:
            # Read after the escalations are written: the queues as they now are.
            waiting = await work.lock_queues(teams_to_drain)
            drained = RoutingOutcome()
            drain_queues(
                waiting, await work.lock_agents(AgentScope.of(teams_to_drain)), drained, now
            )
            await work.save(drained, now)
            result.outcomes.append(drained)
            # A case the drain gave an owner: that is part of its last escalation.
            last_escalation = {record.case_id: record for record in made.values()}
            for case_id, case in drained.cases.items():
                record = last_escalation.get(case_id)
                if record is not None and record.alert_id not in undone:
                    record.case_version = case.version
        await work.record_escalations(made, undone, now)
        return result

    async def close_quiet_incidents(self) -> int:
        """Close the incidents quiet for a whole incident window (`casewire.incident.closed`),
        on a timer: an incident ends when its window does, not when the next message comes.
        Returns how many it closed."""
        now = datetime.now(UTC)
        async with self._store.transaction() as work:
            quiet = await work.close_quiet_incidents(now - self.case_router.windows.incident)
            outcome = RoutingOutcome(incidents=[close_incident(incident) for incident in quiet])
            queue_events(work, outcome, await event_records(outcome, now))
        if quiet:
            self._metrics.incidents.labels("closed").inc(len(quiet))
        return len(quiet)

    def _count(
        self,
        fresh: Sequence[CanonicalMessage],
        outcome: RoutingOutcome,
        readings: Mapping[str, MessageReading],
    ) -> None:
        # Counted per batch, one increment per label set: the per-message cost adds up.
        directions = collections.Counter(message.direction for message in fresh)
        sentiments = collections.Counter(
            (
                outcome.cases[case_id].team,
                message.platform,
                readings[message.id].vocabulary.sentiment.label,
            )
            for message, case_id in outcome.stored_messages
            if case_id in outcome.cases and message.id in readings
        )
        for (team, platform, label), count in sentiments.items():
            self._metrics.message_sentiment.labels(team, platform, label).inc(count)
        created = collections.Counter(
            (event.data.case.team, event.data.case.priority)
            for event in outcome.events
            if event.type == ev.CASE_CREATED
        )
        assigned = collections.Counter(
            event.data.case.team for event in outcome.events if event.type == ev.CASE_ASSIGNED
        )
        for change in outcome.incidents:
            self._metrics.incidents.labels(change.event_type.rsplit(".", 1)[-1]).inc()
        if outcome.edits:
            updates = collections.Counter(message.event for message in outcome.edits)
            published = collections.Counter(
                "delete" if event.data.deleted else "edit"
                for event in outcome.events
                if event.type == ev.CASE_MESSAGE_UPDATED
            )
            for kind, count in updates.items():
                self._metrics.message_updates.labels(kind, "published").inc(published[kind])
                self._metrics.message_updates.labels(kind, "no_case").inc(count - published[kind])
        for direction, count in directions.items():
            self._metrics.messages.labels(direction).inc(count)
        if outcome.bot_phase:
            bot_phase = collections.Counter(
                message.direction for message in fresh if message.id in outcome.bot_phase
            )
            for direction, count in bot_phase.items():
                self._metrics.bot_phase_messages.labels(direction).inc(count)
        for (action, did), count in collections.Counter(outcome.thread_controls).items():
            self._metrics.thread_controls.labels(action, did).inc(count)
        for (team, priority), count in created.items():
            self._metrics.cases_created.labels(team, priority).inc(count)
        for team, count in assigned.items():
            self._metrics.assignments.labels(team).inc(count)
        self._metrics.care.record(outcome)


async def event_records(outcome: RoutingOutcome, now: datetime) -> list[tuple[str, ev.EventRecord]]:
    """The batch's events as outbox records, yielding to the event loop every few events so
    that the batch's writes (another task on the same connection) go on meanwhile.

    An event's `time` is when its change happened (never later than `now`, whatever the
    platform's clock says): the event's own instant if it has one (an edit's), else the
    sending time of the message that caused it, else `now`. A brand reply attached late
    (`attached_replies`) still dates its response by its sending.
    """
    caused_by = [*outcome.stored_messages, *outcome.attached_replies]
    sent_at = {message.id: min(message.sent_at, now) for message, _ in caused_by}
    happened: list[tuple[str, str, datetime, BaseModel]] = [
        (
            event.type,
            event.case_id,
            min(event.at, now) if event.at else sent_at.get(event.data.message_id or "", now),
            event.data,
        )
        for event in outcome.events
    ]
    happened += [
        (change.event_type, change.data.incident_id, now, change.data)
        for change in outcome.incidents
    ]
    happened += [
        (ev.AGENT_UPDATED, f"agent:{change.agent_id}", now, change)
        for change in outcome.agent_changes
    ]
    records = []
    for index, (event_type, subject, at, data) in enumerate(happened):
        if index % _EVENTS_BETWEEN_YIELDS == 0:
            await asyncio.sleep(0)
        record = encode_event(
            event_id=str(uuid.uuid4()),
            event_type=event_type,
            source=EVENT_SOURCE,
            subject=subject,
            time=at,
            data=data,
        )
        records.append((topics.CASE_EVENTS, record))
    return records


def feed_entries(
    outcome: RoutingOutcome, records: Sequence[tuple[str, ev.EventRecord]]
) -> list[FeedEntry]:
    """The desks' feed entries of an outcome's case events, each with its data as published
    but for the routing decision, the larger part of the routing events (a desk that wants
    it reads the case): `records` are what `event_records`
    made of the outcome (its case events first, in order)."""
    return [
        FeedEntry(
            change.case_id,
            change.type,
            change.after,
            change.before,
            record.value if change.data.decision is None else _without_decision(change.data),
        )
        for change, (_, record) in zip(outcome.events, records, strict=False)
    ]


def _without_decision(data: ev.CaseEventData) -> bytes:
    return data.__pydantic_serializer__.to_json(data, exclude={"decision"})


def queue_events(
    work: Publishing, outcome: RoutingOutcome, records: Sequence[tuple[str, ev.EventRecord]]
) -> None:
    """Queue an outcome's events for the outbox, and its case events for the desks' feed: the
    one way both the message path and the case API publish, so the desks see every change."""
    work.add_events(records)
    work.add_feed(feed_entries(outcome, records))


_THREAD_CONTROL = THREAD_CONTROL_RECORD.encode()


def _marks(headers: Mapping[str, bytes]) -> DeliveryMarks:
    """How ingest delivered a message, from its record's headers."""
    app_id = headers.get(topics.APP_ID_HEADER)
    return DeliveryMarks(
        standby=headers.get(topics.STANDBY_HEADER) == b"true",
        app_id=app_id.decode(errors="replace") if app_id else None,
    )


def _summary(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '(body)'}: {item['msg']}"
        for item in error.errors()[:5]
    )
