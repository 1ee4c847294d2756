"""`casewire-router`: serve, migrate, and offline tools that need no Kafka and no database."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from casewire_common.messages import CanonicalMessage
from pydantic import ValidationError

from casewire_router.domain.agents_file import parse_agents
from casewire_router.domain.assignment import AgentState
from casewire_router.domain.routing import CaseState, Router
from casewire_router.domain.rules import RulesError, load_rules
from casewire_router.domain.urgency import default_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="casewire-router", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service (settings from CASEWIRE_* env)")
    commands.add_parser("migrate", help="apply pending database migrations")
    check = commands.add_parser("check-rules", help="validate a rules file")
    check.add_argument("file", type=Path)
    route = commands.add_parser("route", help="route canonical messages (JSON lines) offline")
    route.add_argument("--rules", type=Path, required=True)
    route.add_argument("--agents", type=Path)
    route.add_argument("input", nargs="?", default="-", help="a file of JSON lines, or - (stdin)")
    args = parser.parse_args(argv)

    if args.command == "serve":
        from casewire_common.http import serve

        from casewire_router.main import create_app
        from casewire_router.settings import RouterSettings

        settings = RouterSettings()
        serve(create_app(settings), settings.http_host, settings.http_port)
        return 0
    if args.command == "migrate":
        return _migrate()
    if args.command == "check-rules":
        return _check_rules(args.file)
    return _route(args.rules, args.agents, args.input)


def _migrate() -> int:
    from casewire_common.pg import migrate

    from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
    from casewire_router.settings import RouterSettings

    settings = RouterSettings()
    applied = asyncio.run(
        migrate(settings.database_url.get_secret_value(), SCHEMA, MIGRATIONS_PACKAGE)
    )
    print(
        f"router: {len(applied)} migration(s) applied"
        + (f": {', '.join(applied)}" if applied else "")
    )
    return 0


def _check_rules(path: Path) -> int:
    try:
        rules = load_rules(str(path))
    except RulesError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
    except OSError as error:
        print(f"{path}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"{path}: ok, version {rules.version}, {len(rules.spec.rules)} rules")
    return 0


def _lines(source: str) -> Iterator[tuple[int, str]]:
    handle: TextIO = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
    try:
        yield from enumerate(handle, start=1)
    finally:
        if handle is not sys.stdin:
            handle.close()


def _route(rules_path: Path, agents_path: Path | None, source: str) -> int:
    """Route messages in order, threading them into cases as the service would.

    Every agent in the agents file is taken as online with no cases at the start.
    """
    try:
        router = Router(rules=load_rules(str(rules_path)), urgency=default_model())
    except RulesError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    agents: dict[str, AgentState] = {}
    if agents_path is not None:
        for spec in parse_agents(agents_path.read_text("utf-8")).agents:
            agents[spec.id] = AgentState(
                spec.id, list(spec.teams), list(spec.languages), spec.capacity, True, 0, None
            )
    open_cases: dict[str, CaseState] = {}
    rejected = 0
    for number, line in _lines(source):
        if not line.strip():
            continue
        try:
            message = CanonicalMessage.model_validate_json(line)
        except ValidationError as error:
            rejected += 1
            reason = "; ".join(
                f"{'.'.join(map(str, item['loc'])) or '(line)'}: {item['msg']}"
                for item in error.errors()[:3]
            )
            print(f"line {number}: {reason}", file=sys.stderr)
            continue
        decision, _ = router.decide(message)
        outcome = router.route_batch(
            [message], open_cases, agents, new_id=lambda: str(uuid.uuid4()), now=datetime.now(UTC)
        )
        case = open_cases.get(message.conversation_id) or next(iter(outcome.cases.values()), None)
        print(
            json.dumps(
                {
                    "message_id": message.id,
                    "case_key": message.conversation_id,
                    "direction": message.direction,
                    "team": decision.team,
                    "priority": decision.priority,
                    "urgency": decision.urgency.model_dump(),
                    "tags": decision.tags,
                    "matched_rules": decision.matched_rules,
                    "skip": decision.skip,
                    "reply_template": decision.reply_template,
                    "assignee": case.assignee if case is not None else None,
                },
                ensure_ascii=False,
            )
        )
    return 1 if rejected else 0
