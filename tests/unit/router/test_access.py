"""Who may do what (domain.access), on plain data: every role against every kind of action."""

from __future__ import annotations

import pytest
from casewire_router.domain.access import (
    Actor,
    AgentChange,
    CaseAction,
    Forbidden,
    Scope,
    require_agent_change,
    require_case_action,
    require_team,
    strongest_role,
    visible_agents,
)

from tests.unit.router.case_factories import case

AMAL = Actor("amal", "agent", frozenset({"shipping"}))
NIKOS = Actor("nikos", "agent", frozenset({"shipping"}))
LEAD = Actor("lee", "lead", frozenset({"shipping"}))
OTHER_LEAD = Actor("olga", "lead", frozenset({"billing"}))
ADMIN = Actor("root", "admin")
READER = Actor("bi", "service", scopes=frozenset({Scope.CASES_READ}))
WRITER = Actor("crm", "service", scopes=frozenset({Scope.CASES_READ, Scope.CASES_WRITE}))

OWNED_BY_AMAL = case("c1", status="assigned", assignee="amal")
WAITING = case("c2")
BILLING = case("c3", team="billing", status="assigned", assignee="bea")


def allowed(actor: Actor, *args: object, **kwargs: object) -> bool:
    try:
        require_case_action(actor, *args, **kwargs)  # type: ignore[arg-type]
    except Forbidden:
        return False
    return True


@pytest.mark.parametrize(
    ("actor", "target", "action", "assignee", "expected"),
    [
        # Agents: their own cases, their teams' queues, as themselves.
        (AMAL, OWNED_BY_AMAL, CaseAction.READ, None, True),
        (AMAL, OWNED_BY_AMAL, CaseAction.WORK, None, True),
        (NIKOS, OWNED_BY_AMAL, CaseAction.READ, None, True),
        (NIKOS, OWNED_BY_AMAL, CaseAction.WORK, None, False),
        (AMAL, WAITING, CaseAction.CLAIM, "amal", True),
        (AMAL, WAITING, CaseAction.CLAIM, "nikos", False),
        (AMAL, OWNED_BY_AMAL, CaseAction.ASSIGN, "nikos", False),
        (AMAL, BILLING, CaseAction.READ, None, False),
        (AMAL, OWNED_BY_AMAL, CaseAction.WORK, "nikos", False),  # a reply in another's name
        # Leads: every case of their teams, nothing of the others.
        (LEAD, OWNED_BY_AMAL, CaseAction.WORK, None, True),
        (LEAD, OWNED_BY_AMAL, CaseAction.ASSIGN, "nikos", True),
        (LEAD, WAITING, CaseAction.CLAIM, "amal", True),
        (OTHER_LEAD, OWNED_BY_AMAL, CaseAction.READ, None, False),
        (OTHER_LEAD, BILLING, CaseAction.ASSIGN, "bea", True),
        # Admins everywhere; services by scope.
        (ADMIN, BILLING, CaseAction.ASSIGN, "amal", True),
        (READER, BILLING, CaseAction.READ, None, True),
        (READER, BILLING, CaseAction.WORK, None, False),
        (WRITER, OWNED_BY_AMAL, CaseAction.WORK, "amal", True),
    ],
)
def test_case_actions_by_role(
    actor: Actor, target: object, action: CaseAction, assignee: str | None, expected: bool
) -> None:
    assert allowed(actor, target, action, assignee) is expected


def test_only_leads_and_above_force_over_capacity() -> None:
    assert not allowed(AMAL, WAITING, CaseAction.CLAIM, "amal", force=True)
    assert allowed(LEAD, WAITING, CaseAction.CLAIM, "amal", force=True)


def test_a_refusal_never_names_the_other_team() -> None:
    with pytest.raises(Forbidden) as refused:
        require_case_action(AMAL, BILLING, CaseAction.READ)
    assert "billing" not in str(refused.value)


def test_team_queues() -> None:
    require_team(AMAL, "shipping")
    require_team(ADMIN, "billing")
    require_team(READER, "billing")
    for actor in (AMAL, LEAD, Actor("svc", "service", scopes=frozenset({Scope.AGENTS_READ}))):
        with pytest.raises(Forbidden):
            require_team(actor, "billing")


@pytest.mark.parametrize(
    ("actor", "agent_id", "teams", "changes", "expected"),
    [
        (AMAL, "amal", ["shipping"], {AgentChange.PRESENCE}, True),
        (AMAL, "amal", ["shipping"], {AgentChange.CAPACITY}, False),
        (AMAL, "nikos", ["shipping"], {AgentChange.PRESENCE}, False),
        (LEAD, "nikos", ["shipping"], {AgentChange.PRESENCE, AgentChange.CAPACITY}, True),
        (LEAD, "nikos", ["shipping"], {AgentChange.DEFINITION}, False),
        (LEAD, "bea", ["billing"], {AgentChange.CAPACITY}, False),
        (ADMIN, "bea", ["billing"], {AgentChange.DEFINITION}, True),
        (WRITER, "bea", ["billing"], {AgentChange.PRESENCE}, False),
        (
            Actor("hr", "service", scopes=frozenset({Scope.AGENTS_WRITE})),
            "bea",
            ["billing"],
            {AgentChange.DEFINITION},
            True,
        ),
    ],
)
def test_agent_changes_by_role(
    actor: Actor, agent_id: str, teams: list[str], changes: set[AgentChange], expected: bool
) -> None:
    try:
        require_agent_change(actor, agent_id, teams, changes)
    except Forbidden:
        assert not expected
    else:
        assert expected


def test_who_sees_which_agents() -> None:
    roster = {"amal": ["shipping"], "nikos": ["shipping", "care"], "bea": ["billing"]}
    assert visible_agents(ADMIN, roster) is None
    assert visible_agents(LEAD, roster) == {"amal", "nikos"}
    assert visible_agents(AMAL, roster) == {"amal"}
    with pytest.raises(Forbidden):
        visible_agents(WRITER, roster)


def test_a_token_acts_with_its_strongest_person_role() -> None:
    assert strongest_role(["agent", "lead"]) == "lead"
    assert strongest_role(["service", "admin"]) == "admin"
    assert strongest_role(["service"]) == "service"
    assert strongest_role(["viewer", "offline_access"]) is None
