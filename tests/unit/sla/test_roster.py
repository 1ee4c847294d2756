"""The roster the per-agent SLA figures name: the router's agents file, ids and teams only."""

from __future__ import annotations

from pathlib import Path

import pytest
from casewire_sla.domain.roster import OTHER, UNASSIGNED, RosterError, load_roster, parse_roster

REPO = Path(__file__).resolve().parents[3]


def test_the_router_agents_file_reads_as_the_roster_with_each_agent_teams() -> None:
    roster = load_roster(REPO / "config" / "agents.yaml")
    assert roster.teams["amal"] == ("shipping", "care")
    assert roster.agent("amal") == "amal"


def test_an_assignee_outside_the_roster_is_other_and_none_is_unassigned() -> None:
    roster = parse_roster("agents: [{id: amal, teams: [care], capacity: 3}]")
    assert roster.agent("api-made-agent-7") == OTHER
    assert roster.agent(None) == UNASSIGNED


def test_without_an_agents_file_every_assignee_is_other() -> None:
    assert load_roster(None).agent("amal") == OTHER


@pytest.mark.parametrize(
    "text", ["agents: [{teams: [care]}]", "agents: [{id: amal, teams: []}]", "[1, 2", "- x"]
)
def test_a_file_without_agent_ids_and_teams_is_refused(text: str) -> None:
    with pytest.raises(RosterError, match="agents"):
        parse_roster(text, "agents.yaml")


def test_an_unreadable_agents_file_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match="cannot read"):
        load_roster(tmp_path / "missing.yaml")
