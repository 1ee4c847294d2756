"""The rules file (DESIGN.md "Rules file"): which team, priority and tags a message gets.

Rules are evaluated in file order; tags accumulate; the most urgent priority wins; the
first rule that names a team decides the team; `stop` ends evaluation. A rule matches
when all of its conditions hold.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Self

import yaml
from casewire_common.events import Priority
from casewire_common.messages import CanonicalMessage, Channel, Platform, Visibility
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from casewire_router.domain.keywords import KeywordMatcher, fold

PRIORITY_ORDER: dict[Priority, int] = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


def most_urgent(*priorities: Priority | None) -> Priority | None:
    best: Priority | None = None
    for priority in priorities:
        if priority is not None and (
            best is None or PRIORITY_ORDER[priority] < PRIORITY_ORDER[best]
        ):
            best = priority
    return best


class Conditions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    any: list[str] = Field(default_factory=list)
    all: list[str] = Field(default_factory=list)
    none: list[str] = Field(default_factory=list)
    regex: str | None = None
    platforms: list[Platform] | None = None
    channels: list[Channel] | None = None
    visibility: list[Visibility] | Visibility | None = None
    languages: list[str] | None = None
    min_followers: int | None = Field(default=None, ge=0)
    verified: bool | None = None
    authors: list[str] | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"invalid regular expression: {error}") from error
        return value


class Actions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    team: str | None = None
    priority: Priority | None = None
    tags: list[str] = Field(default_factory=list)
    reply_template: str | None = None
    assign_to: str | None = None
    skip: bool = False


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    when: Conditions = Field(default_factory=Conditions)
    then: Actions = Field(default_factory=Actions)
    stop: bool = False


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int | str
    default_team: str
    teams: list[str] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.default_team not in self.teams:
            raise ValueError(f"default_team {self.default_team!r} is not in teams")
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule {rule.id!r}: duplicate rule id")
            seen.add(rule.id)
            if rule.then.team is not None and rule.then.team not in self.teams:
                raise ValueError(f"rule {rule.id!r}: team {rule.then.team!r} is not in teams")
        return self


class RulesError(ValueError):
    """A rules file that cannot be used, with every problem found in it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class RuleOutcome:
    """What the rules decided for one message."""

    team: str
    priority: Priority | None
    tags: list[str]
    matched_rules: list[str]
    skip: bool
    reply_template: str | None
    assign_to: str | None


@dataclass
class _CompiledRule:
    rule: Rule
    any: frozenset[str]
    all: frozenset[str]
    none: frozenset[str]
    regex: re.Pattern[str] | None
    visibility: frozenset[str] | None
    authors: frozenset[str] | None = field(default=None)


class RuleSet:
    """A validated rules file, compiled once: one keyword automaton for all its rules."""

    def __init__(self, spec: RulesFile, source_text: str = "") -> None:
        self.spec = spec
        digest = hashlib.sha256(source_text.encode()).hexdigest()[:12] if source_text else "inline"
        self.version = f"{spec.version}:{digest}"
        self.default_team = spec.default_team
        self.teams = list(spec.teams)
        keywords = [
            keyword
            for rule in spec.rules
            for keyword in (*rule.when.any, *rule.when.all, *rule.when.none)
        ]
        self._matcher = KeywordMatcher(keywords)
        self._rules = [
            _CompiledRule(
                rule=rule,
                any=frozenset(fold(k).strip() for k in rule.when.any),
                all=frozenset(fold(k).strip() for k in rule.when.all),
                none=frozenset(fold(k).strip() for k in rule.when.none),
                regex=re.compile(rule.when.regex) if rule.when.regex else None,
                visibility=(
                    frozenset([rule.when.visibility])
                    if isinstance(rule.when.visibility, str)
                    else frozenset(rule.when.visibility)
                    if rule.when.visibility is not None
                    else None
                ),
                authors=(
                    frozenset(a.casefold().lstrip("@") for a in rule.when.authors)
                    if rule.when.authors is not None
                    else None
                ),
            )
            for rule in spec.rules
        ]
        self._has_regex = any(compiled.regex is not None for compiled in self._rules)

    def evaluate(self, message: CanonicalMessage, folded: str | None = None) -> RuleOutcome:
        """What the rules decide for `message`; `folded` is its text already folded (see
        `keywords.fold`), if the caller has it."""
        found = self._matcher.find_folded(fold(message.text) if folded is None else folded)
        # Regexes search the NFKC text, not case-folded: a rule writes (?i) when it wants that.
        nfkc_text = unicodedata.normalize("NFKC", message.text) if self._has_regex else ""
        team: str | None = None
        priority: Priority | None = None
        tags: list[str] = []
        matched: list[str] = []
        skip = False
        reply_template: str | None = None
        assign_to: str | None = None
        for compiled in self._rules:
            if not _matches(compiled, message, found, nfkc_text):
                continue
            actions = compiled.rule.then
            matched.append(compiled.rule.id)
            if team is None and actions.team is not None:
                team = actions.team
            priority = most_urgent(priority, actions.priority)
            tags.extend(tag for tag in actions.tags if tag not in tags)
            skip = skip or actions.skip
            reply_template = reply_template or actions.reply_template
            assign_to = assign_to or actions.assign_to
            if compiled.rule.stop:
                break
        return RuleOutcome(
            team=team or self.default_team,
            priority=priority,
            tags=tags,
            matched_rules=matched,
            skip=skip,
            reply_template=reply_template,
            assign_to=assign_to,
        )


def _matches(
    compiled: _CompiledRule,
    message: CanonicalMessage,
    found: set[str],
    nfkc_text: str,
) -> bool:
    when = compiled.rule.when
    if when.platforms is not None and message.platform not in when.platforms:
        return False
    if when.channels is not None and message.channel not in when.channels:
        return False
    if compiled.visibility is not None and message.visibility not in compiled.visibility:
        return False
    if when.languages is not None and message.language not in when.languages:
        return False
    if when.min_followers is not None and (message.author.followers or 0) < when.min_followers:
        return False
    if when.verified is not None and bool(message.author.verified) != when.verified:
        return False
    if compiled.authors is not None and not (
        {message.author.id.casefold(), (message.author.handle or "").casefold().lstrip("@")}
        & compiled.authors
    ):
        return False
    if compiled.any and not (compiled.any & found):
        return False
    if compiled.all and not compiled.all <= found:
        return False
    if compiled.none and compiled.none & found:
        return False
    return compiled.regex is None or compiled.regex.search(nfkc_text) is not None


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Parse and validate a rules file; RulesError lists every problem with where it is."""
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise RulesError([f"{where}: not valid YAML: {error}"]) from error
    if not isinstance(document, dict):
        raise RulesError([f"{source}: the rules file must be a mapping"])
    try:
        spec = RulesFile.model_validate(document)
    except ValidationError as error:
        raise RulesError([_describe(source, document, item) for item in error.errors()]) from error
    return RuleSet(spec, text)


def _describe(source: str, document: dict[str, Any], item: Any) -> str:
    location = list(item["loc"])
    where = ".".join(str(part) for part in location)
    if len(location) >= 2 and location[0] == "rules" and isinstance(location[1], int):
        rules = document.get("rules") or []
        if location[1] < len(rules) and isinstance(rules[location[1]], dict):
            rule_id = rules[location[1]].get("id", f"#{location[1] + 1}")
            where = f"rule {rule_id!r}: " + ".".join(str(part) for part in location[2:])
    return f"{source}: {where}: {item['msg']}"


def load_rules(path: str) -> RuleSet:
    with open(path, encoding="utf-8") as handle:
        return parse_rules(handle.read(), path)
