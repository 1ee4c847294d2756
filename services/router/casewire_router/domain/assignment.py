"""Choosing an agent for a case: capacity, language, load, and a fair tie-break."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True)
class AssignmentChoice:
    agent_id: str | None
    candidates: list[CandidateAgent]
    reason: str


def choose_agent(
    team: str, language: str | None, agents: list[AgentState], requested: str | None = None
) -> AssignmentChoice:
    """The agent who gets the case, or None (the case waits in the team queue).

    Never over capacity. Among those with room: a requested agent (rule `assign_to`) first,
    then agents who speak the case's language, then the least loaded relative to capacity,
    then the one who waited longest since their last assignment.
    """
    candidates: list[CandidateAgent] = []
    eligible: list[AgentState] = []
    for agent in sorted(agents, key=lambda a: a.id):
        if team not in agent.teams:
            continue
        speaks = language is not None and language in agent.languages
        if not agent.online:
            reason = "offline"
        elif agent.load >= agent.capacity:
            reason = "at capacity"
        else:
            reason = "has room"
            eligible.append(agent)
        candidates.append(
            CandidateAgent(
                agent_id=agent.id,
                load=agent.load,
                capacity=agent.capacity,
                speaks_language=speaks,
                eligible=reason == "has room",
                reason=reason,
            )
        )
    if not eligible:
        return AssignmentChoice(None, candidates, f"no agent of team {team!r} has room")
    if requested is not None:
        for agent in eligible:
            if agent.id == requested:
                return AssignmentChoice(agent.id, candidates, "requested by rule")

    def preference(agent: AgentState) -> tuple[int, float, float, str]:
        speaks = language is not None and language in agent.languages
        waited = agent.last_assigned_at.timestamp() if agent.last_assigned_at else 0.0
        return (0 if speaks else 1, agent.load / agent.capacity, waited, agent.id)

    chosen = min(eligible, key=preference)
    parts = []
    if language is not None:
        speaks = language in chosen.languages
        parts.append(f"speaks {language}" if speaks else f"nobody with room speaks {language}")
    parts.append(f"least loaded ({chosen.load}/{chosen.capacity})")
    return AssignmentChoice(chosen.id, candidates, ", ".join(parts))
