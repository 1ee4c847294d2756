"""The roster: which agents the per-agent SLA figures name (`casewire_sla_agent_response_seconds`).

It is the router's agents file (DESIGN.md "Agents"), read here for its agent ids and their
teams only: the router owns the file and checks it (`casewire-router check-rules` for rules,
the router's start for agents); the SLA service ignores every other field, so the file may grow
without a change here. An assignee not in the roster counts as `other`, a case nobody owns as
`unassigned` - the router's care metrics use the same values - so the `agent` label never takes
more values than the roster has, plus those two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

OTHER = "other"
UNASSIGNED = "unassigned"


class _Agent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    teams: list[str] = Field(min_length=1)


class _AgentsFile(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    agents: list[_Agent]


class RosterError(ValueError):
    """An agents file the SLA service cannot read its roster from."""


@dataclass(frozen=True)
class Roster:
    """Agent id -> the teams they work in. Empty: no roster, every assignee counts as other."""

    teams: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def agent(self, assignee: str | None) -> str:
        """The `agent` label value of a case's assignee."""
        if assignee is None:
            return UNASSIGNED
        return assignee if assignee in self.teams else OTHER


def parse_roster(text: str, source: str = "<agents>") -> Roster:
    """The roster of an agents file's text; raises RosterError saying what is wrong."""
    try:
        document = yaml.safe_load(text)
        parsed = _AgentsFile.model_validate(document)
    except (yaml.YAMLError, ValidationError) as error:
        raise RosterError(
            f"{source}: not an agents file with agents[].id and teams: {error}"
        ) from error
    return Roster({agent.id: tuple(agent.teams) for agent in parsed.agents})


def load_roster(path: Path | None) -> Roster:
    """The roster of the agents file at `path`; None: no roster."""
    if path is None:
        return Roster()
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise RosterError(f"{path}: cannot read: {error.strerror or error}") from error
    return parse_roster(text, str(path))
