"""Plain-data cases and agents for the case-action and queue tests."""

from __future__ import annotations

from datetime import timedelta

from casewire_common.events import CaseStatus, Priority
from casewire_router.domain.assignment import AgentState
from casewire_router.domain.case import CaseState

from tests.unit.router.factories import T0


def case(
    case_id: str = "c1",
    *,
    status: CaseStatus = "queued",
    assignee: str | None = None,
    team: str = "shipping",
    priority: Priority = "P3",
    language: str | None = "en",
    minutes: int = 0,
) -> CaseState:
    return CaseState(
        id=case_id,
        conversation_id=f"x:brand:{case_id}:cust",
        customer_id="cust",
        account_id="brand",
        platform="x",
        channel="mention",
        visibility="public",
        status=status,
        priority=priority,
        urgency_score=10,
        team=team,
        assignee=assignee,
        tags=[],
        language=language,
        opened_at=T0 + timedelta(minutes=minutes),
    )


def agent(
    agent_id: str,
    *,
    load: int = 0,
    capacity: int = 2,
    online: bool = True,
    teams: tuple[str, ...] = ("shipping",),
    languages: tuple[str, ...] = ("en",),
) -> AgentState:
    return AgentState(agent_id, list(teams), list(languages), capacity, online, load, None)
