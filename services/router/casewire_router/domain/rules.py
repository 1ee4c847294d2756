"""The rules file (DESIGN.md "Rules file"): which team, priority and tags a message gets.

Rules are evaluated in file order; tags accumulate; the most urgent priority wins; the
first rule that names a team decides the team; `stop` ends evaluation. A rule matches
when all of its conditions hold.

The file may also extend the urgency vocabularies (`urgency`, and by signal and language
`vocabulary`) and say what the router does on SLA alerts (`escalation`); see docs/rules.md.
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

from casewire_common.events import ClockName, Priority
from casewire_common.messages import CanonicalMessage, Channel, Platform, Visibility
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from casewire_router.domain.keywords import KeywordMatcher, fold
from casewire_router.domain.yaml_files import (
    CHECKED_BY_CALLER,
    Location,
    YamlFileError,
    dotted,
    validated_file,
)

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


WordsByLanguage = dict[Language, list[Keyword]]


class VocabularyAdditions(BaseModel):
    """Words added to the shipped urgency vocabularies (urgency_vocabulary.yaml), by signal and
    language; crisis words by topic, then language (a new topic weighs W_CRISIS_DEFAULT)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crisis: dict[Name, WordsByLanguage] = Field(default_factory=dict)
    negative: WordsByLanguage = Field(default_factory=dict)
    hostile: WordsByLanguage = Field(default_factory=dict)
    event: WordsByLanguage = Field(default_factory=dict)
    failure: WordsByLanguage = Field(default_factory=dict)
    time: WordsByLanguage = Field(default_factory=dict)


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


class Handoff(BaseModel):
    """When a conversation a chatbot answers (a bot account's, CASEWIRE_ROUTER_HANDOVER_BOT_
    ACCOUNTS) goes to people: a customer message with one of `customer_says`, or a bot
    message with one of `bot_says` (a marker the bot writes when it gives up). Keywords match
    as the rules' do (docs/rules.md, "Keywords")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_says: list[Keyword] = Field(default_factory=list)
    bot_says: list[Keyword] = Field(default_factory=list)


HandoffReason = Literal["customer_asked", "bot_said"]


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int | str
    default_team: Name
    teams: list[Name] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    urgency: UrgencyVocabulary = Field(default_factory=UrgencyVocabulary)
    vocabulary: VocabularyAdditions = Field(default_factory=VocabularyAdditions)
    escalation: list[EscalationRule] = Field(default_factory=list)
    handoff: Handoff = Field(default_factory=Handoff)

    @model_validator(mode="before")
    @classmethod
    def _consistent(cls, data: Any, info: ValidationInfo) -> Any:
        # parse_rules runs the same checks itself, to list each problem with its line.
        if not (info.context or {}).get(CHECKED_BY_CALLER):
            problems = consistency_problems(data)
            if problems:
                raise ValueError("; ".join(f"{dotted(loc)}: {text}" for loc, text in problems))
        return data


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


class RulesError(YamlFileError):
    """A rules file that cannot be used, with every problem found in it."""


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
    reads_text: bool  # it has keywords or a regex: the text decides whether it matches

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
            reads_text=bool(when.any or when.all or when.none or when.regex),
        )

    def matches(self, message: CanonicalMessage, found: set[str], nfkc_text: str) -> bool:
        return self.matches_apart_from_text(message) and self._matches_text(found, nfkc_text)

    def matches_apart_from_text(self, message: CanonicalMessage) -> bool:
        """Platform, channel, visibility, language and author: all but the text."""
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
        if self.authors is None:
            return True
        author = message.author
        names = {author.id.casefold(), (author.handle or "").casefold().lstrip("@")}
        return not names.isdisjoint(self.authors)

    def _matches_text(self, found: set[str], nfkc_text: str) -> bool:
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
        # The `vocabulary` section, each vocabulary's words the languages' in turn: crisis
        # words by topic, the other signals' words by signal.
        added = spec.vocabulary
        self.vocabulary_crisis_words: dict[str, list[str]] = {
            topic: _all_languages(by_language) for topic, by_language in added.crisis.items()
        }
        self.vocabulary_words: dict[str, list[str]] = {
            "negative": _all_languages(added.negative),
            "hostile": _all_languages(added.hostile),
            "event": _all_languages(added.event),
            "failure": _all_languages(added.failure),
            "time": _all_languages(added.time),
        }
        self.escalation: list[EscalationRule] = list(spec.escalation)
        # Every tag a case can get from this file: the label values of the per-tag metrics.
        self.tags: frozenset[str] = frozenset(
            [tag for rule in spec.rules for tag in rule.then.tags]
            + [tag for rule in spec.escalation for tag in rule.then.tags]
        )
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
        self.handoff = spec.handoff
        self._customer_handoff = KeywordMatcher(spec.handoff.customer_says)
        self._bot_handoff = KeywordMatcher(spec.handoff.bot_says)

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

    def reach(self, message: CanonicalMessage) -> tuple[frozenset[str], frozenset[str]]:
        """The teams, and the agents a rule asks for (`assign_to`), that `evaluate` may give
        a message like this one whatever its text says (same platform, channel, visibility,
        language and author): for a text not known yet, such as a transcript read as one."""
        teams: set[str] = set()
        agents: set[str] = set()
        team_certain = agent_certain = False  # a rule that needs no text decided it
        for compiled in self._rules:
            if not compiled.matches_apart_from_text(message):
                continue
            certain, actions = not compiled.reads_text, compiled.rule.then
            if actions.team is not None and not team_certain:
                teams.add(actions.team)
                team_certain = certain
            if actions.assign_to is not None and not agent_certain:
                agents.add(actions.assign_to)
                agent_certain = certain
            if certain and compiled.rule.stop:
                break
        if not team_certain:
            teams.add(self.default_team)
        return frozenset(teams), frozenset(agents)

    def handoff_reason(self, message: CanonicalMessage, folded: str) -> HandoffReason | None:
        """Whether a message of a conversation the chatbot answers hands it to people (the
        `handoff` section): the customer asks for a person, or the bot says it gives up.
        `folded` is the message's text folded (`keywords.fold`)."""
        if message.direction == "inbound":
            return "customer_asked" if self._customer_handoff.find_folded(folded) else None
        return "bot_said" if self._bot_handoff.find_folded(folded) else None

    def escalation_for(
        self, alert: str, clock: str, team: str, priority: Priority
    ) -> EscalationRule | None:
        """The first escalation, in file order, for an SLA alert (`warning` or `breached`)
        on `clock` of a case in `team` at `priority`; None: the alert changes nothing."""
        return next(
            (rule for rule in self.escalation if rule.applies(alert, clock, team, priority)), None
        )


def _all_languages(by_language: WordsByLanguage) -> list[str]:
    return [word for words in by_language.values() for word in words]


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Parse and validate a rules file; RulesError lists every problem, each with its line
    and the rule it is in."""
    spec = validated_file(
        text,
        source,
        RulesFile,
        consistency=consistency_problems,
        entries={"rules": "rule", "escalation": "escalation"},
        what="the rules file",
        shape="`version`, `default_team`, `teams`, `rules`",
        error=RulesError,
    )
    return RuleSet(spec, text)


def load_rules(path: str) -> RuleSet:
    """The rules in a file; its bytes are read as they are (no newline translation), so
    that the version hashes exactly what a watcher of the file sees."""
    return parse_rules(Path(path).read_bytes().decode("utf-8"), path)
