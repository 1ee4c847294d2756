"""SLA policies: which policy a case falls under, and its targets (the YAML of DESIGN.md).

```yaml
version: 1
calendars:
  - {id: always, always_open: true}
  - {id: athens-office, timezone: Europe/Athens,
     hours: {mon-fri: ["09:00-13:00", "14:00-18:00"]}, holidays: {country: GR}}
policies:                      # first match wins, except `additive` ones
  - {id: public-x, match: {platform: [x], visibility: [public]}, calendar: always,
     first_response: 1h, additive: true}
  - {id: urgent, match: {priority: [P1]}, calendar: always, first_response: 15m,
     warn_at: [0.5, 0.8]}
```

The first matching policy that is not `additive` is the case's contract. Every matching
`additive: true` policy applies beside it, wherever it stands in the file, and runs its own
clocks (a channel expectation beside a contract): a P1 public post on X above has two
first_response clocks, 15m under `urgent` and 1h under `public-x`.

Durations are amounts of open calendar time: `30s`, `15m`, `2h`, `1d` (= 24h of open
time), or combined like `1h30m`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, Self

import yaml
from casewire_common.events import CaseStatus, ClockName, Priority
from casewire_common.messages import Channel, Platform, Visibility
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from casewire_sla.domain.calendars import Calendar, due_at, open_time_between, warning_instants

__all__ = [
    "Calendar",
    "CaseFields",
    "Policy",
    "PolicyError",
    "PolicyMatch",
    "PolicySet",
    "due_at",
    "load_policy_file",
    "open_time_between",
    "parse_duration",
    "parse_policy_set",
    "select_additive_policies",
    "select_policy",
    "warning_instants",
]

CLOCKS: tuple[ClockName, ...] = ("first_response", "next_response", "resolution")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: object) -> timedelta:
    """`30s`, `15m`, `2h`, `1d` or a combination such as `1h30m`; always positive."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration: write it with a unit, e.g. 15m, 2h, 1d")
    text = value.strip().lower()
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{value!r} is not a duration: use e.g. 30s, 15m, 2h, 1d or 1h30m")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise ValueError(f"{value!r}: a target must be longer than zero")
    return duration


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _as_list(value: Any) -> Any:
    """`team: billing` reads as `team: [billing]`."""
    return [value] if isinstance(value, str) else value


class PolicyMatch(BaseModel):
    """Conditions on the case; all given ones must hold. `tags` holds when any tag is on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: Annotated[list[Priority] | None, BeforeValidator(_as_list)] = Field(
        default=None, min_length=1
    )
    team: Annotated[list[str] | None, BeforeValidator(_as_list)] = Field(default=None, min_length=1)
    platform: Annotated[list[Platform] | None, BeforeValidator(_as_list)] = Field(
        default=None, min_length=1
    )
    channel: Annotated[list[Channel] | None, BeforeValidator(_as_list)] = Field(
        default=None, min_length=1
    )
    visibility: Annotated[list[Visibility] | None, BeforeValidator(_as_list)] = Field(
        default=None, min_length=1
    )
    tags: Annotated[list[str] | None, BeforeValidator(_as_list)] = Field(default=None, min_length=1)


class Policy(BaseModel):
    """Targets for the cases it matches, counted on one calendar."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    match: PolicyMatch = Field(default_factory=PolicyMatch)
    calendar: str = Field(min_length=1)
    first_response: Duration | None = None
    next_response: Duration | None = None
    resolution: Duration | None = None
    warn_at: list[float] = Field(default_factory=list)
    pause_on: list[CaseStatus] = Field(default_factory=list)
    # Applies beside the contract (the first matching policy that is not additive) instead
    # of competing with it: its clocks run as well as the contract's.
    additive: bool = False

    @model_validator(mode="after")
    def _check_additive_has_a_clock(self) -> Self:
        if self.additive and all(self.target(clock) is None for clock in CLOCKS):
            raise ValueError(
                "an additive policy must set at least one of first_response, next_response,"
                " resolution: without one it would change nothing"
            )
        return self

    @field_validator("warn_at")
    @classmethod
    def _check_warnings(cls, fractions: list[float]) -> list[float]:
        for fraction in fractions:
            if not 0 < fraction < 1:
                raise ValueError(f"{fraction} must be a fraction between 0 and 1")
        if len(set(fractions)) != len(fractions):
            raise ValueError("a fraction is given twice")
        return sorted(fractions)

    def target(self, clock: ClockName) -> timedelta | None:
        target: timedelta | None = getattr(self, clock)
        return target


class PolicySet(BaseModel):
    """A whole policy file: calendars, then policies in match order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1]
    calendars: list[Calendar] = Field(min_length=1)
    policies: list[Policy] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        problems = _reference_problems(
            [calendar.id for calendar in self.calendars],
            [(policy.id, policy.calendar) for policy in self.policies],
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def calendar(self, calendar_id: str) -> Calendar:
        for calendar in self.calendars:
            if calendar.id == calendar_id:
                return calendar
        raise KeyError(calendar_id)

    def find_calendar(self, calendar_id: str) -> Calendar | None:
        try:
            return self.calendar(calendar_id)
        except KeyError:
            return None


def _reference_problems(
    calendar_ids: Sequence[str], policies: Sequence[tuple[str, str]]
) -> list[str]:
    """Ids defined twice, and policies naming a calendar the file does not define."""
    problems = []
    for duplicate in sorted({cid for cid in calendar_ids if calendar_ids.count(cid) > 1}):
        problems.append(f"calendar {duplicate!r} is defined more than once")
    policy_ids = [policy_id for policy_id, _ in policies]
    for duplicate in sorted({pid for pid in policy_ids if policy_ids.count(pid) > 1}):
        problems.append(f"policy {duplicate!r} is defined more than once")
    for policy_id, calendar in policies:
        if calendar not in calendar_ids:
            problems.append(
                f"policy {policy_id!r}: calendar: {calendar!r} is not defined"
                f" (known: {', '.join(calendar_ids)})"
            )
    return problems


def _raw_reference_problems(document: dict[str, Any]) -> list[str]:
    """`_reference_problems` of a file that failed validation elsewhere (pydantic then skips
    the model's own check): read from the raw document, where ids are strings."""
    calendars = document.get("calendars")
    policies = document.get("policies")
    if not isinstance(calendars, list) or not isinstance(policies, list):
        return []
    calendar_ids = [
        c["id"] for c in calendars if isinstance(c, dict) and isinstance(c.get("id"), str)
    ]
    named = [
        (p["id"], p["calendar"])
        for p in policies
        if isinstance(p, dict)
        and isinstance(p.get("id"), str)
        and isinstance(p.get("calendar"), str)
    ]
    return _reference_problems(calendar_ids, named)


class PolicyError(ValueError):
    """A policy file that cannot be used; `errors` names each problem with its place."""

    def __init__(self, source: str, errors: Sequence[str]) -> None:
        self.source = source
        self.errors = list(errors)
        super().__init__(f"{source}: " + "; ".join(self.errors))


class CaseFields(Protocol):
    """What a policy can match on: a case snapshot or a case opening have all of it."""

    @property
    def priority(self) -> str: ...
    @property
    def team(self) -> str: ...
    @property
    def platform(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def visibility(self) -> str: ...
    @property
    def tags(self) -> Sequence[str]: ...


def _matches(match: PolicyMatch, case: CaseFields) -> bool:
    checks: list[tuple[Sequence[str] | None, str]] = [
        (match.priority, case.priority),
        (match.team, case.team),
        (match.platform, case.platform),
        (match.channel, case.channel),
        (match.visibility, case.visibility),
    ]
    if any(allowed is not None and value not in allowed for allowed, value in checks):
        return False
    return match.tags is None or any(tag in match.tags for tag in case.tags)


def select_policy(policies: Sequence[Policy], case: CaseFields) -> Policy | None:
    """The case's contract: the first policy, in file order, that is not additive and whose
    every condition holds for the case."""
    for policy in policies:
        if not policy.additive and _matches(policy.match, case):
            return policy
    return None


def select_additive_policies(policies: Sequence[Policy], case: CaseFields) -> list[Policy]:
    """Every additive policy whose every condition holds for the case, in file order."""
    return [policy for policy in policies if policy.additive and _matches(policy.match, case)]


def _describe(document: Any, loc: tuple[int | str, ...]) -> str:
    """`policy 'urgent': first_response` rather than `policies.0.first_response`."""
    if len(loc) >= 2 and loc[0] in ("policies", "calendars") and isinstance(loc[1], int):
        kind = "policy" if loc[0] == "policies" else "calendar"
        entries = document.get(loc[0]) if isinstance(document, dict) else None
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        name = entry.get("id") if isinstance(entry, dict) else None
        label = f"{kind} {name!r}" if name else f"{kind} #{loc[1] + 1}"
        rest = ".".join(str(part) for part in loc[2:])
        return f"{label}: {rest}" if rest else label
    return ".".join(str(part) for part in loc)


def parse_policy_set(text: str, source: str = "<policies>") -> PolicySet:
    """Parse and validate a policy file; raises PolicyError listing every problem found."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError(source, [f"not valid YAML: {error}"]) from error
    if not isinstance(document, dict):
        raise PolicyError(source, ["the file must be a mapping with version, calendars, policies"])
    try:
        return PolicySet.model_validate(document)
    except ValidationError as error:
        messages = []
        errors = error.errors()
        for item in errors:
            place = _describe(document, tuple(item["loc"]))
            message = item["msg"].removeprefix("Value error, ")
            messages.append(f"{place}: {message}" if place else message)
        if all(item["loc"] for item in errors):  # field errors: the reference check never ran
            messages += _raw_reference_problems(document)
        raise PolicyError(source, messages) from error


def load_policy_file(path: Path) -> PolicySet:
    """Read and validate a policy file (see `parse_policy_set`)."""
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise PolicyError(str(path), [f"cannot read: {error.strerror or error}"]) from error
    return parse_policy_set(text, str(path))
