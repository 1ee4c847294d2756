"""`casewire-sla`: serve, migrate, offline tools `check` and `due` (no Kafka, no database),
and `recompute` (open clocks in PostgreSQL under a policy file, no Kafka)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from casewire_common.events import Priority
from casewire_common.messages import Channel, Platform, Visibility
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from casewire_sla.domain.clocks import clocks_at_opening
from casewire_sla.domain.policies import PolicyError, PolicySet, load_policy_file

EXIT_OK = 0
EXIT_REJECTED = 1  # some input lines were rejected (the others were processed)
EXIT_BAD_POLICIES = 2


class CaseOpening(BaseModel):
    """One line of `due` input: a case as it opens."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    case_id: str = Field(min_length=1)
    opened_at: AwareDatetime
    priority: Priority
    team: str = Field(min_length=1)
    platform: Platform
    channel: Channel
    visibility: Visibility
    tags: list[str] = Field(default_factory=list)


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _validation_summary(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        place = ".".join(str(part) for part in item["loc"])
        problems.append(f"{place}: {item['msg']}" if place else item["msg"])
    return "; ".join(problems)


def due_lines(policies: PolicySet, lines: Iterable[str], out: TextIO, err: TextIO) -> int:
    """Write one JSON line per clock that starts at each case opening, per policy that applies
    (its contract, then additive policies in file order); returns lines rejected."""
    rejected = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            opening = CaseOpening.model_validate_json(line)
        except ValidationError as error:
            rejected += 1
            print(f"line {number}: {_validation_summary(error)}", file=err)
            continue
        try:
            starts = clocks_at_opening(policies, opening.case_id, opening, opening.opened_at)
        except ValueError as error:  # e.g. a calendar that never opens again
            rejected += 1
            print(f"line {number}: {error}", file=err)
            continue
        for start in starts:
            row = {
                "case_id": start.case_id,
                "policy": start.policy_id,
                "clock": start.clock,
                "due_at": _instant(start.due_at),
                "warn_at": [_instant(at) for _, at in start.warnings],
            }
            print(json.dumps(row, ensure_ascii=False), file=out)
    return rejected


def _load_or_report(path: Path) -> PolicySet | None:
    try:
        return load_policy_file(path)
    except PolicyError as error:
        for problem in error.errors:
            print(f"{error.source}: {problem}", file=sys.stderr)
        return None


def _check(path: Path) -> int:
    policies = _load_or_report(path)
    if policies is None:
        return EXIT_BAD_POLICIES
    contracts = [p.id for p in policies.policies if not p.additive]
    additive = [p.id for p in policies.policies if p.additive]
    summary = f"{len(policies.policies)} policies: {', '.join(contracts)}"
    if additive:
        summary += f"; additive: {', '.join(additive)}"
    print(f"{path}: ok ({len(policies.calendars)} calendars, {summary})")
    return EXIT_OK


def _due(policies_path: Path, source: str) -> int:
    policies = _load_or_report(policies_path)
    if policies is None:
        return EXIT_BAD_POLICIES
    # Reconfigured rather than wrapped: the tool reads and writes UTF-8 whatever the locale.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8")
    if source == "-":
        if hasattr(sys.stdin, "reconfigure"):
            sys.stdin.reconfigure(encoding="utf-8")
        rejected = due_lines(policies, sys.stdin, sys.stdout, sys.stderr)
    else:
        try:
            with Path(source).open(encoding="utf-8") as handle:
                rejected = due_lines(policies, handle, sys.stdout, sys.stderr)
        except OSError as error:
            print(f"{source}: cannot read: {error.strerror or error}", file=sys.stderr)
            return EXIT_REJECTED
    return EXIT_REJECTED if rejected else EXIT_OK


def _migrate() -> int:
    from casewire_common.pg import migrate

    from casewire_sla.adapters.store import MIGRATIONS, SCHEMA
    from casewire_sla.settings import SlaSettings

    settings = SlaSettings()
    applied = asyncio.run(migrate(settings.database_url.get_secret_value(), SCHEMA, MIGRATIONS))
    print(f"{SCHEMA}: applied {', '.join(applied)}" if applied else f"{SCHEMA}: up to date")
    return EXIT_OK


def _recompute(policies_path: Path, apply: bool) -> int:
    """One JSON line per open clock, old and new due_at; `--apply` writes them back."""
    from casewire_sla.main import offline_clock_service
    from casewire_sla.settings import SlaSettings

    policies = _load_or_report(policies_path)
    if policies is None:
        return EXIT_BAD_POLICIES
    settings = SlaSettings()

    async def run() -> None:
        async with offline_clock_service(settings, policies) as service:
            results = await service.recompute(apply=apply)
        for result in results:
            old = result.clock
            row = {
                "case_id": old.case_id,
                "clock": old.clock,
                "additive": old.additive,
                "started_at": _instant(old.started_at),
                "paused": result.due_at is None,
                "old_policy": old.policy_id,
                "new_policy": result.policy_id,
                "old_due_at": _instant(old.due_at),
                "new_due_at": None if result.due_at is None else _instant(result.due_at),
                "changed": result.changed,
                "case_fields_known": result.case_known,
                "applied": apply,
            }
            print(json.dumps(row, ensure_ascii=False))

    asyncio.run(run())
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="casewire-sla", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service (settings from CASEWIRE_* env)")
    commands.add_parser("migrate", help="apply pending migrations (CASEWIRE_DATABASE_URL)")
    check = commands.add_parser("check", help="validate an SLA policy file")
    check.add_argument("file", type=Path)
    due = commands.add_parser(
        "due", help="case openings (JSON lines) in, one line per clock with its due_at out"
    )
    due.add_argument("--policies", type=Path, required=True, help="SLA policy file")
    due.add_argument("input", nargs="?", default="-", help="JSON lines file, or - for stdin")
    recompute = commands.add_parser(
        "recompute",
        help="re-derive every open clock (CASEWIRE_DATABASE_URL) under a policy file;"
        " one JSON line per clock with old and new due_at",
    )
    recompute.add_argument("--policies", type=Path, required=True, help="SLA policy file")
    recompute.add_argument(
        "--apply", action="store_true", help="write the new due_at and timers (one transaction)"
    )
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.file)
    if args.command == "due":
        return _due(args.policies, args.input)
    if args.command == "recompute":
        return _recompute(args.policies, args.apply)
    if args.command == "migrate":
        return _migrate()
    from casewire_common.http import serve

    from casewire_sla.main import create_app
    from casewire_sla.settings import SlaSettings

    settings = SlaSettings()
    try:
        app = create_app(settings)
    except PolicyError as error:
        for problem in error.errors:
            print(f"{error.source}: {problem}", file=sys.stderr)
        return EXIT_BAD_POLICIES
    serve(app, settings.http_host, settings.http_port)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
