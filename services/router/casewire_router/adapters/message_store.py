"""The message path's store in PostgreSQL: each transaction a unit of work
(`casewire_common.unit_of_work`) over the SQL of `repository`, `escalations` and
`case_store`; the outbox relay is woken once a transaction that queued events committed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from casewire_common import events as ev
from casewire_common.outbox import OutboxRelay
from casewire_common.pg import Connection, Database
from casewire_common.unit_of_work import UnitOfWork

from casewire_router.adapters import case_feed, case_store, desk_store, escalations, repository
from casewire_router.domain.assignment import AgentScope, AgentState
from casewire_router.domain.batch import BatchState, MessageReading, QuietIncident
from casewire_router.domain.case import CaseState
from casewire_router.domain.deliveries import Routable
from casewire_router.domain.desk import FeedEntry
from casewire_router.domain.escalation import Alert, EscalationRecord, alert_key
from casewire_router.domain.leases import LeaseEcho
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.routing import CaseRouter


class PostgresMessageTransaction:
    """One unit of work on one pooled connection."""

    def __init__(self, work: UnitOfWork, feed: list[FeedEntry]) -> None:
        self._work = work
        self._connection: Connection = work.connection
        self._feed = feed

    @property
    def duplicates(self) -> int:
        return self._work.duplicates

    async def claim_new(self, messages: Sequence[Routable]) -> list[Routable]:
        return await repository.claim_new(self._work, messages)

    async def load_state(
        self,
        messages: Sequence[Routable],
        case_router: CaseRouter,
        now: datetime,
        readings: Mapping[str, MessageReading],
    ) -> BatchState:
        return await repository.load_batch_state(
            self._connection, messages, case_router, case_router.windows, now, readings
        )

    async def save(self, outcome: RoutingOutcome, now: datetime) -> None:
        await repository.save_outcome(self._connection, outcome, now)

    async def claim_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        return await self._work.claim(alerts, alert_key)

    async def lock_cases(self, case_ids: Collection[str]) -> dict[str, CaseState]:
        return await escalations.lock_cases(self._connection, case_ids)

    async def lock_agents(self, scope: AgentScope) -> dict[str, AgentState]:
        return await repository.lock_agents(self._connection, scope)

    async def lock_queues(self, teams: Collection[str]) -> list[CaseState]:
        return await case_store.lock_queues(self._connection, teams)

    async def standing_escalations(self, alert_ids: Sequence[str]) -> dict[str, EscalationRecord]:
        return await escalations.standing_escalations(self._connection, list(alert_ids))

    async def record_escalations(
        self, made: Mapping[str, EscalationRecord], undone: Mapping[str, str], now: datetime
    ) -> None:
        await escalations.record_escalations(self._connection, dict(made), dict(undone), now)

    async def close_quiet_incidents(self, since: datetime) -> list[QuietIncident]:
        return await repository.close_quiet_incidents(self._connection, since)

    def add_events(self, records: Iterable[tuple[str, ev.EventRecord]]) -> None:
        self._work.add_events(records)

    def add_feed(self, entries: Iterable[FeedEntry]) -> None:
        self._feed.extend(entries)

    async def live_leases(self, case_ids: Collection[str]) -> dict[str, str]:
        return await desk_store.live_leases(self._connection, case_ids)

    async def hold_echoes(self, echoes: Sequence[LeaseEcho]) -> None:
        await desk_store.hold_echoes(self._connection, echoes)


class PostgresMessageStore:
    """`MessageStore` in PostgreSQL: a transaction is a unit of work on a pooled connection."""

    def __init__(self, database: Database, relay: OutboxRelay) -> None:
        self._database = database
        self._relay = relay

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresMessageTransaction]:
        async with case_feed.unit_with_feed(self._database) as (work, feed):
            yield PostgresMessageTransaction(work, feed)
        if work.events:
            self._relay.wake()
