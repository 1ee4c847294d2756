"""The router's use case: a batch of canonical messages in, case changes and events out.

One transaction per batch holds the case changes, the outbox rows and the processed-message
markers, so a redelivered batch changes nothing and a crash loses nothing.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import decode_event, encode_event
from casewire_common.kafka import DeadLetters
from casewire_common.messages import CanonicalMessage
from casewire_common.outbox import OutboxRelay, add_to_outbox
from casewire_common.pg import Database
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ValidationError

from casewire_router.adapters import repository
from casewire_router.adapters.case_store import drain_teams
from casewire_router.adapters.escalations import ALERT_KINDS, Alert, apply_alerts
from casewire_router.domain.routing import BatchOutcome, Router

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
            "Incident events: an incident opened on a crisis-topic burst, or cases added to it.",
            ["kind"],
            registry=registry,
        )
        self.escalations = Counter(
            "casewire_router_escalations_total",
            "Cases escalated on an SLA alert by the rules file's escalation section.",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "casewire_router_batch_seconds",
            "Time to apply one batch of messages (one transaction).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )


class RoutingService:
    def __init__(
        self,
        database: Database,
        router: Router,
        dead_letters: DeadLetters,
        relay: OutboxRelay,
        metrics: RouterMetrics,
    ) -> None:
        self._database = database
        self.router = router
        self._dead_letters = dead_letters
        self._relay = relay
        self._metrics = metrics

    async def handle_records(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Apply a batch of Kafka records; unreadable or unprocessable ones are dead-lettered."""
        parsed: list[tuple[ConsumerRecord[bytes, bytes], CanonicalMessage]] = []
        rejected: list[tuple[ConsumerRecord[bytes, bytes], str, str]] = []
        for record in records:
            try:
                parsed.append((record, CanonicalMessage.model_validate_json(record.value or b"")))
            except ValidationError as error:
                rejected.append((record, "invalid_message", _summary(error)))
        if rejected:
            await self._dead_letters.send_many(rejected)
        if not parsed:
            return
        started = time.perf_counter()
        try:
            await self._apply([message for _, message in parsed])
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            # One bad message must not block its partition: find it by applying one at a time.
            log.exception("batch failed; retrying message by message", size=len(parsed))
            for record, message in parsed:
                try:
                    await self._apply([message])
                except TRANSIENT_ERRORS:
                    raise
                except Exception as error:
                    await self._dead_letters.send(record, "processing_failed", repr(error))
        self._metrics.batch_seconds.observe(time.perf_counter() - started)

    async def _apply(self, messages: Sequence[CanonicalMessage]) -> None:
        now = datetime.now(UTC)
        async with self._database.pool.acquire() as connection, connection.transaction():
            fresh = await repository.claim_new(connection, messages)
            self._metrics.duplicates.inc(len(messages) - len(fresh))
            if not fresh:
                return
            readings = self.router.read_customer_messages(fresh)  # once for locks and routing
            state = await repository.load_batch_state(
                connection,
                fresh,
                self.router,
                self.router.windows,
                now,
                readings,
            )
            outcome = self.router.route_batch(
                fresh, state, new_id=lambda: str(uuid.uuid4()), now=now, readings=readings
            )
            # The events are encoded while PostgreSQL applies the case and message writes
            # (the event loop otherwise sat idle a third of the time, waiting for it).
            saving = asyncio.create_task(repository.save_outcome(connection, outcome, now))
            try:
                records = await event_records(outcome, now)
            except BaseException:
                saving.cancel()
                await asyncio.wait([saving])  # never leave the writes running on the connection
                raise
            await saving
            await add_to_outbox(connection, repository.SCHEMA, records)
        self._relay.wake()
        self._count(fresh, outcome)

    async def handle_alerts(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Escalate cases on SLA warnings and breaches (the rules file's `escalation`); the
        other SLA events (the clock audit trail) are not the router's concern."""
        alerts: list[Alert] = []
        rejected: list[tuple[ConsumerRecord[bytes, bytes], str, str]] = []
        for record in records:
            try:
                event = decode_event(record.headers, record.value or b"", record.key)
                if event.type in ALERT_KINDS:
                    data = ev.SlaAlertData.model_validate(event.data)
                    alerts.append(Alert(event.id, ALERT_KINDS[event.type], data))
            except ValidationError as error:
                rejected.append((record, "invalid_sla_alert", _summary(error)))
            except ValueError as error:
                rejected.append((record, "not_a_cloudevent", str(error)))
        if rejected:
            await self._dead_letters.send_many(rejected)
        if not alerts:
            return
        now = datetime.now(UTC)
        async with self._database.pool.acquire() as connection, connection.transaction():
            escalations = await apply_alerts(connection, alerts, self.router, now)
            await repository.save_outcome(connection, escalations.outcome, now)
            records = await event_records(escalations.outcome, now)
            if escalations.teams_to_drain:
                # Read after the escalations are written: the queues as they now are.
                drained = await drain_teams(connection, escalations.teams_to_drain, now)
                await repository.save_outcome(connection, drained, now)
                records += await event_records(drained, now)
            await add_to_outbox(connection, repository.SCHEMA, records)
        self._relay.wake()
        self._metrics.escalations.inc(escalations.escalated)

    def _count(self, fresh: Sequence[CanonicalMessage], outcome: BatchOutcome) -> None:
        # Counted per batch, one increment per label set: the per-message cost adds up.
        directions = collections.Counter(message.direction for message in fresh)
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
        for direction, count in directions.items():
            self._metrics.messages.labels(direction).inc(count)
        for (team, priority), count in created.items():
            self._metrics.cases_created.labels(team, priority).inc(count)
        for team, count in assigned.items():
            self._metrics.assignments.labels(team).inc(count)


async def event_records(outcome: BatchOutcome, now: datetime) -> list[tuple[str, ev.EventRecord]]:
    """The batch's events as outbox records, yielding to the event loop every few events so
    that the batch's writes (another task on the same connection) go on meanwhile.

    An event's `time` is when its change happened: the sending time of the message that
    caused it (never later than `now`, whatever the platform's clock says), else `now`. A
    brand reply attached late (`attached_replies`) still dates its response by its sending.
    """
    caused_by = [*outcome.stored_messages, *outcome.attached_replies]
    sent_at = {message.id: min(message.sent_at, now) for message, _ in caused_by}
    happened: list[tuple[str, str, datetime, BaseModel]] = [
        (event.type, event.case_id, sent_at.get(event.data.message_id or "", now), event.data)
        for event in outcome.events
    ]
    happened += [
        (change.event_type, change.data.incident_id, now, change.data)
        for change in outcome.incidents
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


def _summary(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '(body)'}: {item['msg']}"
        for item in error.errors()[:5]
    )
