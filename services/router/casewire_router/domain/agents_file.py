"""The agents file (DESIGN.md "Agents"): who works which team queues, in which languages,
with how many open cases at most.

`parse_agents` reports every problem with the file's line, the agent and the field, in the
form `check-rules` uses for rules files. Given the teams of the rules file, it also rejects
an agent naming a team the rules do not know: such an agent would never get a case.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from casewire_router.domain.yaml_files import (
    CHECKED_BY_CALLER,
    Location,
    YamlFileError,
    dotted,
    validated_file,
)

_ISO_639_1 = re.compile(r"[a-z]{2}")


def _language(value: str) -> str:
    """Messages carry ISO 639-1 codes in lower case, as rules and the agent API require:
    an agent who speaks "EN" would never be seen speaking an English case's "en"."""
    if not _ISO_639_1.fullmatch(value):
        hint = f": write {value.lower()!r}" if _ISO_639_1.fullmatch(value.lower()) else ""
        raise ValueError(
            f"language {value!r} is not a lower-case ISO 639-1 code such as 'en'{hint}"
        )
    return value


Language = Annotated[str, AfterValidator(_language)]


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    teams: list[str] = Field(min_length=1)
    languages: list[Language] = Field(default_factory=list)
    capacity: int = Field(ge=0)
    online: bool = False


# Validation context: the rules file's teams; an agent naming another team is an error.
KNOWN_TEAMS = "known teams"


class AgentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: list[AgentSpec]

    @model_validator(mode="before")
    @classmethod
    def _consistent(cls, data: Any, info: ValidationInfo) -> Any:
        # parse_agents runs the same checks itself, to give each problem its line.
        context = info.context or {}
        if not context.get(CHECKED_BY_CALLER):
            problems = consistency_problems(data, context.get(KNOWN_TEAMS))
            if problems:
                raise ValueError("; ".join(f"{dotted(loc)}: {text}" for loc, text in problems))
        return data


def consistency_problems(
    document: Any, teams: Collection[str] | None = None
) -> list[tuple[Location, str]]:
    """What field types cannot say: an agent id used twice (reported at the repeat); a team
    that the rules file (its `teams`, when given) does not know. Works on the raw document,
    so that these problems are listed alongside type errors."""
    agents = document.get("agents") if isinstance(document, dict) else None
    if not isinstance(agents, list):
        return []
    known = None if teams is None else set(teams)
    problems: list[tuple[Location, str]] = []
    seen: set[str] = set()
    for index, entry in enumerate(agents):
        if not isinstance(entry, dict):
            continue
        agent_id = entry.get("id")
        if isinstance(agent_id, str):
            if agent_id in seen:
                problems.append((("agents", index, "id"), f"duplicate agent id {agent_id!r}"))
            seen.add(agent_id)
        agent_teams = entry.get("teams")
        if known is None or not isinstance(agent_teams, list):
            continue
        for position, team in enumerate(agent_teams):
            if isinstance(team, str) and team not in known:
                problems.append(
                    (
                        ("agents", index, "teams", position),
                        f"team {team!r} is not in the rules file's teams"
                        f" ({', '.join(sorted(known))}): this agent would never get its cases",
                    )
                )
    return problems


class AgentsError(YamlFileError):
    """An agents file that cannot be used, with every problem found in it."""


def parse_agents(
    text: str, source: str = "<agents>", teams: Collection[str] | None = None
) -> AgentsFile:
    """Parse and validate an agents file; `teams`, when given, are those of the rules file.

    AgentsError lists every problem as `source:line: agent 'id': field: problem`.
    """
    return validated_file(
        text,
        source,
        AgentsFile,
        consistency=lambda document: consistency_problems(document, teams),
        entries={"agents": "agent"},
        what="the agents file",
        shape="`agents: [...]`",
        error=AgentsError,
    )


def not_utf8(source: str, error: UnicodeDecodeError) -> str:
    """`source:line: not UTF-8 text: reason at byte n of the line`, for a file's bytes."""
    data = bytes(error.object)
    line = data.count(b"\n", 0, error.start) + 1
    column = error.start - data.rfind(b"\n", 0, error.start)  # 1-based
    return f"{source}:{line}: not UTF-8 text: {error.reason} at byte {column} of the line"


def load_agents(path: Path | str, teams: Collection[str] | None = None) -> AgentsFile:
    """The agents in a file (see `parse_agents`); a file that is not UTF-8 is an AgentsError
    naming the line, one that cannot be read an OSError."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise AgentsError([not_utf8(str(path), error)]) from error
    return parse_agents(text, str(path), teams)
