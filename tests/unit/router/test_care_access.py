"""Who may read and write saved replies and read customers: pure decisions over plain data."""

from __future__ import annotations

import pytest
from casewire_router.domain.access import (
    Actor,
    Forbidden,
    Scope,
    customer_teams,
    may_read_saved_reply,
    require_saved_reply_change,
    require_saved_reply_read,
)

AGENT = Actor("amal", "agent", frozenset({"shipping"}))
LEAD = Actor("lee", "lead", frozenset({"shipping", "care"}))
ADMIN = Actor("root", "admin")
READER = Actor("crm", "service", scopes=frozenset({Scope.SAVED_REPLIES_READ}))
WRITER = Actor("cms", "service", scopes=frozenset({Scope.SAVED_REPLIES_WRITE}))
CUSTOMERS = Actor("crm", "service", scopes=frozenset({Scope.CUSTOMERS_READ}))
CASES_ONLY = Actor("bi", "service", scopes=frozenset({Scope.CASES_READ}))


def test_people_read_their_teams_replies_and_those_for_every_team() -> None:
    assert may_read_saved_reply(AGENT, ["shipping", "billing"])
    assert may_read_saved_reply(AGENT, [])  # for every team
    assert not may_read_saved_reply(AGENT, ["billing"])
    assert may_read_saved_reply(LEAD, ["care"])
    assert may_read_saved_reply(ADMIN, ["billing"])
    with pytest.raises(Forbidden, match="not for a team of 'amal'"):
        require_saved_reply_read(AGENT, "refunds", ["billing"])


def test_services_read_replies_with_the_scope_only() -> None:
    assert may_read_saved_reply(READER, ["billing"])
    assert not may_read_saved_reply(CASES_ONLY, [])
    with pytest.raises(Forbidden, match="lacks the saved-replies:read scope"):
        require_saved_reply_read(CASES_ONLY, "any", [])


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (None, ["shipping"]),  # a new reply of their team
        (["shipping"], ["shipping", "care"]),  # widened to another team they lead
        (["care"], None),  # its API version removed
    ],
)
def test_a_lead_writes_replies_of_their_teams(
    current: list[str] | None, new: list[str] | None
) -> None:
    require_saved_reply_change(LEAD, "r", current, new)


@pytest.mark.parametrize(
    ("current", "new", "problem"),
    [
        (None, ["billing"], "does not lead: billing"),
        (["billing"], ["shipping"], "does not lead: billing"),  # taking another team's reply
        (["shipping"], ["shipping", "billing"], "does not lead: billing"),
        (None, [], "for every team: only an admin"),
        ([], ["shipping"], "for every team: only an admin"),
    ],
)
def test_a_lead_may_not_write_other_teams_replies_nor_replies_for_every_team(
    current: list[str] | None, new: list[str] | None, problem: str
) -> None:
    with pytest.raises(Forbidden, match=problem):
        require_saved_reply_change(LEAD, "r", current, new)


def test_agents_never_write_admins_and_writing_services_always() -> None:
    with pytest.raises(Forbidden, match="needs the role lead"):
        require_saved_reply_change(AGENT, "r", None, ["shipping"])
    require_saved_reply_change(ADMIN, "r", ["billing"], [])
    require_saved_reply_change(WRITER, "r", ["billing"], [])
    with pytest.raises(Forbidden, match="lacks the saved-replies:write scope"):
        require_saved_reply_change(READER, "r", None, ["shipping"])


def test_customer_history_is_cut_to_the_teams_the_caller_sees() -> None:
    assert customer_teams(AGENT) == {"shipping"}
    assert customer_teams(LEAD) == {"shipping", "care"}
    assert customer_teams(ADMIN) is None
    assert customer_teams(CUSTOMERS) is None
    with pytest.raises(Forbidden, match="lacks the customers:read scope"):
        customer_teams(CASES_ONLY)
