"""Rules file validation: every problem listed, each with its line and rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from casewire_router.domain.rules import RulesError, parse_rules

HEAD = "version: 1\ndefault_team: care\nteams: [care, shipping]\nrules:\n"


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as raised:
        parse_rules(text, "rules.yaml")
    return raised.value.problems


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (  # line 6
            "  - id: bad-regex\n    when: {regex: 'order (#'}\n",
            "rules.yaml:6: rule 'bad-regex': when.regex: invalid regular expression: "
            "missing ), unterminated subpattern at position 6",
        ),
        (
            "  - id: lost\n    when: {any: [x]}\n    then:\n      team: nowhere\n",
            "rules.yaml:8: rule 'lost': then.team: team 'nowhere' is not in teams",
        ),
        (
            "  - id: twice\n  - id: other\n  - id: twice\n",
            "rules.yaml:7: rule 'twice': id: duplicate id 'twice'",
        ),
        (
            "  - id: empty\n    when:\n      any:\n        - ok\n        - 'ـــ'\n",
            "rules.yaml:9: rule 'empty': when.any.1: keyword 'ـــ' folds to nothing"
            " (only accents, tatweel or spaces)",
        ),
        (
            "  - id: typo\n    when: {anyy: [x]}\n",
            "rules.yaml:6: rule 'typo': when.anyy: Extra inputs are not permitted",
        ),
        (
            "  - id: p9\n    then: {priority: P9}\n",
            "rules.yaml:6: rule 'p9': then.priority: Input should be 'P1', 'P2', 'P3' or 'P4'",
        ),
        (
            "  - id: lang\n    when: {languages: [en, EL]}\n",
            "rules.yaml:6: rule 'lang': when.languages.1: String should match pattern '^[a-z]{2}$'",
        ),
        (
            "  - when: {any: [x]}\n",
            "rules.yaml:5: rule #1: id: Field required",
        ),
        (
            "  - id: twice-then\n    then: {team: care}\n    then: {team: shipping}\n",
            "rules.yaml:7: key 'then' is written twice (YAML keeps only the last)",
        ),
    ],
)
def test_each_problem_names_its_line_rule_and_field(body: str, expected: str) -> None:
    assert problems(HEAD + body) == [expected]


def test_escalation_and_urgency_problems_are_located_too() -> None:
    text = (
        HEAD
        + "  - id: a\n"
        + "escalation:\n"
        + "  - id: e\n"
        + "    when: {alerts: [late], teams: [ghosts]}\n"  # line 8
        + "    then: {}\n"
        + "urgency:\n"
        + "  crisis: {outage: ['  ']}\n"  # line 11
    )
    assert problems(text) == [
        "rules.yaml:8: escalation 'e': when.alerts.0: Input should be 'warning' or 'breached'",
        "rules.yaml:8: escalation 'e': when.teams.0: team 'ghosts' is not in teams",
        "rules.yaml:9: escalation 'e': then: an escalation must set at least one of priority,"
        " team, assign_to, tags",
        "rules.yaml:11: urgency.crisis.outage.0: keyword '  ' folds to nothing"
        " (only accents, tatweel or spaces)",
    ]


def test_every_problem_is_listed_in_line_order() -> None:
    text = (
        "version: 1\ndefault_team: nobody\nteams: [care, care]\nrules:\n"
        "  - id: a\n    when: {regex: '('}\n    then: {team: x}\n"
        "  - id: a\n"
    )
    found = problems(text)
    assert [problem.split(":")[1] for problem in found] == ["2", "3", "6", "7", "8"]
    assert "default_team: team 'nobody' is not in teams" in found[0]
    assert "team 'care' is listed 2 times" in found[1]


def test_the_shipped_rules_file_is_valid() -> None:
    shipped = Path(__file__).parents[3] / "config" / "rules.yaml"
    rules = parse_rules(shipped.read_text("utf-8"), str(shipped))
    assert rules.spec.rules
