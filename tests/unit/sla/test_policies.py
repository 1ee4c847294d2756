"""SLA policy files: parsing, the errors an operator sees, and first-match selection."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from casewire_sla.domain.policies import (
    PolicyError,
    load_policy_file,
    parse_duration,
    parse_policy_set,
    select_policy,
)

REPO = Path(__file__).resolve().parents[3]

DESIGN_EXAMPLE = """
version: 1
calendars:
  - id: athens-office
    timezone: Europe/Athens
    hours: {mon-fri: ["09:00-13:00", "14:00-18:00"], sat: ["10:00-14:00"]}
    holidays: {country: GR, dates: ["2026-12-24"]}
  - {id: always, always_open: true}
policies:                      # first match wins
  - id: urgent
    match: {priority: [P1]}
    calendar: always
    first_response: 15m
    next_response: 30m
    resolution: 4h
    warn_at: [0.8, 0.5]
  - id: standard
    match: {}
    calendar: athens-office
    first_response: 1h
    resolution: 24h
    pause_on: [pending]
"""


@dataclass(frozen=True)
class Case:
    priority: str = "P3"
    team: str = "care"
    platform: str = "x"
    channel: str = "dm"
    visibility: str = "private"
    tags: list[str] = field(default_factory=list)


def errors_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy_set(text, "test.yaml")
    return caught.value.errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
    ],
)
def test_duration_with_a_unit_parses_to_that_amount(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["15", "15x", "m15", "", "0m", "1.5h", "-5m"])
def test_duration_without_a_valid_unit_or_zero_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|longer than zero"):
        parse_duration(text)


def test_bare_number_duration_is_refused_because_its_unit_is_ambiguous() -> None:
    with pytest.raises(ValueError, match="with a unit"):
        parse_duration(10)


def test_design_example_parses_with_targets_calendars_and_sorted_warnings() -> None:
    policies = parse_policy_set(DESIGN_EXAMPLE)
    urgent, standard = policies.policies
    assert urgent.first_response == timedelta(minutes=15)
    assert urgent.next_response == timedelta(minutes=30)
    assert urgent.resolution == timedelta(hours=4)
    assert urgent.warn_at == [0.5, 0.8]
    assert standard.next_response is None
    assert standard.pause_on == ["pending"]
    assert policies.calendar("athens-office").timezone == "Europe/Athens"
    assert policies.calendar("always").always_open


def test_shipped_default_policy_file_is_valid() -> None:
    policies = load_policy_file(REPO / "config" / "sla-policies.yaml")
    contracts = [policy.id for policy in policies.policies if not policy.additive]
    assert contracts[0] == "urgent"
    assert policies.policies[-1].match.model_dump(exclude_none=True) == {}  # a catch-all
    assert [policy.id for policy in policies.policies if policy.additive] == [
        "public-x-first-reply"
    ]
    assert policies.calendar("athens-office").timezone == "Europe/Athens"


def test_demo_policy_file_used_by_make_run_is_valid() -> None:
    policies = load_policy_file(REPO / "config" / "demo" / "sla-policies.yaml")
    assert policies.policies[-1].match.model_dump(exclude_none=True) == {}


def test_error_names_the_policy_id_and_the_field() -> None:
    errors = errors_of(DESIGN_EXAMPLE.replace("first_response: 15m", "first_response: 15 minutes"))
    assert len(errors) == 1
    assert errors[0].startswith("policy 'urgent': first_response:")
    assert "15 minutes" in errors[0]


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    errors = errors_of(
        DESIGN_EXAMPLE.replace("warn_at: [0.8, 0.5]", "warn_at: [1.5]").replace(
            "first_response: 1h", "first_response: soon"
        )
    )
    assert any(e.startswith("policy 'urgent': warn_at") and "1.5" in e for e in errors)
    assert any(e.startswith("policy 'standard': first_response") for e in errors)


def test_unknown_match_key_is_refused_rather_than_ignored() -> None:
    errors = errors_of(DESIGN_EXAMPLE.replace("match: {priority: [P1]}", "match: {prio: [P1]}"))
    assert errors == ["policy 'urgent': match.prio: Extra inputs are not permitted"]


def test_unknown_priority_in_match_is_refused() -> None:
    errors = errors_of(DESIGN_EXAMPLE.replace("priority: [P1]", "priority: [P0]"))
    assert len(errors) == 1
    assert errors[0].startswith("policy 'urgent': match.priority.0:")


def test_policy_naming_an_undefined_calendar_is_refused() -> None:
    errors = errors_of(DESIGN_EXAMPLE.replace("calendar: always\n", "calendar: nights\n"))
    assert len(errors) == 1
    assert "policy 'urgent': calendar: 'nights' is not defined" in errors[0]


def test_duplicate_policy_ids_are_refused() -> None:
    errors = errors_of(DESIGN_EXAMPLE.replace("id: standard", "id: urgent"))
    assert "policy 'urgent' is defined more than once" in errors[0]


def test_unknown_time_zone_is_refused_naming_the_calendar() -> None:
    errors = errors_of(DESIGN_EXAMPLE.replace("Europe/Athens", "Europe/Atlantis"))
    assert errors == [
        "calendar 'athens-office': timezone 'Europe/Atlantis' is not a known IANA time zone"
    ]


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ('{mon-fri: ["09:00-08:00"]}', "closes before it opens"),
        ('{mon-fri: ["9-17"]}', "is not HH:MM-HH:MM"),
        ('{mon-fri: ["09:00-25:00"]}', "not a valid time of day"),
        ('{mon-fri: ["09:00-13:00", "12:00-18:00"]}', "intervals overlap"),
        ('{funday: ["09:00-13:00"]}', "not a day or day range"),
        ('{"mon-": ["09:00-13:00"]}', "not a day or day range"),
        ('{mon-fri: ["22:00-06:00"]}', "a shift past midnight is two intervals"),
        ('{mon-fri: ["09:00-13:00"], fri: ["14:00-15:00"]}', "fri is given more than once"),
        ("{mon-fri: []}", "never open"),
    ],
)
def test_malformed_opening_hours_are_refused_naming_the_calendar(hours: str, message: str) -> None:
    text = DESIGN_EXAMPLE.replace(
        'hours: {mon-fri: ["09:00-13:00", "14:00-18:00"], sat: ["10:00-14:00"]}',
        f"hours: {hours}",
    )
    errors = errors_of(text)
    assert len(errors) == 1
    assert errors[0].startswith("calendar 'athens-office':")
    assert message in errors[0]


def test_calendar_with_hours_but_no_timezone_is_refused() -> None:
    errors = errors_of(DESIGN_EXAMPLE.replace("    timezone: Europe/Athens\n", ""))
    assert errors[0].startswith("calendar 'athens-office':")
    assert "needs a timezone" in errors[0]


def test_unknown_holiday_country_is_refused() -> None:
    errors = errors_of(DESIGN_EXAMPLE.replace("country: GR", "country: ZZ"))
    assert errors[0].startswith("calendar 'athens-office': holidays")


def test_always_open_calendar_with_hours_is_refused_as_contradictory() -> None:
    errors = errors_of(
        DESIGN_EXAMPLE.replace(
            "{id: always, always_open: true}",
            '{id: always, always_open: true, hours: {mon: ["09:00-10:00"]}}',
        )
    )
    assert errors == [
        "calendar 'always': an always_open calendar cannot also have hours or holidays"
    ]


def test_unreadable_or_non_yaml_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npolicies: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy_file(bad)


SELECTION = """
version: 1
calendars: [{id: always, always_open: true}]
policies:
  - {id: vip-outage, match: {priority: [P1], tags: [vip, outage]}, calendar: always,
     first_response: 5m}
  - {id: urgent, match: {priority: [P1]}, calendar: always, first_response: 15m}
  - {id: public-billing, match: {team: billing, visibility: public, platform: [x, facebook]},
     calendar: always, first_response: 1h}
  - {id: whatsapp-dm, match: {platform: [whatsapp], channel: [dm]}, calendar: always,
     first_response: 2h}
"""


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (Case(priority="P1", tags=["outage"]), "vip-outage"),
        (Case(priority="P1", tags=["other"]), "urgent"),
        (Case(priority="P1"), "urgent"),
        (Case(team="billing", visibility="public", platform="facebook"), "public-billing"),
        (Case(team="billing", visibility="private", platform="facebook"), None),
        (Case(team="billing", visibility="public", platform="instagram"), None),
        (Case(platform="whatsapp", channel="dm"), "whatsapp-dm"),
    ],
)
def test_first_policy_whose_every_condition_holds_is_selected(
    case: Case, expected: str | None
) -> None:
    policies = parse_policy_set(SELECTION).policies
    selected = select_policy(policies, case)
    assert (selected.id if selected else None) == expected


def test_first_match_wins_over_a_later_more_specific_policy() -> None:
    policies = parse_policy_set(DESIGN_EXAMPLE).policies
    assert select_policy(policies, Case(priority="P1")).id == "urgent"  # type: ignore[union-attr]
    assert select_policy(policies, Case(priority="P4")).id == "standard"  # type: ignore[union-attr]


def test_an_undefined_calendar_is_reported_beside_the_files_other_problems() -> None:
    errors = errors_of(
        DESIGN_EXAMPLE.replace("calendar: always", "calendar: nights", 1).replace(
            "first_response: 15m", "first_response: 15 minutes", 1
        )
    )
    assert any("is not a duration" in error for error in errors), errors
    assert any("calendar: 'nights' is not defined" in error for error in errors), errors
