"""The agents file (DESIGN.md "Agents")."""

from __future__ import annotations

from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    teams: list[str] = Field(min_length=1)
    languages: list[str] = Field(default_factory=list)
    capacity: int = Field(ge=0)
    online: bool = False


class AgentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: list[AgentSpec]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        ids = [agent.id for agent in self.agents]
        duplicates = sorted({agent_id for agent_id in ids if ids.count(agent_id) > 1})
        if duplicates:
            raise ValueError(f"duplicate agent ids: {', '.join(duplicates)}")
        return self


def parse_agents(text: str) -> AgentsFile:
    document: Any = yaml.safe_load(text)
    return AgentsFile.model_validate(document)
