"""Team queues: which waiting case goes first, and draining them the moment capacity frees."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from casewire_router.domain.assignment import AgentState, choose_agent
from casewire_router.domain.case import CaseState
from casewire_router.domain.case_actions import in_queue, waiting_since
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.routing import replace_decision
from casewire_router.domain.rules import PRIORITY_ORDER


def queue_order(case: CaseState) -> tuple[int, datetime, str]:
    """Most urgent first, then the one waiting longest (the id only makes the order total)."""
    return (PRIORITY_ORDER[case.priority], waiting_since(case), case.id)


def drain(
    waiting: Iterable[CaseState],
    agents: Mapping[str, AgentState],
    outcome: RoutingOutcome,
    now: datetime,
) -> list[CaseState]:
    """Assign waiting cases in queue order to agents with room (`choose_agent`: language,
    then load), until no agent of their team has room; returns the cases assigned.

    Language is a preference, not a condition, so once a case of a team finds nobody, no
    later case of that team can: the team is then skipped.
    """
    team_agents = list(agents.values())
    full_teams: set[str] = set()
    assigned: list[CaseState] = []
    for case in sorted(waiting, key=queue_order):
        if not in_queue(case) or case.team in full_teams:
            continue
        choice = choose_agent(case.team, case.language, team_agents)
        if choice.agent_id is None:
            full_teams.add(case.team)
            continue
        decision = None
        if case.decision is not None:
            decision = replace_decision(case.decision, choice, f"from the queue: {choice.reason}")
        outcome.assign(case, agents[choice.agent_id], now, decision=decision)
        assigned.append(case)
    return assigned
