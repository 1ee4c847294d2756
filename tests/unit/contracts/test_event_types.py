"""Every `ce_type` the code can emit is a constant of casewire_common.events, in exactly one of
the groups the published contract (AsyncAPI, JSON Schemas) is generated from."""

from __future__ import annotations

import re
from pathlib import Path

from casewire_common import events as ev
from casewire_dev.contracts import PAYLOADS

ROOT = Path(__file__).resolve().parents[3]
EVENT_TYPE = re.compile(r"^casewire\.(case|incident|sla|router|agent|saved_reply)\.[a-z_]+$")
LITERAL = re.compile(
    r"""["'](casewire\.(?:case|incident|sla|router|agent|saved_reply)\.[a-z_]+)["']"""
)
GROUPS = (
    ev.CASE_EVENT_TYPES,
    ev.INCIDENT_EVENT_TYPES,
    ev.AGENT_EVENT_TYPES,
    ev.SAVED_REPLY_EVENT_TYPES,
    ev.WATERMARK_EVENT_TYPES,
    ev.SLA_EVENT_TYPES,
)


def constants() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(ev).items()
        if name.isupper() and isinstance(value, str) and EVENT_TYPE.match(value)
    }


def test_every_event_type_constant_is_in_exactly_one_group() -> None:
    grouped = [event_type for group in GROUPS for event_type in group]
    assert sorted(grouped) == sorted(set(grouped)), "a type is in two groups"
    assert set(grouped) == set(constants().values())


def test_the_published_contract_lists_every_group() -> None:
    published = {event_type for payload in PAYLOADS for event_type in payload.event_types}
    assert published == {event_type for group in GROUPS for event_type in group}


def test_the_services_write_event_types_only_through_the_constants() -> None:
    definitions = ROOT / "libs" / "common" / "casewire_common" / "events.py"
    found: dict[str, list[str]] = {}
    for folder in ("services", "libs"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == definitions:
                continue
            for literal in LITERAL.findall(path.read_text("utf-8")):
                found.setdefault(literal, []).append(str(path.relative_to(ROOT)))
    assert found == {}, f"use the constants of casewire_common.events: {found}"
