"""`casewire-router`: serve, migrate, and offline tools that need no Kafka and no database."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from casewire_common.messages import CanonicalMessage
from pydantic import ValidationError

from casewire_router.adapters.memory import InMemoryMessageStore
from casewire_router.domain.agents_file import AgentsError, AgentsFile, load_agents, not_utf8
from casewire_router.domain.assignment import AgentState
from casewire_router.domain.routing import CaseRouter, case_router_for
from casewire_router.domain.rules import RulesError, RuleSet, load_rules, parse_rules
from casewire_router.domain.saved_replies import (
    SavedRepliesError,
    SavedRepliesFile,
    load_saved_replies,
    rules_fit_replies,
    unknown_team_warnings,
)
from casewire_router.domain.yaml_files import dotted
from casewire_router.settings import SAVED_REPLIES_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="casewire-router", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service (settings from CASEWIRE_* env)")
    commands.add_parser("migrate", help="apply pending database migrations")
    check = commands.add_parser(
        "check-rules", help="validate a rules file, and the saved replies its rules name"
    )
    check.add_argument("file", type=Path)
    check.add_argument(
        "--saved-replies",
        type=Path,
        help="the saved-replies file (default: CASEWIRE_ROUTER_SAVED_REPLIES, else"
        f" {SAVED_REPLIES_FILE} when it exists)",
    )
    route = commands.add_parser("route", help="route canonical messages (JSON lines) offline")
    route.add_argument("--rules", type=Path, required=True)
    route.add_argument("--agents", type=Path)
    route.add_argument("input", nargs="?", default="-", help="a file of JSON lines, or - (stdin)")
    report = commands.add_parser(
        "report", help="care-team figures per team and agent (reads CASEWIRE_DATABASE_URL)"
    )
    report.add_argument("--since", type=_instant, help="cases opened at or after (ISO 8601)")
    report.add_argument("--until", type=_instant, help="cases opened before (ISO 8601)")
    report.add_argument("--team", help="only this team's cases")
    report.add_argument(
        "--by",
        type=_breakdowns,
        default=None,
        metavar="team|agent|tag|platform|language",
        help="rows besides the overall one, comma-separated (default: team,agent)",
    )
    report.add_argument("--daily", action="store_true", help="one report per UTC day")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
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
        return _check_rules(args.file, args.saved_replies)
    if args.command == "report":
        return _report(
            ReportRequest(args.since, args.until, args.team, args.by, args.daily, args.format)
        )
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


def _instant(text: str) -> datetime:
    """An ISO 8601 date or date-time; without a zone it is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date or date-time: {text!r} (e.g. 2026-11-01 or 2026-11-01T09:00Z)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _breakdowns(text: str) -> tuple[str, ...]:
    """`team,tag`: the report's breakdowns, in order, each once."""
    from casewire_router.adapters.report import DIMENSIONS

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DIMENSIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"not a breakdown: {', '.join(unknown) or repr(text)} (one or more of"
            f" {', '.join(DIMENSIONS)}, comma-separated)"
        )
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class ReportRequest:
    since: datetime | None
    until: datetime | None
    team: str | None
    by: tuple[str, ...] | None
    daily: bool
    form: str


def _report(request: ReportRequest) -> int:
    """Read-only figures over the router's database; exit 2 when it cannot be read."""
    import asyncpg

    from casewire_router.adapters import report as care_report
    from casewire_router.settings import RouterSettings

    since, until, team = request.since, request.until, request.team
    if since is not None and until is not None and since >= until:
        print("--since must be before --until", file=sys.stderr)
        return 2
    by: tuple[care_report.Dimension, ...] = care_report.DEFAULT_BY
    if request.by is not None:
        by = tuple(d for d in care_report.DIMENSIONS if d in request.by)
        by = tuple(sorted(by, key=request.by.index))

    async def run() -> str:
        connection = await asyncpg.connect(RouterSettings().database_url.get_secret_value())
        try:
            if request.daily:
                reports = await care_report.build_daily_reports(
                    connection, since=since, until=until, team=team, by=by
                )
            else:
                reports = [
                    await care_report.build_report(
                        connection, since=since, until=until, team=team, by=by
                    )
                ]
        finally:
            await connection.close()
        if request.form == "csv":
            return care_report.render_csv(reports, daily=request.daily)
        if request.form == "json":
            body: dict[str, Any] = (
                {
                    "since": since.isoformat() if since else None,
                    "until": until.isoformat() if until else None,
                    "team": team,
                    "days": [
                        {"day": r.since.date().isoformat() if r.since else None, **r.as_dict()}
                        for r in reports
                    ],
                }
                if request.daily
                else reports[0].as_dict()
            )
            return json.dumps(body, ensure_ascii=False, indent=2) + "\n"
        if request.daily:
            return care_report.render_daily_table(reports, since, until, team)
        return care_report.render_table(reports[0])

    try:
        sys.stdout.write(asyncio.run(run()))
    except (
        care_report.ReportError,
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as error:
        print(f"report: {error}", file=sys.stderr)
        return 2
    return 0


def _check_rules(path: Path, replies_path: Path | None) -> int:
    """Every problem of a rules file and of the saved-replies file on stderr (file:line, rule
    or reply, field), then every rule naming a reply the file lacks; exit 1 if any. Saved
    replies for teams the rules do not declare are warnings (never offered there)."""
    explicit = replies_path is not None
    if replies_path is None:
        configured = os.environ.get("CASEWIRE_ROUTER_SAVED_REPLIES")
        replies_path = Path(configured) if configured else SAVED_REPLIES_FILE
        explicit = bool(configured)
    try:
        text = path.read_bytes().decode("utf-8")
        rules = parse_rules(text, str(path))
    except RulesError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(f"{path}: {len(error.problems)} problem(s)", file=sys.stderr)
        return 1
    except UnicodeDecodeError as error:
        print(f"{path}: not UTF-8 text: {error.reason} at byte {error.start}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"{path}: {error.strerror}", file=sys.stderr)
        return 1
    replies: SavedRepliesFile | None = None
    if explicit or replies_path.exists():
        try:
            replies = load_saved_replies(replies_path)
        except SavedRepliesError as error:
            for problem in error.problems:
                print(problem, file=sys.stderr)
            print(f"{replies_path}: {len(error.problems)} problem(s)", file=sys.stderr)
            return 1
        except OSError as error:
            print(f"{replies_path}: {error.strerror}", file=sys.stderr)
            return 1
    problems = rules_fit_replies(
        rules.spec,
        replies or SavedRepliesFile(),
        rules_source=str(path),
        replies_source=str(replies_path) if replies else f"no saved-replies file ({replies_path})",
        rules_text=text,
    )
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    handoff = len(rules.handoff.customer_says) + len(rules.handoff.bot_says)
    print(
        f"{path}: ok, {len(rules.spec.rules)} rules, {rules.keywords} keywords,"
        f" {len(rules.escalation)} escalations,"
        + (f" {handoff} handoff keywords," if handoff else "")
        + f" version {rules.version}"
    )
    if replies is not None:
        warnings = unknown_team_warnings(replies, rules.teams)
        for location, warning in warnings:
            print(f"{replies_path}: warning: {dotted(location)}: {warning}", file=sys.stderr)
        print(f"{replies_path}: ok, {len(replies.replies)} saved replies")
    return 0


EXIT_OK = 0
EXIT_REJECTED = 1  # some input lines were rejected (the others were routed)
EXIT_BAD_SETUP = 2  # the rules or agents file cannot be used: nothing was routed


def _validation_summary(error: ValidationError, most: int = 3) -> str:
    problems = []
    for item in error.errors()[:most]:
        place = ".".join(str(part) for part in item["loc"])
        problems.append(f"{place}: {item['msg']}" if place else item["msg"])
    more = error.error_count() - most
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def _input(source: str) -> BinaryIO:
    """The input as bytes, so that each line is decoded on its own (see `_lines`)."""
    if source != "-":
        return Path(source).open("rb")
    buffer: BinaryIO | None = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return buffer
    # A text stream with no bytes under it (a test harness): its text, encoded back.
    return io.BytesIO(sys.stdin.read().encode("utf-8", "surrogatepass"))


def _lines(handle: BinaryIO, name: str, err: TextIO) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per input line. A line that is not UTF-8 costs only itself: it is
    reported on `err` as `name:line: reason` and its text is None."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            print(
                f"{name}:{number}: not UTF-8 text: {error.reason}"
                f" at byte {error.start + 1} of the line",
                file=err,
            )
            yield number, None


def _load_setup(rules_path: Path, agents_path: Path | None) -> tuple[RuleSet, AgentsFile] | None:
    """The rules and agents files, or None once every problem is reported on stderr."""
    try:
        rules = load_rules(str(rules_path))
    except RulesError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return None
    except UnicodeDecodeError as error:
        print(not_utf8(str(rules_path), error), file=sys.stderr)
        return None
    except OSError as error:
        print(f"{rules_path}: cannot read: {error.strerror or error}", file=sys.stderr)
        return None
    if agents_path is None:
        return rules, AgentsFile(agents=[])
    try:
        return rules, load_agents(agents_path, teams=rules.teams)
    except AgentsError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
    except OSError as error:
        print(f"{agents_path}: cannot read: {error.strerror or error}", file=sys.stderr)
    return None


def _route(rules_path: Path, agents_path: Path | None, source: str) -> int:
    """Route messages in order, threading them into cases as the service would.

    Agents start with no cases, online unless the agents file says `online: false` (offline
    there is no API to bring them online). A rules or agents file that cannot be used: its
    problems on stderr, exit 2. A bad input line: `FILE:LINE: reason` on stderr, the line
    skipped, the others routed, exit 1.
    """
    # Reconfigured rather than wrapped: the tool writes UTF-8 whatever the locale.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8")
    setup = _load_setup(rules_path, agents_path)
    if setup is None:
        return EXIT_BAD_SETUP
    rules, agents_file = setup
    case_router = case_router_for(rules)
    agents: dict[str, AgentState] = {}
    for spec in agents_file.agents:
        online = spec.online if "online" in spec.model_fields_set else True
        agents[spec.id] = AgentState(
            spec.id, list(spec.teams), list(spec.languages), spec.capacity, online, 0, None
        )
    name = "<stdin>" if source == "-" else source
    try:
        handle = _input(source)
    except OSError as error:
        print(f"{name}: cannot read: {error.strerror or error}", file=sys.stderr)
        return EXIT_REJECTED
    store = InMemoryMessageStore(case_router.windows, agents)
    rejected = 0
    with handle if source != "-" else contextlib.nullcontext(handle):
        for number, line in _lines(handle, name, sys.stderr):
            if line is None:
                rejected += 1
                continue
            if not line.strip():
                continue
            try:
                message = CanonicalMessage.model_validate_json(line)
            except ValidationError as error:
                rejected += 1
                print(f"{name}:{number}: {_validation_summary(error)}", file=sys.stderr)
                continue
            print(json.dumps(_decision_row(case_router, store, message), ensure_ascii=False))
    return EXIT_REJECTED if rejected else EXIT_OK


def _decision_row(
    case_router: CaseRouter, store: InMemoryMessageStore, message: CanonicalMessage
) -> dict[str, Any]:
    """Route one message as the service routes a batch, the message's sending time for the
    clock: the state loaded, routed, saved (`InMemoryMessageStore` keeps the windows)."""
    # Read as the service reads a batch: once, for the locks, routing and the case's sentiment.
    readings = case_router.read_customer_messages([message])
    state = store.load_state([message], message.sent_at)
    outcome = case_router.route_batch(
        [message], state, new_id=lambda: str(uuid.uuid4()), now=message.sent_at, readings=readings
    )
    store.save([message], outcome, message.sent_at)
    sentiment = None
    if message.direction == "inbound" and message.event != "delete":
        tone = case_router.read(message, readings).vocabulary.sentiment
        sentiment = {"label": tone.label, "score": tone.score}
    decision = outcome.decisions.get(message.id) or case_router.decide(message)[0]
    case = store.state.open_cases.get(message.conversation_id) or next(
        iter(outcome.cases.values()), None
    )
    return {
        "message_id": message.id,
        "case_key": message.conversation_id,
        "direction": message.direction,
        "team": decision.team,
        "priority": decision.priority,
        "urgency": decision.urgency.model_dump(),
        "sentiment": sentiment,
        "tags": decision.tags,
        "matched_rules": decision.matched_rules,
        "skip": decision.skip,
        "reply_template": decision.reply_template,
        "assignee": case.assignee if case is not None else None,
    }
