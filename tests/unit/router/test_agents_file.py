"""The agents file: every problem with its line, agent and field; languages as messages carry
them; teams that the rules file knows."""

from __future__ import annotations

from pathlib import Path

import pytest
from casewire_router.domain.agents_file import AgentsError, AgentsFile, load_agents, parse_agents
from pydantic import ValidationError

TEAMS = ["care", "shipping"]


def problems(text: str, teams: list[str] | None = None) -> list[str]:
    with pytest.raises(AgentsError) as caught:
        parse_agents(text, "a.yaml", teams)
    return caught.value.problems


def test_a_valid_file_parses_and_keeps_presence_as_written() -> None:
    agents = parse_agents(
        "agents:\n"
        "  - {id: amal, teams: [shipping, care], languages: [ar, en], capacity: 8}\n"
        "  - {id: zoe, teams: [care], capacity: 2, online: true}\n",
        teams=TEAMS,
    ).agents
    assert [(a.id, a.teams, a.languages, a.capacity, a.online) for a in agents] == [
        ("amal", ["shipping", "care"], ["ar", "en"], 8, False),
        ("zoe", ["care"], [], 2, True),
    ]


def test_type_errors_name_the_line_the_agent_and_the_field() -> None:
    text = (
        "agents:\n"
        "  - {id: a, teams: [care], capacity: -1}\n"
        "  - {id: b, teams: care, capacity: 2}\n"
        "  - {id: c, teams: [care], capacity: 2, colour: red}\n"
    )
    assert problems(text) == [
        "a.yaml:2: agent 'a': capacity: Input should be greater than or equal to 0",
        "a.yaml:3: agent 'b': teams: Input should be a valid list",
        "a.yaml:4: agent 'c': colour: Extra inputs are not permitted",
    ]


def test_upper_case_or_long_language_names_are_rejected_as_the_rules_file_does() -> None:
    # An agent who "speaks EN" was never seen speaking an English case ("en").
    assert problems(
        "agents:\n  - {id: zoe, teams: [care], languages: [EN, english], capacity: 5}\n"
    ) == [
        "a.yaml:2: agent 'zoe': languages.0: language 'EN' is not a lower-case ISO 639-1 code"
        " such as 'en': write 'en'",
        "a.yaml:2: agent 'zoe': languages.1: language 'english' is not a lower-case ISO 639-1"
        " code such as 'en'",
    ]


def test_a_team_the_rules_do_not_know_names_the_agent_and_the_team() -> None:
    text = (
        "agents:\n"
        "  - {id: ok, teams: [care], capacity: 1}\n"
        "  - id: zoe\n"
        "    teams: [care, suport]\n"
        "    capacity: 5\n"
    )
    assert problems(text, TEAMS) == [
        "a.yaml:4: agent 'zoe': teams.1: team 'suport' is not in the rules file's teams"
        " (care, shipping): this agent would never get its cases"
    ]
    # Without the rules' teams (no rules file at hand) only the file itself is checked.
    assert [a.id for a in parse_agents(text).agents] == ["ok", "zoe"]


def test_the_model_checks_teams_from_the_validation_context_too() -> None:
    document = {"agents": [{"id": "zoe", "teams": ["suport"], "capacity": 1}]}
    with pytest.raises(ValidationError, match="team 'suport' is not in the rules file's teams"):
        AgentsFile.model_validate(document, context={"known teams": TEAMS})
    assert AgentsFile.model_validate(document).agents[0].teams == ["suport"]


def test_duplicate_ids_and_keys_are_reported_where_they_repeat() -> None:
    text = (
        "agents:\n"
        "  - {id: a, teams: [care], capacity: 2}\n"
        "  - {id: a, teams: [care], capacity: 3}\n"
        "  - {id: b, teams: [care], capacity: 3, capacity: 4}\n"
    )
    assert problems(text) == [
        "a.yaml:3: agent 'a': id: duplicate agent id 'a'",
        "a.yaml:4: key 'capacity' is written twice (YAML keeps only the last)",
    ]
    with pytest.raises(ValidationError, match="duplicate agent id 'a'"):
        AgentsFile.model_validate({"agents": [{"id": "a", "teams": ["care"], "capacity": 1}] * 2})


def test_yaml_words_read_as_booleans_or_numbers_get_a_hint() -> None:
    # `no` is Norwegian; YAML 1.1 reads it, and `off`, as false.
    assert problems("agents:\n  - {id: off, teams: [care], languages: [no], capacity: 1}\n") == [
        "a.yaml:2: agent #1: id: Input should be a valid string"
        " (unquoted, YAML reads off as bool: write 'off')",
        "a.yaml:2: agent #1: languages.0: Input should be a valid string"
        " (unquoted, YAML reads no as bool: write 'no')",
    ]
    quoted = parse_agents(
        "agents:\n  - {id: 'off', teams: [care], languages: ['no'], capacity: 1}\n"
    )
    assert quoted.agents[0].id == "off"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "a.yaml: the agents file is empty: expected `agents: [...]`"),
        ("# nothing yet\n", "a.yaml: the agents file is empty: expected `agents: [...]`"),
        ("- a\n", "a.yaml:1: the agents file must be a mapping: `agents: [...]`"),
        ("agents: {}\n", "a.yaml:1: agents: Input should be a valid list"),
    ],
)
def test_empty_or_misshapen_files(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_yaml_syntax_errors_give_the_line() -> None:
    [problem] = problems("agents:\n  - {id: a, teams: [care], capacity: 2\n")
    assert problem.startswith("a.yaml:3: not valid YAML: ")


def test_load_agents_names_the_line_of_a_byte_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_bytes(b"agents:\n  - {id: caf\xe9, teams: [care], capacity: 2}\n")
    with pytest.raises(AgentsError) as caught:
        load_agents(path)
    assert caught.value.problems == [
        f"{path}:2: not UTF-8 text: invalid continuation byte at byte 13 of the line"
    ]
    with pytest.raises(FileNotFoundError):
        load_agents(tmp_path / "missing.yaml")
