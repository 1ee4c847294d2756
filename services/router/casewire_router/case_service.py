"""The case API's use cases: each action is one transaction — lock, pure transition, save,
outbox, commit — then the outbox relay is woken. Deadlocks and serialization failures
(possible against the message path) retry the whole transaction."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
from casewire_common import events as ev
from casewire_common.events import CaseStatus
from casewire_common.outbox import OutboxRelay, add_to_outbox
from casewire_common.pg import Connection, Database

from casewire_router.adapters import case_store
from casewire_router.adapters.repository import SCHEMA, lock_agents
from casewire_router.domain import case_actions
from casewire_router.domain.assignment import AgentState
from casewire_router.domain.case import CaseState
from casewire_router.domain.case_actions import TransitionError, UnknownAgent
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.queue import drain, queue_order
from casewire_router.message_service import RouterMetrics, event_records

T = TypeVar("T")

ATTEMPTS = 5
RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
ONE_OPEN_CASE_PER_CONVERSATION = "cases_one_open_per_conversation"


class CaseNotFound(LookupError):
    """No case has this id (HTTP 404)."""


class _RaceLost(Exception):
    """Another transaction changed what this one read unlocked: start again."""


@dataclass
class ActionResult:
    """The case acted on, and the waiting cases the freed capacity went to."""

    case: CaseState
    assigned_from_queue: list[CaseState] = field(default_factory=list)


@dataclass
class AgentResult:
    agent: AgentState
    created: bool
    assigned_from_queue: list[CaseState]


Action = Callable[[Connection, datetime, RoutingOutcome], Awaitable[T]]


class CaseService:
    def __init__(self, database: Database, relay: OutboxRelay, metrics: RouterMetrics) -> None:
        self._database = database
        self._relay = relay
        self._metrics = metrics

    # Reads: no locks, a consistent snapshot of one statement each.

    async def team_queue(self, team: str) -> list[CaseState]:
        async with self._database.pool.acquire() as connection:
            waiting = await case_store.team_queue(connection, team)
        return sorted(waiting, key=queue_order)

    async def case_detail(self, case_id: str) -> tuple[CaseState, list[case_store.StoredMessage]]:
        async with (
            self._database.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            case = await case_store.find_case(connection, case_id)
            if case is None:
                raise CaseNotFound(f"no case {case_id}")
            return case, await case_store.case_messages(connection, case_id)

    async def agents(self) -> list[AgentState]:
        async with self._database.pool.acquire() as connection:
            return await case_store.read_agents(connection)

    # Case actions.

    async def claim(self, case_id: str, agent_id: str, *, force: bool) -> ActionResult:
        async def action(
            connection: Connection, now: datetime, outcome: RoutingOutcome
        ) -> CaseState:
            case = await self._lock_case(connection, case_id)
            agents = await lock_agents(connection)
            case_actions.claim(case, agent_id, agents, outcome, now, force=force)
            return case

        return ActionResult(await self._transact(action))

    async def reassign(self, case_id: str, agent_id: str, *, force: bool) -> ActionResult:
        async def action(
            connection: Connection, now: datetime, outcome: RoutingOutcome
        ) -> ActionResult:
            case, waiting = await self._lock_case_and_queues(connection, case_id)
            agents = await lock_agents(connection)
            case_actions.reassign(case, agent_id, agents, outcome, now, force=force)
            return ActionResult(case, drain(waiting, agents, outcome, now))

        return await self._transact(action)

    async def set_pending(self, case_id: str) -> ActionResult:
        async def action(
            connection: Connection, now: datetime, outcome: RoutingOutcome
        ) -> CaseState:
            case = await self._lock_case(connection, case_id)
            case_actions.set_pending(case, outcome)
            return case

        return ActionResult(await self._transact(action))

    async def close(self, case_id: str, status: CaseStatus) -> ActionResult:
        """Resolve (or close as no_action); the owner's freed place drains the team queue."""

        async def action(
            connection: Connection, now: datetime, outcome: RoutingOutcome
        ) -> ActionResult:
            case, waiting = await self._lock_case_and_queues(connection, case_id)
            agents = await lock_agents(connection)
            case_actions.close(case, status, agents, outcome, now)
            return ActionResult(case, drain(waiting, agents, outcome, now))

        return await self._transact(action)

    async def reopen(self, case_id: str) -> ActionResult:
        async def action(
            connection: Connection, now: datetime, outcome: RoutingOutcome
        ) -> CaseState:
            case = await self._lock_case(connection, case_id)
            agents = await lock_agents(connection)
            case_actions.reopen(case, agents, outcome, now)
            return case

        return ActionResult(await self._transact(action))

    async def reply(
        self, case_id: str, agent_id: str, text: str, sent_at: datetime | None
    ) -> tuple[ActionResult, bool]:
        """Record a reply made outside the platforms; returns whether it was the first."""

        async def action(
            connection: Connection, now: datetime, outcome: RoutingOutcome
        ) -> tuple[ActionResult, bool]:
            case = await self._lock_case(connection, case_id)
            if await case_store.agent_teams(connection, agent_id) is None:
                raise UnknownAgent(f"no agent {agent_id!r}")
            reply = case_actions.reply_message(case, agent_id, text, sent_at or now, now)
            first = case_actions.record_reply(case, reply, outcome)
            return ActionResult(case), first

        return await self._transact(action)

    # Agents.

    async def put_agent(
        self, agent_id: str, teams: list[str], languages: list[str], capacity: int, online: bool
    ) -> AgentResult:
        """Create an agent or replace their teams, languages, capacity and presence; the
        open cases they own stay theirs (even over a lowered capacity)."""

        async def action(
            connection: Connection, now: datetime, outcome: RoutingOutcome
        ) -> AgentResult:
            current_teams = await case_store.agent_teams(connection, agent_id) or []
            waiting = await case_store.lock_queues(connection, {*current_teams, *teams})
            agents = await lock_agents(connection)
            agent = agents.get(agent_id)
            created = agent is None
            if agent is None:
                agent = AgentState(agent_id, teams, languages, capacity, online, 0, None)
                if not await case_store.insert_agent(connection, agent):
                    raise _RaceLost  # created meanwhile: the next attempt updates it
                agents[agent_id] = agent
            agent.teams, agent.languages = teams, languages
            agent.capacity, agent.online = capacity, online
            outcome.agents[agent_id] = agent
            return AgentResult(agent, created, drain(waiting, agents, outcome, now))

        return await self._transact(action)

    async def patch_agent(
        self, agent_id: str, *, online: bool | None, capacity: int | None
    ) -> AgentResult:
        """Presence and capacity. Going offline keeps the agent's open cases; going online
        or raising capacity takes waiting cases at once."""

        async def action(
            connection: Connection, now: datetime, outcome: RoutingOutcome
        ) -> AgentResult:
            teams = await case_store.agent_teams(connection, agent_id)
            if teams is None:
                raise UnknownAgent(f"no agent {agent_id!r}")
            waiting = await case_store.lock_queues(connection, teams)
            agents = await lock_agents(connection)
            agent = agents[agent_id]
            if online is not None:
                agent.online = online
            if capacity is not None:
                agent.capacity = capacity
            outcome.agents[agent_id] = agent
            return AgentResult(agent, False, drain(waiting, agents, outcome, now))

        return await self._transact(action)

    async def drain_all(self) -> list[CaseState]:
        """Drain every team queue (at start: the agents file may have changed capacity)."""

        async def action(
            connection: Connection, now: datetime, outcome: RoutingOutcome
        ) -> list[CaseState]:
            waiting = await case_store.lock_queues(connection, None)
            agents = await lock_agents(connection)
            return drain(waiting, agents, outcome, now)

        return await self._transact(action)

    # The unit of work.

    async def _transact(self, action: Action[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            outcome = RoutingOutcome()
            now = datetime.now(UTC)
            try:
                async with self._database.pool.acquire() as connection, connection.transaction():
                    result = await action(connection, now, outcome)
                    await case_store.save(connection, outcome)
                    await add_to_outbox(connection, SCHEMA, await event_records(outcome, now))
            except (*RETRYABLE, _RaceLost):
                if attempt == ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)
                continue
            except asyncpg.exceptions.UniqueViolationError as error:
                if error.constraint_name == ONE_OPEN_CASE_PER_CONVERSATION:
                    raise TransitionError(
                        "the case's conversation has another open case: resolve or merge it first"
                    ) from error
                raise
            if outcome.events:
                self._relay.wake()
            self._count(outcome)
            return result

    def _count(self, outcome: RoutingOutcome) -> None:
        for event in outcome.events:
            if event.type == ev.CASE_ASSIGNED:
                self._metrics.assignments.labels(event.data.case.team).inc()
        self._metrics.care.record(outcome)

    async def _lock_case(self, connection: Connection, case_id: str) -> CaseState:
        case = await case_store.lock_case(connection, case_id)
        if case is None:
            raise CaseNotFound(f"no case {case_id}")
        return case

    async def _lock_case_and_queues(
        self, connection: Connection, case_id: str
    ) -> tuple[CaseState, list[CaseState]]:
        locked = await case_store.lock_case_and_queues(connection, case_id)
        if locked is None:
            raise CaseNotFound(f"no case {case_id}")
        return locked
