"""The rules file (DESIGN.md "Rules file"): which team, priority and tags a message gets.

Rules are evaluated in file order; tags accumulate; the most urgent priority wins; the
first rule that names a team decides the team; `stop` ends evaluation. A rule matches
when all of its conditions hold.

The file may also extend the urgency vocabularies (`urgency`) and say what the router does
on SLA alerts (`escalation`); see docs/rules.md.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from casewire_common.events import ClockName, Priority
from casewire_common.messages import CanonicalMessage, Channel, Platform, Visibility
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from casewire_router.domain.keywords import KeywordMatcher, fold

PRIORITY_ORDER: dict[Priority, int] = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}

AlertKind = Literal["warning", "breached"]
_BREACHED_ONLY: list[AlertKind] = ["breached"]  # escalations act on breaches unless told


def most_urgent(*priorities: Priority | None) -> Priority | None:
    best: Priority | None = None
    for priority in priorities:
        if priority is not None and (
            best is None or PRIORITY_ORDER[priority] < PRIORITY_ORDER[best]
        ):
            best = priority
    return best


def _folds_to_something(keyword: str) -> str:
    """A keyword that folds to nothing (only accents, tatweel, spaces) would never match."""
    if not fold(keyword).strip():
        raise ValueError(f"keyword {keyword!r} folds to nothing (only accents, tatweel or spaces)")
    return keyword


Keyword = Annotated[str, AfterValidator(_folds_to_something)]
Name = Annotated[str, StringConstraints(min_length=1)]
# Messages carry ISO 639-1 codes in lower case; a rule written "EN" would never match.
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]


class Conditions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    any: list[Keyword] = Field(default_factory=list)
    all: list[Keyword] = Field(default_factory=list)
    none: list[Keyword] = Field(default_factory=list)
    regex: str | None = None
    platforms: list[Platform] | None = None
    channels: list[Channel] | None = None
    visibility: list[Visibility] | Visibility | None = None
    languages: list[Language] | None = None
    min_followers: int | None = Field(default=None, ge=0)
    verified: bool | None = None
    authors: list[Name] | None = None

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
    tags: list[Name] = Field(default_factory=list)
    reply_template: Name | None = None
    assign_to: Name | None = None
    skip: bool = False


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Name
    when: Conditions = Field(default_factory=Conditions)
    then: Actions = Field(default_factory=Actions)
    stop: bool = False


class UrgencyVocabulary(BaseModel):
    """Words added to the shipped urgency vocabularies (crisis words by topic)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crisis: dict[Name, list[Keyword]] = Field(default_factory=dict)
    negative: list[Keyword] = Field(default_factory=list)


class EscalationWhen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alerts: list[AlertKind] = Field(default_factory=lambda: _BREACHED_ONLY.copy(), min_length=1)
    clocks: list[ClockName] | None = None
    priorities: list[Priority] | None = None
    teams: list[str] | None = None


class EscalationThen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    priority: Priority | None = None
    team: str | None = None
    assign_to: Name | None = None
    tags: list[Name] = Field(default_factory=list)

    @model_validator(mode="after")
    def _does_something(self) -> Self:
        if self.priority is None and self.team is None and self.assign_to is None and not self.tags:
            raise ValueError(
                "an escalation must set at least one of priority, team, assign_to, tags"
            )
        return self


class EscalationRule(BaseModel):
    """What the router does to a case when an SLA alert about it matches `when`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Name
    when: EscalationWhen = Field(default_factory=EscalationWhen)
    then: EscalationThen

    def applies(self, alert: str, clock: str, team: str, priority: Priority) -> bool:
        when = self.when
        return (
            alert in when.alerts
            and (when.clocks is None or clock in when.clocks)
            and (when.priorities is None or priority in when.priorities)
            and (when.teams is None or team in when.teams)
        )


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int | str
    default_team: Name
    teams: list[Name] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    urgency: UrgencyVocabulary = Field(default_factory=UrgencyVocabulary)
    escalation: list[EscalationRule] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _consistent(cls, data: Any, info: ValidationInfo) -> Any:
        # parse_rules runs the same checks itself, to list each problem with its line.
        if not (info.context or {}).get(_CHECKED_BY_CALLER):
            problems = consistency_problems(data)
            if problems:
                raise ValueError("; ".join(f"{_dotted(loc)}: {text}" for loc, text in problems))
        return data


Location = tuple[str | int, ...]
_CHECKED_BY_CALLER = "consistency checked by the caller"


def consistency_problems(document: Any) -> list[tuple[Location, str]]:
    """What field types cannot say: teams that are not declared, ids used twice. Works on the
    raw document too, so that these problems are listed alongside type errors."""
    if not isinstance(document, dict):
        return []
    problems: list[tuple[Location, str]] = []
    teams_field = document.get("teams")
    team_names = (
        [t for t in teams_field if isinstance(t, str)] if isinstance(teams_field, list) else []
    )
    teams = set(team_names)
    default_team = document.get("default_team")
    if isinstance(default_team, str) and teams and default_team not in teams:
        problems.append((("default_team",), f"team {default_team!r} is not in teams"))
    for name, count in Counter(team_names).items():
        if count > 1:
            problems.append((("teams",), f"team {name!r} is listed {count} times"))
    for section in ("rules", "escalation"):
        entries = document.get(section)
        if not isinstance(entries, list):
            continue
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            entry_id = entry.get("id")
            if isinstance(entry_id, str):
                if entry_id in seen:
                    problems.append(((section, index, "id"), f"duplicate id {entry_id!r}"))
                seen.add(entry_id)
            when, then = entry.get("when"), entry.get("then")
            if isinstance(then, dict):
                team = then.get("team")
                if isinstance(team, str) and teams and team not in teams:
                    problems.append(
                        ((section, index, "then", "team"), f"team {team!r} is not in teams")
                    )
            if section == "escalation" and isinstance(when, dict):
                when_teams = when.get("teams")
                for position, team in enumerate(when_teams if isinstance(when_teams, list) else []):
                    if isinstance(team, str) and teams and team not in teams:
                        problems.append(
                            (
                                (section, index, "when", "teams", position),
                                f"team {team!r} is not in teams",
                            )
                        )
    return problems


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


def _folded_set(keywords: Iterable[str]) -> frozenset[str]:
    return frozenset(fold(keyword).strip() for keyword in keywords)


def _optional_set(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    any: frozenset[str]
    all: frozenset[str]
    none: frozenset[str]
    regex: re.Pattern[str] | None
    platforms: frozenset[str] | None
    channels: frozenset[str] | None
    visibility: frozenset[str] | None
    languages: frozenset[str] | None
    authors: frozenset[str] | None

    @classmethod
    def of(cls, rule: Rule) -> _CompiledRule:
        when = rule.when
        visibility = [when.visibility] if isinstance(when.visibility, str) else when.visibility
        return cls(
            rule=rule,
            any=_folded_set(when.any),
            all=_folded_set(when.all),
            none=_folded_set(when.none),
            regex=re.compile(when.regex) if when.regex else None,
            platforms=_optional_set(when.platforms),
            channels=_optional_set(when.channels),
            visibility=_optional_set(visibility),
            languages=_optional_set(when.languages),
            authors=_optional_set(
                None if when.authors is None else (a.casefold().lstrip("@") for a in when.authors)
            ),
        )

    def matches(self, message: CanonicalMessage, found: set[str], nfkc_text: str) -> bool:
        if self.platforms is not None and message.platform not in self.platforms:
            return False
        if self.channels is not None and message.channel not in self.channels:
            return False
        if self.visibility is not None and message.visibility not in self.visibility:
            return False
        if self.languages is not None and message.language not in self.languages:
            return False
        when = self.rule.when
        if when.min_followers is not None and (message.author.followers or 0) < when.min_followers:
            return False
        if when.verified is not None and bool(message.author.verified) != when.verified:
            return False
        if self.authors is not None and not (
            {message.author.id.casefold(), (message.author.handle or "").casefold().lstrip("@")}
            & self.authors
        ):
            return False
        if self.any and self.any.isdisjoint(found):
            return False
        if self.all and not self.all <= found:
            return False
        if self.none and not self.none.isdisjoint(found):
            return False
        return self.regex is None or self.regex.search(nfkc_text) is not None


class RuleSet:
    """A validated rules file, compiled once: one keyword automaton for all its rules, and
    an index from keyword to the rules that need it, so that a message is checked only
    against the rules it could match (plus those without `any`/`all` keywords)."""

    def __init__(self, spec: RulesFile, source_text: str = "") -> None:
        self.spec = spec
        self.source_digest = hashlib.sha256(source_text.encode()).hexdigest() if source_text else ""
        self.version = f"{spec.version}:{self.source_digest[:12] or 'inline'}"
        self.default_team = spec.default_team
        self.teams = list(spec.teams)
        self.extra_crisis_words: dict[str, list[str]] = {
            topic: list(words) for topic, words in spec.urgency.crisis.items()
        }
        self.extra_negative_words: list[str] = list(spec.urgency.negative)
        self.escalation: list[EscalationRule] = list(spec.escalation)
        self._rules = [_CompiledRule.of(rule) for rule in spec.rules]
        self._matcher = KeywordMatcher(
            keyword
            for compiled in self._rules
            for keyword in (*compiled.any, *compiled.all, *compiled.none)
        )
        self.keywords = len(self._matcher.keywords)
        # A rule with positive keywords matches only if one of them was found: it is indexed
        # under each of them. The others are candidates for every message.
        by_keyword: dict[str, list[int]] = {}
        unkeyed: list[int] = []
        for index, compiled in enumerate(self._rules):
            positive = compiled.any | compiled.all
            if not positive:
                unkeyed.append(index)
            for keyword in positive:
                by_keyword.setdefault(keyword, []).append(index)
        self._by_keyword = {keyword: tuple(indices) for keyword, indices in by_keyword.items()}
        self._unkeyed = tuple(unkeyed)

    def candidates(self, found: Iterable[str]) -> Sequence[int]:
        """Indices, in file order, of the rules that can match a text in which `found`
        are the keywords: the cost follows what was found, not the number of rules."""
        indices = set(self._unkeyed)
        for keyword in found:
            indices.update(self._by_keyword.get(keyword, ()))
        return sorted(indices)

    def evaluate(self, message: CanonicalMessage, folded: str | None = None) -> RuleOutcome:
        """What the rules decide for `message`; `folded` is its text already folded (see
        `keywords.fold`), if the caller has it."""
        found = self._matcher.find_folded(fold(message.text) if folded is None else folded)
        nfkc_text: str | None = None
        team: str | None = None
        priority: Priority | None = None
        tags: list[str] = []
        matched: list[str] = []
        skip = False
        reply_template: str | None = None
        assign_to: str | None = None
        for index in self.candidates(found):
            compiled = self._rules[index]
            if compiled.regex is not None and nfkc_text is None:
                # Regexes search the NFKC text, not case-folded: a rule writes (?i) for that.
                nfkc_text = unicodedata.normalize("NFKC", message.text)
            if not compiled.matches(message, found, nfkc_text or ""):
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

    def escalation_for(
        self, alert: str, clock: str, team: str, priority: Priority
    ) -> EscalationRule | None:
        """The first escalation, in file order, for an SLA alert (`warning` or `breached`)
        on `clock` of a case in `team` at `priority`; None: the alert changes nothing."""
        return next(
            (rule for rule in self.escalation if rule.applies(alert, clock, team, priority)), None
        )


def _dotted(location: Location) -> str:
    return ".".join(str(part) for part in location)


def compose_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (with line marks) and the document built from it, from one parse
    (with libyaml when PyYAML has it: ten times faster on a file of thousands of rules)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def yaml_node_at(root: yaml.Node | None, location: Location) -> yaml.Node | None:
    """The deepest node on `location`'s path; parts that name no node (pydantic's union
    branches, a missing field) are passed over, leaving the nearest enclosing node."""
    node = root
    for part in location:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next(
                (value for key, value in node.value if getattr(key, "value", None) == str(part)),
                None,
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if 0 <= part < len(node.value) else None
        if child is not None:
            node = child
    return node


def duplicate_keys(node: yaml.Node | None) -> list[tuple[yaml.Node, str]]:
    """Keys written twice in one mapping: YAML keeps the last silently, hiding the first."""
    found: list[tuple[yaml.Node, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(getattr(key, "value", ""))
            if name in seen:
                found.append((key, f"key {name!r} is written twice (YAML keeps only the last)"))
            seen.add(name)
            found.extend(duplicate_keys(value))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found.extend(duplicate_keys(item))
    return found


def _entry_label(document: Any, location: Location) -> str:
    """`rule 'id'` or `escalation 'id'` for a location inside one, else ''."""
    if len(location) < 2 or location[0] not in ("rules", "escalation"):
        return ""
    entries = document.get(location[0]) if isinstance(document, dict) else None
    index = location[1]
    kind = "rule" if location[0] == "rules" else "escalation"
    if not isinstance(entries, list) or not isinstance(index, int) or index >= len(entries):
        return ""
    entry = entries[index]
    entry_id = entry.get("id") if isinstance(entry, dict) else None
    return f"{kind} {entry_id!r}" if isinstance(entry_id, str) else f"{kind} #{index + 1}"


def _problem(
    source: str, root: yaml.Node | None, document: Any, location: Location, message: str
) -> str:
    node = yaml_node_at(root, location)
    line = f":{node.start_mark.line + 1}" if node is not None else ""
    label = _entry_label(document, location)
    inner = location[2:] if label else location
    where = "".join(f"{part}: " for part in (label, _dotted(inner)) if part)
    return f"{source}{line}: {where}{message.removeprefix('Value error, ')}"


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Parse and validate a rules file; RulesError lists every problem, each with its line
    and the rule it is in."""
    try:
        root, document = compose_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise RulesError([f"{where}: not valid YAML: {error}"]) from error
    if not isinstance(document, dict):
        raise RulesError([f"{source}:1: the rules file must be a mapping"])
    problems: list[tuple[int, str]] = []

    def add(location: Location, message: str) -> None:
        node = yaml_node_at(root, location)
        order = node.start_mark.line if node is not None else 0
        problems.append((order, _problem(source, root, document, location, message)))

    for key, message in duplicate_keys(root):
        problems.append((key.start_mark.line, f"{source}:{key.start_mark.line + 1}: {message}"))
    spec: RulesFile | None = None
    try:
        spec = RulesFile.model_validate(document, context={_CHECKED_BY_CALLER: True})
    except ValidationError as error:
        for item in error.errors():
            add(tuple(item["loc"]), item["msg"])
    for location, message in consistency_problems(document):
        add(location, message)
    if problems or spec is None:
        raise RulesError([problem for _, problem in sorted(problems, key=lambda p: p[0])])
    return RuleSet(spec, text)


def load_rules(path: str) -> RuleSet:
    """The rules in a file; its bytes are read as they are (no newline translation), so
    that the version hashes exactly what a watcher of the file sees."""
    return parse_rules(Path(path).read_bytes().decode("utf-8"), path)
