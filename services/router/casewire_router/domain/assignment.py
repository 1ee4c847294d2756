"""Choosing an agent for a case: capacity, language, load, and a fair tie-break."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from casewire_common.events import CandidateAgent


@dataclass
class AgentState:
    id: str
    teams: list[str]
    languages: list[str]
    capacity: int
    online: bool
    load: int
    last_assigned_at: datetime | None


@dataclass(frozen=True)
class AgentScope:
    """The agents one transaction locks, instead of the whole roster: every agent of `teams`
    and of the teams of `agent_ids` (a place freed there drains those teams' queues), and the
    `agent_ids` themselves. Locked in one statement in id order, so two scopes that overlap
    serialize on the agents they share and never deadlock on them."""

    teams: frozenset[str]
    agent_ids: frozenset[str] = frozenset()

    @staticmethod
    def of(teams: Iterable[str] = (), agent_ids: Iterable[str | None] = ()) -> AgentScope:
        return AgentScope(frozenset(teams), frozenset(a for a in agent_ids if a is not None))

    def union(self, other: AgentScope) -> AgentScope:
        return AgentScope(self.teams | other.teams, self.agent_ids | other.agent_ids)


# A decision lists the chosen agent and the runners-up, not the whole team: with a team of a
# hundred agents, every candidate listed made each routing event ten times larger, and its cost
# (encoding, outbox, broker, every consumer's decoding) grew with the roster. The others are
# counted by reason.
LISTED_CANDIDATES = 5

# Before every real assignment: who was never assigned has waited longest.
_NEVER_ASSIGNED = datetime.min.replace(tzinfo=UTC)

HAS_ROOM = "has room"
AT_CAPACITY = "at capacity"
OFFLINE = "offline"


@dataclass(frozen=True)
class AssignmentChoice:
    agent_id: str | None
    candidates: list[CandidateAgent]  # at most LISTED_CANDIDATES, best first
    reason: str
    considered: dict[str, int]  # every agent of the team, counted by why it could or could not


def choose_agent(
    team: str, language: str | None, agents: list[AgentState], requested: str | None = None
) -> AssignmentChoice:
    """The agent who gets the case, or None (the case waits in the team queue).

    Never over capacity. Among those with room: a requested agent (rule `assign_to`) first,
    then agents who speak the case's language, then the least loaded relative to capacity,
    then the one who waited longest since their last assignment. The candidates listed are the
    chosen agent, the others with room in the order they would have been chosen, then those
    without room (at capacity before offline, by id).
    """
    with_room: list[AgentState] = []
    without_room: list[AgentState] = []
    considered: dict[str, int] = {}
    for agent in agents:  # one pass: a team of hundreds is read once per case
        if team not in agent.teams:
            continue
        reason = _reason(agent)
        considered[reason] = considered.get(reason, 0) + 1
        (with_room if reason == HAS_ROOM else without_room).append(agent)

    def preference(agent: AgentState) -> tuple[bool, float, datetime, str]:
        waited = agent.last_assigned_at or _NEVER_ASSIGNED
        return (not _speaks(agent, language), agent.load / agent.capacity, waited, agent.id)

    chosen = next((a for a in with_room if a.id == requested), None) if requested else None
    listed = [] if chosen is None else [chosen]
    listed += heapq.nsmallest(
        LISTED_CANDIDATES - len(listed), (a for a in with_room if a is not chosen), key=preference
    )
    listed += heapq.nsmallest(
        LISTED_CANDIDATES - len(listed),
        without_room,
        key=lambda agent: (not agent.online, agent.id),
    )
    candidates = [_candidate(agent, language) for agent in listed]
    if not with_room:
        return AssignmentChoice(None, candidates, f"no agent of team {team!r} has room", considered)
    if chosen is not None:
        return AssignmentChoice(chosen.id, candidates, "requested by rule", considered)
    chosen = listed[0]
    parts = []
    if language is not None:
        speaks = _speaks(chosen, language)
        parts.append(f"speaks {language}" if speaks else f"nobody with room speaks {language}")
    parts.append(f"least loaded ({chosen.load}/{chosen.capacity})")
    return AssignmentChoice(chosen.id, candidates, ", ".join(parts), considered)


def _reason(agent: AgentState) -> str:
    if not agent.online:
        return OFFLINE
    return AT_CAPACITY if agent.load >= agent.capacity else HAS_ROOM


def _speaks(agent: AgentState, language: str | None) -> bool:
    return language is not None and language in agent.languages


def _candidate(agent: AgentState, language: str | None) -> CandidateAgent:
    reason = _reason(agent)
    return CandidateAgent(
        agent_id=agent.id,
        load=agent.load,
        capacity=agent.capacity,
        speaks_language=_speaks(agent, language),
        eligible=reason == HAS_ROOM,
        reason=reason,
    )
