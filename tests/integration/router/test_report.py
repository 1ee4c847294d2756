"""`casewire-router report` over a real PostgreSQL: exact figures for known cases and messages."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from casewire_common.pg import migrate
from casewire_router.adapters.report import Durations, Figures, build_report
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
END = START + timedelta(days=1)
CLI = Path(sys.executable).parent / "casewire-router"


@dataclass
class KnownCase:
    team: str
    assignee: str | None
    customer: str
    status: str
    tags: list[str]
    opened_minutes: int = 0  # after START
    first_response_seconds: int | None = None
    resolution_seconds: int | None = None
    inbound_minutes: list[int] = field(default_factory=lambda: [0])  # after START
    outbound: int = 0


# Case 6 opened before the period: not counted as a case, but its inbound message sent inside
# the period counts in the volume of its team and agent.
CASES = [
    KnownCase("shipping", "amal", "c1", "resolved", ["shipping"], 0, 60, 600, [0, 5], 1),
    KnownCase("shipping", "amal", "c2", "assigned", ["shipping", "vip"], 10, 120, None, [10], 1),
    KnownCase("shipping", None, "c1", "queued", ["shipping"], 20, None, None, [20, 21, 22]),
    KnownCase("care", "nikos", "c3", "resolved", ["billing"], 30, 300, 3600, [30], 1),
    KnownCase("care", None, "c4", "no_action", ["praise"], 40, None, 0, [40]),
    KnownCase("care", "nikos", "c5", "assigned", [], -120, None, None, [-120, 50]),
]


async def insert(connection: asyncpg.Connection, cases: list[KnownCase]) -> None:
    """Rows as the router writes them: a case per conversation, its messages pointing at it."""
    for number, known in enumerate(cases):
        case_id = uuid.uuid4()
        conversation = f"x:brand:post{number}:{known.customer}"
        opened = START + timedelta(minutes=known.opened_minutes)
        responded = (
            None
            if known.first_response_seconds is None
            else opened + timedelta(seconds=known.first_response_seconds)
        )
        resolved = (
            None
            if known.resolution_seconds is None
            else opened + timedelta(seconds=known.resolution_seconds)
        )
        await connection.execute(
            f"INSERT INTO {SCHEMA}.cases (id, conversation_id, customer_id, account_id, platform,"
            " channel, visibility, status, priority, urgency_score, team, assignee, tags,"
            " opened_at, first_response_at, resolved_at) VALUES ($1, $2, $3, 'brand', 'x',"
            " 'mention', 'public', $4, 'P3', 10, $5, $6, $7, $8, $9, $10)",
            case_id,
            conversation,
            known.customer,
            known.status,
            known.team,
            known.assignee,
            known.tags,
            opened,
            responded,
            resolved,
        )
        sent = [("inbound", START + timedelta(minutes=m)) for m in known.inbound_minutes]
        sent += [("outbound", responded or opened)] * known.outbound
        for direction, at in sent:
            await connection.execute(
                f"INSERT INTO {SCHEMA}.messages (id, case_id, conversation_id, platform,"
                " platform_message_id, direction, author_id, text, sent_at, received_at, body)"
                " VALUES ($1, $2, $3, 'x', $4, $5, $6, 'text', $7, $7, '{}')",
                uuid.uuid4(),
                case_id,
                conversation,
                uuid.uuid4().hex,
                direction,
                "brand" if direction == "outbound" else known.customer,
                at,
            )


@pytest.fixture
async def known_database(database_url: str) -> str:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    connection = await asyncpg.connect(database_url)
    try:
        await insert(connection, CASES)
    finally:
        await connection.close()
    return database_url


async def report_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        CLI,
        "report",
        *args,
        env={**os.environ, "CASEWIRE_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def summary(figures: Figures) -> dict[str, Any]:
    return {
        "inbound": figures.inbound_messages,
        "cases": figures.cases,
        "customers": figures.unique_customers,
        "replied": (figures.replied_cases, figures.cases_needing_reply),
        "skipped": figures.skipped_cases,
        "first_response": figures.first_response_seconds,
        "resolution": figures.resolution_seconds,
        "tags": figures.top_tags,
    }


async def test_report_gives_exact_figures_per_team_agent_and_overall(known_database: str) -> None:
    connection = await asyncpg.connect(known_database)
    try:
        report = await build_report(connection, since=START, until=END)
    finally:
        await connection.close()

    assert summary(report.overall) == {
        "inbound": 9,  # 8 of the cases opened in the period + 1 follow-up of the older case
        "cases": 5,
        "customers": 4,
        "replied": (3, 4),  # the no_action case needs no reply
        "skipped": 1,
        "first_response": Durations(160.0, 120.0, 264.0),  # of 60, 120, 300 s
        "resolution": Durations(2100.0, 2100.0, 3300.0),  # of 600, 3600 s; no_action excluded
        "tags": [("shipping", 3), ("billing", 1), ("praise", 1), ("vip", 1)],
    }
    assert report.overall.reply_rate == 0.75
    assert report.overall.skipped_share == 0.2
    teams = {figures.name: summary(figures) for figures in report.teams}
    assert teams == {
        "care": {
            "inbound": 3,
            "cases": 2,
            "customers": 2,
            "replied": (1, 1),
            "skipped": 1,
            "first_response": Durations(300.0, 300.0, 300.0),
            "resolution": Durations(3600.0, 3600.0, 3600.0),
            "tags": [("billing", 1), ("praise", 1)],
        },
        "shipping": {
            "inbound": 6,
            "cases": 3,
            "customers": 2,  # c1 wrote in two conversations
            "replied": (2, 3),
            "skipped": 0,
            "first_response": Durations(90.0, 90.0, 114.0),
            "resolution": Durations(600.0, 600.0, 600.0),
            "tags": [("shipping", 3), ("vip", 1)],
        },
    }
    agents = {figures.name: summary(figures) for figures in report.agents}
    assert agents == {
        "amal": {
            "inbound": 3,
            "cases": 2,
            "customers": 2,
            "replied": (2, 2),
            "skipped": 0,
            "first_response": Durations(90.0, 90.0, 114.0),
            "resolution": Durations(600.0, 600.0, 600.0),
            "tags": [("shipping", 2), ("vip", 1)],
        },
        "nikos": {
            "inbound": 2,
            "cases": 1,
            "customers": 1,
            "replied": (1, 1),
            "skipped": 0,
            "first_response": Durations(300.0, 300.0, 300.0),
            "resolution": Durations(3600.0, 3600.0, 3600.0),
            "tags": [("billing", 1)],
        },
        None: {  # unassigned: the queued case and the skipped one
            "inbound": 4,
            "cases": 2,
            "customers": 2,
            "replied": (0, 1),
            "skipped": 1,
            "first_response": Durations(),
            "resolution": Durations(),
            "tags": [("praise", 1), ("shipping", 1)],
        },
    }
    assert [figures.name for figures in report.agents] == ["amal", "nikos", None]


async def test_report_command_filters_by_team_and_prints_json_and_table(
    known_database: str,
) -> None:
    code, out, err = await report_cli(
        known_database, "--since", "2026-11-02", "--until", "2026-11-03", "--team", "shipping"
    )
    assert (code, err) == (0, "")
    assert "from 2026-11-02T00:00:00+00:00 until 2026-11-03T00:00:00+00:00, team shipping" in out
    overall_line = next(line for line in out.splitlines() if line.startswith("all "))
    assert overall_line.split()[1:5] == ["6", "3", "2", "67%"]
    assert "1m 30s" in overall_line  # first response average of 60 and 120 s

    code, out, err = await report_cli(known_database, "--team", "shipping", "--format", "json")
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert body["team"] == "shipping"
    assert body["overall"]["cases"] == 3
    assert body["overall"]["reply_rate"] == pytest.approx(2 / 3)
    assert body["overall"]["first_response_seconds"] == {
        "average": 90.0,
        "median": 90.0,
        "p90": 114.0,
    }
    assert [team["name"] for team in body["teams"]] == ["shipping"]
    assert [agent["name"] for agent in body["agents"]] == ["amal", None]
    assert body["overall"]["top_tags"] == [
        {"tag": "shipping", "cases": 3},
        {"tag": "vip", "cases": 1},
    ]


async def test_report_on_an_empty_database_says_so_and_on_an_unmigrated_one_says_what_to_do(
    database_url: str,
) -> None:
    code, out, err = await report_cli(database_url)
    assert code == 2
    assert "run `casewire-router migrate` first" in err

    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    code, out, err = await report_cli(database_url)
    assert (code, err) == (0, "")
    assert "No cases and no inbound messages in this period." in out
    code, out, _ = await report_cli(database_url, "--format", "json")
    body = json.loads(out)
    assert body["overall"]["cases"] == 0
    assert body["overall"]["reply_rate"] is None
    assert body["overall"]["first_response_seconds"]["median"] is None
    assert (body["teams"], body["agents"]) == ([], [])


async def test_report_refuses_a_bad_period(database_url: str) -> None:
    code, _, err = await report_cli(database_url, "--since", "yesterday")
    assert code == 2
    assert "not an ISO 8601 date" in err
    code, _, err = await report_cli(database_url, "--since", "2026-11-03", "--until", "2026-11-02")
    assert code == 2
    assert "--since must be before --until" in err


async def test_report_on_an_unreachable_database_fails_with_a_clear_message() -> None:
    code, out, err = await report_cli("postgresql://postgres@127.0.0.1:1/casewire")
    assert (code, out) == (2, "")
    assert err.startswith("report: ")
    assert "Traceback" not in err


async def test_report_by_tag_and_platform_counts_a_case_under_each_of_its_tags(
    known_database: str,
) -> None:
    connection = await asyncpg.connect(known_database)
    try:
        report = await build_report(connection, since=START, until=END, by=("tag", "platform"))
    finally:
        await connection.close()

    assert (report.teams, report.agents) == ([], [])
    tags = {figures.name: summary(figures) for figures in report.tags}
    assert tags["shipping"] == {
        "inbound": 6,
        "cases": 3,
        "customers": 2,
        "replied": (2, 3),
        "skipped": 0,
        "first_response": Durations(90.0, 90.0, 114.0),
        "resolution": Durations(600.0, 600.0, 600.0),
        "tags": [("shipping", 3), ("vip", 1)],
    }
    assert (tags["vip"]["cases"], tags["vip"]["replied"]) == (1, (1, 1))
    assert (tags["praise"]["skipped"], tags["praise"]["replied"]) == (1, (0, 0))
    assert tags["billing"]["first_response"] == Durations(300.0, 300.0, 300.0)
    # The untagged case opened before the period: its follow-up counts, no case does.
    assert (tags[None]["inbound"], tags[None]["cases"]) == (1, 0)
    assert [figures.name for figures in report.tags] == [
        "billing",
        "praise",
        "shipping",
        "vip",
        None,
    ]
    assert [(f.name, f.cases, f.inbound_messages) for f in report.platforms] == [("x", 5, 9)]


async def test_report_command_writes_daily_buckets_as_csv_and_json(known_database: str) -> None:
    period = ("--since", "2026-11-02T08:00Z", "--until", "2026-11-03T12:00Z")
    code, out, err = await report_cli(
        known_database, *period, "--daily", "--by", "tag", "--format", "csv"
    )
    assert (code, err) == (0, "")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(row["day"], row["scope"], row["name"]) for row in rows] == [
        ("2026-11-02", "overall", ""),
        ("2026-11-02", "tag", "billing"),
        ("2026-11-02", "tag", "praise"),
        ("2026-11-02", "tag", "shipping"),
        ("2026-11-02", "tag", "vip"),
        ("2026-11-02", "tag", ""),
        ("2026-11-03", "overall", ""),
    ]
    first_day = rows[0]
    assert (first_day["cases"], first_day["unique_customers"], first_day["reply_rate"]) == (
        "5",
        "4",
        "0.75",
    )
    assert first_day["first_response_average_seconds"] == "160"
    assert first_day["top_tags"] == "shipping:3 billing:1 praise:1 vip:1"
    assert (rows[-1]["cases"], rows[-1]["reply_rate"]) == ("0", "")

    code, out, err = await report_cli(known_database, *period, "--daily", "--format", "json")
    assert (code, err) == (0, "")
    days = json.loads(out)["days"]
    assert [(day["day"], day["overall"]["cases"]) for day in days] == [
        ("2026-11-02", 5),
        ("2026-11-03", 0),
    ]
    assert [team["name"] for team in days[0]["teams"]] == ["care", "shipping"]

    code, out, err = await report_cli(known_database, *period, "--daily", "--by", "platform")
    assert (code, err) == (0, "")
    assert "== 2026-11-02 ==" in out
    assert "By platform" in out
    assert "By team" not in out

    code, _, err = await report_cli(known_database, "--by", "mood")
    assert code == 2
    assert "not a breakdown: mood" in err
