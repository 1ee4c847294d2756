"""PostgreSQL reads and writes of the case API: cases, their queue, messages and agents.

Lock order, shared with the message path (which locks its cases, then the agents they can
reach): cases first, in id order and in one statement, then agents in id order. A transaction that
needs a case and the queues it may drain locks them together, so two transactions never
wait on each other in a circle.

`PostgresCaseStore` is the case API's `CaseStore` (`case_service`) over these functions: each
transaction a unit of work (`casewire_common.unit_of_work`); the outbox relay is woken once a
transaction that queued events committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from casewire_common import events as ev
from casewire_common.events import RoutingDecision
from casewire_common.messages import CanonicalMessage
from casewire_common.outbox import OutboxRelay
from casewire_common.pg import Connection, Database
from casewire_common.unit_of_work import UnitOfWork

from casewire_router.adapters import case_feed, desk_store, repository
from casewire_router.adapters.repository import SCHEMA, case_columns
from casewire_router.domain.assignment import AgentScope, AgentState
from casewire_router.domain.case import CaseState
from casewire_router.domain.deliveries import processing_key
from casewire_router.domain.desk import FeedEntry
from casewire_router.domain.leases import Lease, LeaseEcho
from casewire_router.domain.outcome import RoutingOutcome

_SELECT_CASES = f"SELECT {case_columns()}, decision FROM {SCHEMA}.cases"
WAITING = "assignee IS NULL AND status NOT IN ('resolved', 'no_action')"


@dataclass(frozen=True)
class StoredMessage:
    id: str
    direction: str
    author_id: str
    platform_message_id: str
    text: str
    language: str | None
    sent_at: datetime
    received_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    bot_phase: bool = False  # sent while a chatbot answered (its transcript)


async def lock_case(connection: Connection, case_id: str) -> CaseState | None:
    row = await connection.fetchrow(f"{_SELECT_CASES} WHERE id = $1 FOR UPDATE", case_id)
    return None if row is None else _full_case(row)


async def lock_case_and_queues(
    connection: Connection, case_id: str
) -> tuple[CaseState, list[CaseState]] | None:
    """A case and the waiting cases its owner's place could go to (its team's queue and those
    of its owner's other teams), locked together in id order; None: no such case."""
    while True:
        seen = await connection.fetchrow(
            f"SELECT c.team, c.assignee, a.teams FROM {SCHEMA}.cases c"
            f" LEFT JOIN {SCHEMA}.agents a ON a.id = c.assignee WHERE c.id = $1",
            case_id,
        )
        if seen is None:
            return None
        teams = [seen["team"], *(seen["teams"] or [])]
        rows = await connection.fetch(
            f"{_SELECT_CASES} WHERE id = $1 OR (team = ANY($2::text[]) AND {WAITING})"
            " ORDER BY id FOR UPDATE",
            case_id,
            teams,
        )
        cases = {str(row["id"]): _full_case(row) for row in rows}
        case = cases.pop(case_id, None)
        if case is None:
            return None
        if (case.team, case.assignee) == (seen["team"], seen["assignee"]):
            return case, list(cases.values())
        # It changed team or owner meanwhile: lock the queues that now matter.


async def lock_queues(connection: Connection, teams: Collection[str] | None) -> list[CaseState]:
    """The waiting cases of these teams (None: of every team), locked in id order; the drain
    order is the domain's (`queue_order`)."""
    rows = await connection.fetch(
        f"{_SELECT_CASES} WHERE ($1::text[] IS NULL OR team = ANY($1::text[])) AND {WAITING}"
        " ORDER BY id FOR UPDATE",
        None if teams is None else list(teams),
    )
    return [_full_case(row) for row in rows]


async def team_queue(connection: Connection, team: str) -> list[CaseState]:
    rows = await connection.fetch(f"{_SELECT_CASES} WHERE team = $1 AND {WAITING}", team)
    return [_full_case(row) for row in rows]


async def find_case(connection: Connection, case_id: str) -> CaseState | None:
    row = await connection.fetchrow(f"{_SELECT_CASES} WHERE id = $1", case_id)
    return None if row is None else _full_case(row)


async def case_messages(connection: Connection, case_id: str) -> list[StoredMessage]:
    rows = await connection.fetch(
        "SELECT id::text, direction, author_id, platform_message_id, text, language, sent_at,"
        " received_at, edited_at, deleted_at, bot_phase"
        f" FROM {SCHEMA}.messages WHERE case_id = $1"
        " ORDER BY sent_at, received_at, id",
        case_id,
    )
    return [StoredMessage(**dict(row)) for row in rows]


async def read_agents(connection: Connection) -> list[AgentState]:
    rows = await connection.fetch(
        "SELECT id, teams, languages, capacity, online, load, last_assigned_at"
        f" FROM {SCHEMA}.agents ORDER BY id"
    )
    return [_agent(row) for row in rows]


async def agent_teams(connection: Connection, agent_id: str) -> list[str] | None:
    teams = await connection.fetchval(f"SELECT teams FROM {SCHEMA}.agents WHERE id = $1", agent_id)
    return None if teams is None else list(teams)


async def save(connection: Connection, outcome: RoutingOutcome) -> None:
    """Write what an action changed: cases, agents, replies recorded as messages and the saved
    replies they used."""
    if outcome.cases:
        await connection.executemany(
            f"UPDATE {SCHEMA}.cases SET status = $2, priority = $3, team = $4, assignee = $5,"
            " first_response_at = $6, resolved_at = $7, queued_at = $8, version = $9,"
            " updated_at = now() WHERE id = $1",
            [
                (
                    case.id,
                    case.status,
                    case.priority,
                    case.team,
                    case.assignee,
                    case.first_response_at,
                    case.resolved_at,
                    case.queued_at,
                    case.version,
                )
                for case in outcome.cases.values()
            ],
        )
    if outcome.agents:
        await connection.executemany(
            f"UPDATE {SCHEMA}.agents SET teams = $2, languages = $3, capacity = $4, online = $5,"
            " load = $6, last_assigned_at = $7 WHERE id = $1",
            [
                (
                    agent.id,
                    agent.teams,
                    agent.languages,
                    agent.capacity,
                    agent.online,
                    agent.load,
                    agent.last_assigned_at,
                )
                for agent in outcome.agents.values()
            ],
        )
    if outcome.stored_messages:
        await repository.store_messages(connection, outcome.stored_messages)
    if outcome.attached_replies:
        # A reply whose platform echo was kept without a case: it joins the case it answers.
        await connection.executemany(
            f"UPDATE {SCHEMA}.messages SET case_id = $2 WHERE id = $1",
            [(reply.id, case_id) for reply, case_id in outcome.attached_replies],
        )
    # The uses of saved replies: replies recorded naming one, counted by when they were sent.
    sent_at = {
        message.id: message.sent_at
        for message, _ in [*outcome.stored_messages, *outcome.attached_replies]
    }
    uses = [
        (message_id, event.case_id, event.data.saved_reply_id, sent_at[message_id])
        for event in outcome.events
        if event.type == ev.CASE_RESPONDED
        and event.data.saved_reply_id is not None
        and (message_id := event.data.message_id) is not None
    ]
    if uses:
        await connection.executemany(
            f"INSERT INTO {SCHEMA}.saved_reply_uses (message_id, case_id, saved_reply_id, used_at)"
            " VALUES ($1, $2, $3, $4)",
            uses,
        )


async def insert_agent(connection: Connection, agent: AgentState) -> bool:
    """Add a new agent; False when another transaction added the same id first."""
    inserted = await connection.fetchval(
        f"INSERT INTO {SCHEMA}.agents (id, teams, languages, capacity, online)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING id",
        agent.id,
        agent.teams,
        agent.languages,
        agent.capacity,
        agent.online,
    )
    return inserted is not None


class PostgresCaseTransaction:
    """One unit of work on one pooled connection."""

    def __init__(self, work: UnitOfWork, feed: list[FeedEntry]) -> None:
        self._work = work
        self._connection: Connection = work.connection
        self._feed = feed

    async def lock_case(self, case_id: str) -> CaseState | None:
        return await lock_case(self._connection, case_id)

    async def lock_case_and_queues(self, case_id: str) -> tuple[CaseState, list[CaseState]] | None:
        return await lock_case_and_queues(self._connection, case_id)

    async def lock_queues(self, teams: Collection[str] | None) -> list[CaseState]:
        return await lock_queues(self._connection, teams)

    async def lock_agents(self, scope: AgentScope) -> dict[str, AgentState]:
        return await repository.lock_agents(self._connection, scope)

    async def agent_teams(self, agent_id: str) -> list[str] | None:
        return await agent_teams(self._connection, agent_id)

    async def insert_agent(self, agent: AgentState) -> bool:
        return await insert_agent(self._connection, agent)

    async def save(self, outcome: RoutingOutcome) -> None:
        await save(self._connection, outcome)

    def add_events(self, records: Iterable[tuple[str, ev.EventRecord]]) -> None:
        self._work.add_events(records)

    def add_feed(self, entries: Iterable[FeedEntry]) -> None:
        self._feed.extend(entries)

    async def live_lease(self, case_id: str) -> Lease | None:
        return await desk_store.live_lease(self._connection, case_id)

    async def claim_reply(self, reply: CanonicalMessage) -> bool:
        return bool(await self._work.claim([reply], processing_key))

    async def stored_message(self, message_id: str) -> tuple[str | None, CanonicalMessage] | None:
        return await desk_store.stored_message(self._connection, message_id)

    async def own_echo(self, message_id: str) -> LeaseEcho | None:
        return await desk_store.own_echo(self._connection, message_id)

    async def lock_returnable(self, cutoff: datetime) -> list[CaseState]:
        return await desk_store.lock_returnable(self._connection, cutoff)

    async def offline_since(self, agent_ids: Collection[str]) -> dict[str, datetime]:
        return await desk_store.offline_since(self._connection, agent_ids)

    async def due_echoes(self) -> list[tuple[LeaseEcho, CaseState]]:
        return await desk_store.due_echoes(self._connection)


class PostgresCaseStore:
    """`CaseStore` in PostgreSQL: a transaction is a unit of work on a pooled connection (read
    committed, its outbox rows written at its end); the reads take no locks."""

    def __init__(self, database: Database, relay: OutboxRelay) -> None:
        self._database = database
        self._relay = relay

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresCaseTransaction]:
        async with case_feed.unit_with_feed(self._database) as (work, feed):
            yield PostgresCaseTransaction(work, feed)
        if work.events:
            self._relay.wake()

    async def live_lease(self, case_id: str) -> Lease | None:
        async with self._database.pool.acquire() as connection:
            return await desk_store.live_lease(connection, case_id)

    async def team_queue(self, team: str) -> list[CaseState]:
        async with self._database.pool.acquire() as connection:
            return await team_queue(connection, team)

    async def case_detail(self, case_id: str) -> tuple[CaseState, list[StoredMessage]] | None:
        async with (
            self._database.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            case = await find_case(connection, case_id)
            if case is None:
                return None
            return case, await case_messages(connection, case_id)

    async def read_agents(self) -> list[AgentState]:
        async with self._database.pool.acquire() as connection:
            return await read_agents(connection)

    async def agent_teams(self, agent_id: str) -> list[str] | None:
        async with self._database.pool.acquire() as connection:
            return await agent_teams(connection, agent_id)


def _full_case(row: asyncpg.Record) -> CaseState:
    case = repository.read_case(row)
    if row["decision"] is not None:
        case.decision = RoutingDecision.model_validate_json(row["decision"])
    return case


def _agent(row: asyncpg.Record) -> AgentState:
    return AgentState(
        id=row["id"],
        teams=list(row["teams"]),
        languages=list(row["languages"]),
        capacity=row["capacity"],
        online=row["online"],
        load=row["load"],
        last_assigned_at=row["last_assigned_at"],
    )
