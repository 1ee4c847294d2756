"""The case API's use cases: each action is one transaction — lock, pure transition, save,
outbox, commit — then the outbox relay is woken. Deadlocks and serialization failures
(possible against the message path) retry the whole transaction.

The store is a port (`CaseStore`, `CaseTransaction`): `adapters.case_store.PostgresCaseStore`
in the service, where a transaction is a unit of work (`casewire_common.unit_of_work`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Collection, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import asyncpg
from casewire_common import events as ev
from casewire_common.events import CaseStatus
from casewire_common.messages import CanonicalMessage

from casewire_router.adapters.case_store import StoredMessage
from casewire_router.domain import case_actions
from casewire_router.domain.access import (
    Actor,
    AgentChange,
    CaseAction,
    require_agent_change,
    require_case_action,
    require_team,
    visible_agents,
)
from casewire_router.domain.assignment import AgentScope, AgentState
from casewire_router.domain.case import CaseState
from casewire_router.domain.case_actions import InvalidInput, TransitionError, UnknownAgent
from casewire_router.domain.desk import FeedEntry, return_due
from casewire_router.domain.leases import Lease, LeaseEcho, collide, reply_collides
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.queue import drain, queue_order
from casewire_router.message_service import RouterMetrics, event_records, queue_events

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
class ReplyResult:
    """A reply recorded: the case, whether it was the first response, whether it collided,
    and whether its platform echo had been seen already (then nothing was counted twice)."""

    action: ActionResult
    first_response: bool
    collision: bool
    seen_on_platform: bool


@dataclass
class AgentResult:
    agent: AgentState
    created: bool
    assigned_from_queue: list[CaseState]


class CaseTransaction(Protocol):
    """One transaction of the case API: what it locks, writes and queues commits together, or
    nothing does. Lock order (shared with the message path): cases, then agents."""

    async def lock_case(self, case_id: str) -> CaseState | None:
        """The case, locked; None: no such case."""
        ...

    async def lock_case_and_queues(self, case_id: str) -> tuple[CaseState, list[CaseState]] | None:
        """The case and the waiting cases its owner's place could go to, locked together;
        None: no such case."""
        ...

    async def lock_queues(self, teams: Collection[str] | None) -> list[CaseState]:
        """The waiting cases of these teams (None: of every team), locked."""
        ...

    async def lock_agents(self, scope: AgentScope) -> dict[str, AgentState]:
        """The agents of `scope`, locked: an action of one team never waits for another
        team's."""
        ...

    async def agent_teams(self, agent_id: str) -> list[str] | None:
        """The agent's teams; None: no such agent."""
        ...

    async def insert_agent(self, agent: AgentState) -> bool:
        """Add a new agent; False when another transaction added the same id first."""
        ...

    async def save(self, outcome: RoutingOutcome) -> None:
        """Write what an action changed."""
        ...

    def add_events(self, records: Iterable[tuple[str, ev.EventRecord]]) -> None:
        """Queue events: published once the transaction commits."""
        ...

    def add_feed(self, entries: Iterable[FeedEntry]) -> None:
        """Queue entries of the desks' feed: written with the transaction."""
        ...

    async def live_lease(self, case_id: str) -> Lease | None:
        """The case's live reply lease (read after the case is locked)."""
        ...

    async def claim_reply(self, reply: CanonicalMessage) -> bool:
        """Mark a reply sent through a platform processed, so that its echo is not applied a
        second time; False: its echo (or the same reply) was processed before."""
        ...

    async def stored_message(self, message_id: str) -> tuple[str | None, CanonicalMessage] | None:
        """A message kept already, with its case id (None: kept without a case)."""
        ...

    async def own_echo(self, message_id: str) -> LeaseEcho | None:
        """The echo kept for its lease holder to claim, now claimed (no longer waiting)."""
        ...

    async def lock_returnable(self, cutoff: datetime) -> list[CaseState]:
        """Open cases of agents offline since `cutoff` or earlier, locked (those other
        transactions hold are skipped)."""
        ...

    async def offline_since(self, agent_ids: Collection[str]) -> dict[str, datetime]:
        """Since when these agents have been offline (read after they are locked)."""
        ...

    async def due_echoes(self) -> list[tuple[LeaseEcho, CaseState]]:
        """Echoes their lease holder did not claim in time, marked collided, with their
        cases, locked (those other transactions hold are skipped)."""
        ...


class CaseStore(Protocol):
    """Where the case API reads and changes cases, their queues, messages and agents."""

    def transaction(self) -> AbstractAsyncContextManager[CaseTransaction]:
        """One unit of work: it commits when the block ends (then the outbox relay is woken if
        it queued events), or rolls back on an error."""
        ...

    async def team_queue(self, team: str) -> list[CaseState]:
        """The team's waiting cases, unlocked, in no particular order."""
        ...

    async def case_detail(self, case_id: str) -> tuple[CaseState, list[StoredMessage]] | None:
        """The case and its messages, read in one snapshot; None: no such case."""
        ...

    async def read_agents(self) -> list[AgentState]:
        """Every agent, unlocked, in id order."""
        ...

    async def agent_teams(self, agent_id: str) -> list[str] | None:
        """The agent's teams, unlocked; None: no such agent."""
        ...

    async def live_lease(self, case_id: str) -> Lease | None:
        """The case's live reply lease, unlocked; None: nobody holds one."""
        ...


Action = Callable[[CaseTransaction, datetime, RoutingOutcome], Awaitable[T]]


class CaseService:
    """The case and agent API's use cases, each for a verified `Actor`: `domain.access`
    decides what the actor may do (`Forbidden` otherwise), on the case as locked."""

    def __init__(self, store: CaseStore, metrics: RouterMetrics) -> None:
        self._store = store
        self._metrics = metrics

    # Reads: no locks, a consistent snapshot each.

    async def roster_teams(self, agent_id: str) -> list[str] | None:
        """The agent's teams on the roster; None: not on it."""
        return await self._store.agent_teams(agent_id)

    async def team_queue(self, actor: Actor, team: str) -> list[CaseState]:
        require_team(actor, team)
        waiting = await self._store.team_queue(team)
        return sorted(waiting, key=queue_order)

    async def case_detail(
        self, actor: Actor, case_id: str
    ) -> tuple[CaseState, list[StoredMessage]]:
        detail = await self._store.case_detail(case_id)
        if detail is None:
            raise CaseNotFound(f"no case {case_id}")
        require_case_action(actor, detail[0], CaseAction.READ)
        return detail

    async def live_lease(self, case_id: str) -> Lease | None:
        """Who is answering the case now (for the case view, once the case was read)."""
        return await self._store.live_lease(case_id)

    async def agents(self, actor: Actor) -> list[AgentState]:
        agents = await self._store.read_agents()
        visible = visible_agents(actor, {agent.id: agent.teams for agent in agents})
        return [agent for agent in agents if visible is None or agent.id in visible]

    # Case actions.

    async def claim(
        self, actor: Actor, case_id: str, agent_id: str | None, *, force: bool
    ) -> ActionResult:
        """Take a waiting case: an agent for themselves, a lead or a service for a named agent."""

        async def action(
            work: CaseTransaction, now: datetime, outcome: RoutingOutcome
        ) -> CaseState:
            case = await self._lock_case(work, case_id)
            require_case_action(actor, case, CaseAction.CLAIM, agent_id, force=force)
            assignee = _acting_agent(actor, agent_id)
            agents = await work.lock_agents(AgentScope.of(agent_ids=[assignee]))
            case_actions.claim(case, assignee, agents, outcome, now, force=force)
            return case

        return ActionResult(await self._transact(actor, action))

    async def reassign(
        self, actor: Actor, case_id: str, agent_id: str, *, force: bool
    ) -> ActionResult:
        async def action(
            work: CaseTransaction, now: datetime, outcome: RoutingOutcome
        ) -> ActionResult:
            case, waiting = await self._lock_case_and_queues(work, case_id)
            require_case_action(actor, case, CaseAction.ASSIGN, agent_id, force=force)
            agents = await work.lock_agents(AgentScope.of([case.team], [agent_id, case.assignee]))
            case_actions.reassign(case, agent_id, agents, outcome, now, force=force)
            return ActionResult(case, drain(waiting, agents, outcome, now))

        return await self._transact(actor, action)

    async def set_pending(self, actor: Actor, case_id: str) -> ActionResult:
        async def action(
            work: CaseTransaction, now: datetime, outcome: RoutingOutcome
        ) -> CaseState:
            case = await self._lock_case(work, case_id)
            require_case_action(actor, case, CaseAction.WORK)
            case_actions.set_pending(case, outcome)
            return case

        return ActionResult(await self._transact(actor, action))

    async def close(self, actor: Actor, case_id: str, status: CaseStatus) -> ActionResult:
        """Resolve (or close as no_action); the owner's freed place drains the team queue."""

        async def action(
            work: CaseTransaction, now: datetime, outcome: RoutingOutcome
        ) -> ActionResult:
            case, waiting = await self._lock_case_and_queues(work, case_id)
            require_case_action(actor, case, CaseAction.WORK)
            agents = await work.lock_agents(AgentScope.of([case.team], [case.assignee]))
            case_actions.close(case, status, agents, outcome, now)
            return ActionResult(case, drain(waiting, agents, outcome, now))

        return await self._transact(actor, action)

    async def reopen(self, actor: Actor, case_id: str) -> ActionResult:
        async def action(
            work: CaseTransaction, now: datetime, outcome: RoutingOutcome
        ) -> CaseState:
            case = await self._lock_case(work, case_id)
            require_case_action(actor, case, CaseAction.WORK)
            agents = await work.lock_agents(AgentScope.of([case.team], [case.assignee]))
            case_actions.reopen(case, agents, outcome, now)
            return case

        return ActionResult(await self._transact(actor, action))

    async def reply(
        self,
        actor: Actor,
        case_id: str,
        agent_id: str | None,
        text: str,
        sent_at: datetime | None,
        saved_reply_id: str | None = None,
        platform_message_id: str | None = None,
    ) -> ReplyResult:
        """Record a reply made outside the router's sight (or sent through a platform's API:
        `platform_message_id`, the id the platform gave it, makes it the same message as its
        echo). A person's reply is theirs; a service names the agent who wrote it.
        `saved_reply_id` (checked to exist by the caller) counts a use of that saved reply. A
        reply by someone other than the live lease's holder, or with no lease by someone other
        than the owner, collides (`domain.leases`): recorded all the same, with
        `casewire.case.collision`."""

        async def action(
            work: CaseTransaction, now: datetime, outcome: RoutingOutcome
        ) -> ReplyResult:
            case = await self._lock_case(work, case_id)
            require_case_action(actor, case, CaseAction.WORK, agent_id)
            author = _acting_agent(actor, agent_id)
            if author != actor.id and await work.agent_teams(author) is None:
                raise UnknownAgent(f"no agent {author!r}")
            reply = case_actions.reply_message(
                case, author, text, sent_at or now, now, platform_message_id
            )
            lease = await work.live_lease(case.id)
            holder = lease.holder if lease is not None else None
            if platform_message_id is not None and not await work.claim_reply(reply):
                seen = await work.stored_message(reply.id)
                if seen is not None:
                    return await _echo_recorded(
                        work, case, reply, seen, holder, saved_reply_id, outcome
                    )
            first = case_actions.record_reply(case, reply, outcome, saved_reply_id)
            collision = reply_collides(case.assignee, author, holder)
            if collision:
                collide(case, outcome, reply.id, author=author, lease_holder=holder, source="api")
            return ReplyResult(ActionResult(case), first, collision, seen_on_platform=False)

        return await self._transact(actor, action)

    # Agents.

    async def put_agent(
        self,
        actor: Actor,
        agent_id: str,
        teams: list[str],
        languages: list[str],
        capacity: int,
        online: bool,
    ) -> AgentResult:
        """Create an agent or replace their teams, languages, capacity and presence; the
        open cases they own stay theirs (even over a lowered capacity)."""

        async def action(
            work: CaseTransaction, now: datetime, outcome: RoutingOutcome
        ) -> AgentResult:
            current_teams = await work.agent_teams(agent_id) or []
            require_agent_change(
                actor, agent_id, [*current_teams, *teams], {AgentChange.DEFINITION}
            )
            waiting = await work.lock_queues({*current_teams, *teams})
            agents = await work.lock_agents(AgentScope.of([*current_teams, *teams], [agent_id]))
            agent = agents.get(agent_id)
            created = agent is None
            if agent is None:
                agent = AgentState(agent_id, teams, languages, capacity, online, 0, None)
                if not await work.insert_agent(agent):
                    raise _RaceLost  # created meanwhile: the next attempt updates it
                agents[agent_id] = agent
            agent.teams, agent.languages = teams, languages
            agent.capacity, agent.online = capacity, online
            return _agent_changed(
                actor, agent, created, drain(waiting, agents, outcome, now), outcome
            )

        return await self._transact(actor, action)

    async def patch_agent(
        self, actor: Actor, agent_id: str, *, online: bool | None, capacity: int | None
    ) -> AgentResult:
        """Presence and capacity. Going offline keeps the agent's open cases; going online
        or raising capacity takes waiting cases at once."""
        changes = {AgentChange.PRESENCE} if online is not None else set()
        if capacity is not None:
            changes.add(AgentChange.CAPACITY)

        async def action(
            work: CaseTransaction, now: datetime, outcome: RoutingOutcome
        ) -> AgentResult:
            teams = await work.agent_teams(agent_id)
            if teams is None:
                raise UnknownAgent(f"no agent {agent_id!r}")
            require_agent_change(actor, agent_id, teams, changes)
            waiting = await work.lock_queues(teams)
            agents = await work.lock_agents(AgentScope.of(teams, [agent_id]))
            agent = agents[agent_id]
            if online is not None:
                agent.online = online
            if capacity is not None:
                agent.capacity = capacity
            return _agent_changed(
                actor, agent, False, drain(waiting, agents, outcome, now), outcome
            )

        return await self._transact(actor, action)

    # Background duties (every replica runs them; rows another replica holds are skipped).

    async def return_offline_cases(self, grace: timedelta) -> int:
        """The open cases of agents offline for longer than `grace` go back to their team
        queues (`casewire.case.status_changed` to queued, reason owner_offline) and drain to
        the agents with room at once. Returns how many went back."""

        async def action(
            work: CaseTransaction, now: datetime, outcome: RoutingOutcome
        ) -> list[CaseState]:
            cutoff = now - grace
            owned = await work.lock_returnable(cutoff)
            if not owned:
                return []
            waiting = await work.lock_queues({case.team for case in owned})
            agents = await work.lock_agents(
                AgentScope.of({case.team for case in owned}, {case.assignee for case in owned})
            )
            since = await work.offline_since({case.assignee for case in owned if case.assignee})
            returned = [case for case in owned if return_due(case, agents, since, cutoff)]
            for case in returned:
                case_actions.return_to_queue(case, agents, outcome)
            drain([*returned, *waiting], agents, outcome, now)
            return returned

        return len(await self._transact(None, action))

    async def decide_echoes(self) -> int:
        """Echoes that came during someone's reply lease and that the holder did not record
        as theirs in time collide (`casewire.case.collision`, source platform). Returns how
        many."""

        async def action(work: CaseTransaction, now: datetime, outcome: RoutingOutcome) -> int:
            due = await work.due_echoes()
            for echo, case in due:
                collide(
                    case,
                    outcome,
                    echo.message_id,
                    author=None,
                    lease_holder=echo.lease_holder,
                    source="platform",
                    at=echo.sent_at,
                )
            return len(due)

        return await self._transact(None, action)

    async def drain_all(self) -> list[CaseState]:
        """Drain every team queue (at start: the agents file may have changed capacity). Only
        the agents of the teams with waiting cases are locked: a case goes to its team's."""

        async def action(
            work: CaseTransaction, now: datetime, outcome: RoutingOutcome
        ) -> list[CaseState]:
            waiting = await work.lock_queues(None)
            if not waiting:
                return []
            agents = await work.lock_agents(AgentScope.of({case.team for case in waiting}))
            return drain(waiting, agents, outcome, now)

        return await self._transact(None, action)

    # The unit of work.

    async def _transact(self, actor: Actor | None, action: Action[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            outcome = RoutingOutcome(actor=actor.ref if actor is not None else None)
            now = datetime.now(UTC)
            try:
                async with self._store.transaction() as work:
                    result = await action(work, now, outcome)
                    await work.save(outcome)
                    queue_events(work, outcome, await event_records(outcome, now))
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
            self._count(outcome)
            return result

    def _count(self, outcome: RoutingOutcome) -> None:
        for event in outcome.events:
            if event.type == ev.CASE_ASSIGNED:
                self._metrics.assignments.labels(event.data.case.team).inc()
        self._metrics.care.record(outcome)
        self._metrics.count_collisions(outcome)

    async def _lock_case(self, work: CaseTransaction, case_id: str) -> CaseState:
        case = await work.lock_case(case_id)
        if case is None:
            raise CaseNotFound(f"no case {case_id}")
        return case

    async def _lock_case_and_queues(
        self, work: CaseTransaction, case_id: str
    ) -> tuple[CaseState, list[CaseState]]:
        locked = await work.lock_case_and_queues(case_id)
        if locked is None:
            raise CaseNotFound(f"no case {case_id}")
        return locked


def _acting_agent(actor: Actor, agent_id: str | None) -> str:
    """Who a claim takes a case for, or who wrote a reply: a person acts as themselves unless
    they name someone (a lead assigning; `domain.access` judges it), a service must name one."""
    if agent_id is not None:
        return agent_id
    if not actor.is_person:
        raise InvalidInput("a service token must name the agent (agent_id)")
    return actor.id


async def _echo_recorded(
    work: CaseTransaction,
    case: CaseState,
    reply: CanonicalMessage,
    seen: tuple[str | None, CanonicalMessage],
    holder: str | None,
    saved_reply_id: str | None,
    outcome: RoutingOutcome,
) -> ReplyResult:
    """A reply sent through a platform whose echo the router processed first: the echo is
    that reply, counted once. Kept with this case already: nothing more to count; kept
    without a case (it found none): it joins this one, as the reply. Collides as the reply
    would have, judged by the lease the echo came during (if it came during one; not twice if
    it was counted a collision already), else by the lease and owner now."""
    seen_case, echo = seen
    if seen_case is not None and seen_case != case.id:
        raise InvalidInput(
            f"platform message {reply.platform_message_id!r} is a reply of case {seen_case}"
        )
    author = reply.author.id
    held = await work.own_echo(reply.id)
    if held is None:
        collision = reply_collides(case.assignee, author, holder)
    else:
        collision = not held.collided and reply_collides(case.assignee, author, held.lease_holder)
    if seen_case is None:
        first = case_actions.record_reply(
            case,
            echo.model_copy(update={"author": reply.author}),
            outcome,
            saved_reply_id,
            stored=True,
        )
    else:
        first = case.first_response_at == echo.sent_at
    if collision:
        collide(
            case,
            outcome,
            reply.id,
            author=author,
            lease_holder=held.lease_holder if held is not None else holder,
            source="api",
        )
    return ReplyResult(ActionResult(case), first, collision, seen_on_platform=True)


def _agent_changed(
    actor: Actor,
    agent: AgentState,
    created: bool,
    assigned: list[CaseState],
    outcome: RoutingOutcome,
) -> AgentResult:
    """Save the agent and audit the change (`casewire.agent.updated`, with the actor)."""
    outcome.agents[agent.id] = agent
    outcome.agent_changes.append(
        ev.AgentData(
            agent_id=agent.id,
            teams=agent.teams,
            languages=agent.languages,
            capacity=agent.capacity,
            online=agent.online,
            created=created,
            actor=actor.ref,
            assigned_case_ids=[case.id for case in assigned],
        )
    )
    return AgentResult(agent, created, assigned)
