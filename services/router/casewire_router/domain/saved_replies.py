"""Saved replies (DESIGN.md "Agents (router)"): answers a care team writes once, in each
language it answers in, with placeholders filled in for the customer at hand.

The saved-replies file (CASEWIRE_ROUTER_SAVED_REPLIES) is the GitOps source; leads change
replies day to day through the API (stored in PostgreSQL). While an API version of a reply
exists it is the one in force, the file's entry of the same id is shadowed (`catalogue`); a
rules file's `reply_template` must name a reply of the file (`reply_template_problems`), so
that `check-rules` can tell offline. docs/saved-replies.md says it for operators.

A placeholder is `{name}` with a name of PLACEHOLDERS; `{{` and `}}` write braces. Nothing is
evaluated: no attribute or index access, no conversion or format spec (refused when a reply
is written), values inserted as they are and never parsed again. A value this customer does
not have leaves its placeholder visible (`{customer_name}`) and is listed in `missing`, for the
agent to fill in. Values are bidi-isolated (FSI ... PDI) in right-to-left texts and wherever
they carry right-to-left letters or bidi controls, so that a Latin name or a case id does not
reorder an Arabic sentence, nor an Arabic name an English one; nothing else is added, so a
Thai text (no spaces between words) reads exactly as written around its values.
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from casewire_common.events import ActorRef
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

from casewire_router.domain.agents_file import Language, not_utf8
from casewire_router.domain.case import CaseState
from casewire_router.domain.rules import Name, RulesFile
from casewire_router.domain.yaml_files import (
    CHECKED_BY_CALLER,
    Location,
    YamlFileError,
    dotted,
    located,
    validated_file,
)

PLACEHOLDERS = ("customer_name", "customer_handle", "case_id", "agent_name", "team", "platform")
# Scripts written right to left: every inserted value is isolated in their texts.
RTL_LANGUAGES = frozenset({"ar", "dv", "fa", "he", "ps", "sd", "ug", "ur", "yi"})
MAX_SUGGESTIONS = 10
MAX_TEXT = 5000  # characters of one language's text: longer than any platform's message
FSI, PDI = "\u2068", "\u2069"  # first-strong isolate, pop directional isolate
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_FORMATTER = string.Formatter()  # its parser only: nothing is ever formatted with it
# How a platform is named in a customer-facing text; `other` (a web chat, a CRM) has no name.
PLATFORM_NAMES = {
    "x": "X",
    "facebook": "Facebook",
    "instagram": "Instagram",
    "whatsapp": "WhatsApp",
}

Source = Literal["file", "api"]
SuggestionReason = Literal["rule", "tags", "team"]


class TemplateError(ValueError):
    """A reply text whose braces are not placeholders Casewire fills."""


def template_pieces(text: str) -> list[tuple[str, str | None]]:
    """The text as (literal, placeholder name or None) pairs. TemplateError for a lone brace,
    an unknown name (`{customer_name.__class__}`, `{0}`, `{}`), a conversion or a format spec."""
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as error:
        raise TemplateError(f"{error}: write {{{{ or }}}} for a brace") from None
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and name not in PLACEHOLDERS:
            raise TemplateError(
                f"unknown placeholder {{{name}}}: use {', '.join(f'{{{p}}}' for p in PLACEHOLDERS)}"
                " (or {{ and }} for braces)"
            )
        if name is not None and (spec or conversion):
            raise TemplateError(
                f"placeholder {{{name}}} takes no conversion or format: write {{{name}}}"
            )
        pieces.append((literal, name))
    return pieces


def _valid_template(text: str) -> str:
    template_pieces(text)
    return text


Template = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TEXT), AfterValidator(_valid_template)
]
ReplyId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


class SavedReplyContent(BaseModel):
    """What a reply says, where it is offered: a title, a text per language (ISO 639-1), the
    teams it is for (none: every team) and the tags that make it relevant to a case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=200)
    text: dict[Language, Template] = Field(min_length=1)
    teams: list[Name] = Field(default_factory=list, max_length=100)
    tags: list[Name] = Field(default_factory=list, max_length=100)

    @field_validator("teams", "tags")
    @classmethod
    def _once_each(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(names))

    def for_team(self, team: str) -> bool:
        return not self.teams or team in self.teams


class SavedReply(SavedReplyContent):
    id: ReplyId


class TeamReplies(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_language: Language


class SavedRepliesFile(BaseModel):
    """The saved-replies file: the language a team answers in when the case's is missing, and
    the replies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int | str = 1
    default_language: Language = "en"
    teams: dict[Name, TeamReplies] = Field(default_factory=dict)
    replies: list[SavedReply] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _consistent(cls, data: Any, info: ValidationInfo) -> Any:
        # parse_saved_replies runs the same check itself, to give each problem its line.
        if not (info.context or {}).get(CHECKED_BY_CALLER):
            problems = consistency_problems(data)
            if problems:
                raise ValueError("; ".join(f"{dotted(loc)}: {text}" for loc, text in problems))
        return data


def consistency_problems(document: Any) -> list[tuple[Location, str]]:
    """A reply id used twice, reported at the repeat."""
    replies = document.get("replies") if isinstance(document, dict) else None
    problems: list[tuple[Location, str]] = []
    seen: set[str] = set()
    for index, entry in enumerate(replies if isinstance(replies, list) else []):
        reply_id = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(reply_id, str):
            if reply_id in seen:
                problems.append(
                    (("replies", index, "id"), f"duplicate saved reply id {reply_id!r}")
                )
            seen.add(reply_id)
    return problems


class SavedRepliesError(YamlFileError):
    """A saved-replies file that cannot be used (or does not fit the rules), every problem."""


ENTRIES = {"replies": "saved reply"}


def parse_saved_replies(text: str, source: str = "<saved replies>") -> SavedRepliesFile:
    """Parse and validate a saved-replies file; SavedRepliesError lists every problem as
    `source:line: saved reply 'id': field: problem`."""
    return validated_file(
        text,
        source,
        SavedRepliesFile,
        consistency=consistency_problems,
        entries=ENTRIES,
        what="the saved-replies file",
        shape="`replies: [...]`",
        error=SavedRepliesError,
    )


def load_saved_replies(path: Path | str) -> SavedRepliesFile:
    """The saved replies of a file; one that is not UTF-8 is a SavedRepliesError naming the
    line, one that cannot be read an OSError."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise SavedRepliesError([not_utf8(str(path), error)]) from error
    return parse_saved_replies(text, str(path))


def reply_template_problems(
    rules: RulesFile, reply_ids: Collection[str], replies_source: str
) -> list[tuple[Location, str]]:
    """Rules whose `reply_template` names no reply of the saved-replies file: the agent would
    be offered nothing where the rule promises an answer."""
    return [
        (
            ("rules", index, "then", "reply_template"),
            f"no saved reply {rule.then.reply_template!r} in {replies_source}",
        )
        for index, rule in enumerate(rules.rules)
        if rule.then.reply_template is not None and rule.then.reply_template not in reply_ids
    ]


def rules_fit_replies(
    rules: RulesFile,
    replies: SavedRepliesFile,
    *,
    rules_source: str,
    replies_source: str,
    rules_text: str | None = None,
) -> list[str]:
    """`reply_template_problems` in words, as `check-rules` lists problems: with the rules
    file's lines when its text is at hand (`source:line: rule 'id': then.reply_template: ...`)."""
    problems = reply_template_problems(rules, {r.id for r in replies.replies}, replies_source)
    if rules_text is not None:
        return located(rules_text, rules_source, problems, {"rules": "rule"})
    return [
        f"{rules_source}: rule {rules.rules[int(location[1])].id!r}:"
        f" {dotted(location[2:])}: {message}"
        for location, message in problems
    ]


def unknown_team_warnings(
    replies: SavedRepliesFile, teams: Collection[str]
) -> list[tuple[Location, str]]:
    """Teams the rules do not declare: such a reply is never suggested for them (a warning, not
    an error: a team removed from the rules must not stop the router over a text)."""
    known = set(teams)
    found: list[tuple[Location, str]] = [
        (("teams", team), f"team {team!r} is not in the rules file's teams")
        for team in replies.teams
        if team not in known
    ]
    for index, reply in enumerate(replies.replies):
        found += [
            (
                ("replies", index, "teams", position),
                f"team {team!r} is not in the rules file's teams",
            )
            for position, team in enumerate(reply.teams)
            if team not in known
        ]
    return found


# The catalogue: the file's replies with the API's versions over them.


@dataclass(frozen=True)
class StoredReply:
    """A reply written through the API, and by whom."""

    reply: SavedReply
    updated_by: ActorRef
    updated_at: datetime


@dataclass(frozen=True)
class CatalogueEntry:
    reply: SavedReply
    source: Source
    overrides_file: bool  # an API version shadowing the file's reply of the same id
    updated_by: ActorRef | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Catalogue:
    """The saved replies in force, by id, and the languages the teams answer in."""

    entries: Mapping[str, CatalogueEntry]
    default_language: str
    team_languages: Mapping[str, str]

    def team_language(self, team: str) -> str:
        return self.team_languages.get(team, self.default_language)


def catalogue(file: SavedRepliesFile, api: Iterable[StoredReply]) -> Catalogue:
    """The file's replies, each replaced by its API version when there is one, and the replies
    that exist only through the API; in id order."""
    entries: dict[str, CatalogueEntry] = {
        reply.id: CatalogueEntry(reply, "file", False) for reply in file.replies
    }
    for stored in api:
        entries[stored.reply.id] = CatalogueEntry(
            stored.reply, "api", stored.reply.id in entries, stored.updated_by, stored.updated_at
        )
    return Catalogue(
        entries=dict(sorted(entries.items())),
        default_language=file.default_language,
        team_languages={team: spec.default_language for team, spec in file.teams.items()},
    )


# Rendering.


@dataclass(frozen=True)
class Rendered:
    text: str
    missing: tuple[str, ...]  # placeholders left visible: this customer has no value for them


def render(template: str, values: Mapping[str, str | None], language: str) -> Rendered:
    """The text with each placeholder replaced by its value (see the module's docstring)."""
    rtl = language in RTL_LANGUAGES
    parts: list[str] = []
    missing: list[str] = []
    for literal, name in template_pieces(template):
        parts.append(literal)
        if name is None:
            continue
        value = values.get(name)
        if not value:
            value = f"{{{name}}}"
            if name not in missing:
                missing.append(name)
        parts.append(f"{FSI}{value}{PDI}" if rtl or _needs_isolation(value) else value)
    return Rendered("".join(parts), tuple(missing))


def _needs_isolation(value: str) -> bool:
    return any(
        char in _BIDI_CONTROLS or unicodedata.bidirectional(char) in ("R", "AL") for char in value
    )


def placeholder_values(
    case: CaseState,
    *,
    customer_name: str | None,
    customer_handle: str | None,
    agent_name: str | None,
) -> dict[str, str | None]:
    """What the placeholders stand for in this case's replies."""
    return {
        "customer_name": customer_name,
        "customer_handle": customer_handle,
        "case_id": case.id,
        "agent_name": agent_name,
        "team": case.team,
        "platform": PLATFORM_NAMES.get(case.platform),
    }


# Suggestions.


@dataclass(frozen=True)
class Suggestion:
    reply_id: str
    title: str
    language: str
    in_case_language: bool  # False: the team's default language stood in
    text: str
    missing: tuple[str, ...]
    reason: SuggestionReason  # the rule named it, it shares tags with the case, or the team's


def reply_language(
    reply: SavedReplyContent, case_language: str | None, catalogue: Catalogue, team: str
) -> str | None:
    """The case's language if the reply has it, else the team's default language, else the
    file's; None: the reply has none of them."""
    for language in (case_language, catalogue.team_language(team), catalogue.default_language):
        if language is not None and language in reply.text:
            return language
    return None


def suggestions(
    catalogue: Catalogue,
    case: CaseState,
    values: Mapping[str, str | None],
    limit: int = MAX_SUGGESTIONS,
) -> list[Suggestion]:
    """The replies to offer on a case, rendered: the one the matching rule named
    (`reply_template`) first, then the case team's replies sharing most tags with the case,
    then the team's replies without tags (general ones); each once, at most `limit`."""
    chosen: list[tuple[SavedReply, SuggestionReason]] = []
    template = case.decision.reply_template if case.decision is not None else None
    named = catalogue.entries.get(template) if template is not None else None
    if named is not None:
        chosen.append((named.reply, "rule"))
    tags = set(case.tags)
    team_replies = [
        entry.reply
        for entry in catalogue.entries.values()
        if entry.reply.for_team(case.team) and entry.reply.id != template
    ]
    shared = Counter({reply.id: len(tags & set(reply.tags)) for reply in team_replies})
    chosen += [
        (reply, "tags")
        for reply in sorted(team_replies, key=lambda reply: (-shared[reply.id], reply.id))
        if shared[reply.id]
    ]
    chosen += [(reply, "team") for reply in team_replies if not reply.tags]
    offered: list[Suggestion] = []
    for reply, reason in chosen:
        language = reply_language(reply, case.language, catalogue, case.team)
        if language is None:
            continue
        rendered = render(reply.text[language], values, language)
        offered.append(
            Suggestion(
                reply_id=reply.id,
                title=reply.title,
                language=language,
                in_case_language=language == case.language,
                text=rendered.text,
                missing=rendered.missing,
                reason=reason,
            )
        )
        if len(offered) == limit:
            break
    return offered
