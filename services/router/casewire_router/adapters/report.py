"""Care-team figures from the router's tables: volume, customers, reply rate, response and
resolution times, top tags and skipped share — overall, per team and per agent.

Read-only: every query runs in one read-only, repeatable-read transaction, so the figures of
one report agree with each other even while the router keeps writing.

Cases count in a period when they opened in it; inbound messages count when they were sent in
it, under the team and agent of the case they belong to. Cases closed at once as `no_action`
(rules said no reply is needed) are counted as skipped and left out of the reply rate and the
response and resolution times.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg
from casewire_common.pg import Connection

from casewire_router.adapters.repository import SCHEMA

TOP_TAGS = 5
Scope = Literal["overall", "team", "agent"]

# GROUPING(team, assignee): the bit of a column is set when the row is NOT grouped by it.
_SCOPE_OF_GROUPING: dict[int, Scope] = {3: "overall", 1: "team", 2: "agent"}

# Cases in scope: opened in the period ($1, $2 may be null: open-ended), of one team ($3, or all).
_SCOPED_CASES = f"""
    SELECT team, assignee, platform, customer_id, status, tags, first_response_at,
           extract(epoch FROM first_response_at - opened_at)::float8 AS first_response,
           CASE WHEN status = 'resolved'
                THEN extract(epoch FROM resolved_at - opened_at)::float8 END AS resolution
    FROM {SCHEMA}.cases
    WHERE ($1::timestamptz IS NULL OR opened_at >= $1)
      AND ($2::timestamptz IS NULL OR opened_at < $2)
      AND ($3::text IS NULL OR team = $3)
"""

_GROUPS = "GROUPING SETS ((), (team), (assignee))"


def _percentiles(column: str) -> str:
    needed = "status <> 'no_action'"
    return (
        f"avg({column}) FILTER (WHERE {needed}) AS {column}_average,"
        f" percentile_cont(0.5) WITHIN GROUP (ORDER BY {column}) FILTER (WHERE {needed})"
        f" AS {column}_median,"
        f" percentile_cont(0.9) WITHIN GROUP (ORDER BY {column}) FILTER (WHERE {needed})"
        f" AS {column}_p90"
    )


_CASE_FIGURES = f"""
    WITH scoped AS ({_SCOPED_CASES})
    SELECT GROUPING(team, assignee) AS grouping, team, assignee,
           count(*) AS cases,
           count(DISTINCT platform || ':' || customer_id) AS unique_customers,
           count(*) FILTER (WHERE status = 'no_action') AS skipped_cases,
           count(*) FILTER (WHERE status <> 'no_action' AND first_response_at IS NOT NULL)
               AS replied_cases,
           {_percentiles("first_response")},
           {_percentiles("resolution")}
    FROM scoped GROUP BY {_GROUPS}
"""

_TAG_COUNTS = f"""
    WITH scoped AS ({_SCOPED_CASES})
    SELECT GROUPING(team, assignee) AS grouping, team, assignee, tag, count(*) AS cases
    FROM scoped, unnest(tags) AS tag
    GROUP BY GROUPING SETS ((tag), (team, tag), (assignee, tag))
"""

_INBOUND_MESSAGES = f"""
    SELECT GROUPING(c.team, c.assignee) AS grouping, c.team AS team, c.assignee AS assignee,
           count(*) AS inbound_messages
    FROM {SCHEMA}.messages m JOIN {SCHEMA}.cases c ON c.id = m.case_id
    WHERE m.direction = 'inbound'
      AND ($1::timestamptz IS NULL OR m.sent_at >= $1)
      AND ($2::timestamptz IS NULL OR m.sent_at < $2)
      AND ($3::text IS NULL OR c.team = $3)
    GROUP BY GROUPING SETS ((), (c.team), (c.assignee))
"""


class ReportError(Exception):
    """The report cannot be made (no router schema, unreachable database); says why."""


@dataclass(frozen=True)
class Durations:
    """Seconds; None when no case contributes."""

    average: float | None = None
    median: float | None = None
    p90: float | None = None


@dataclass
class Figures:
    """One row of the report: everything, one team, or one agent (None: unassigned cases)."""

    scope: Scope
    name: str | None
    inbound_messages: int = 0
    cases: int = 0
    unique_customers: int = 0
    cases_needing_reply: int = 0
    replied_cases: int = 0
    skipped_cases: int = 0
    first_response_seconds: Durations = field(default_factory=Durations)
    resolution_seconds: Durations = field(default_factory=Durations)
    top_tags: list[tuple[str, int]] = field(default_factory=list)

    @property
    def reply_rate(self) -> float | None:
        return self.replied_cases / self.cases_needing_reply if self.cases_needing_reply else None

    @property
    def skipped_share(self) -> float | None:
        return self.skipped_cases / self.cases if self.cases else None

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["top_tags"] = [{"tag": tag, "cases": count} for tag, count in self.top_tags]
        row["reply_rate"] = self.reply_rate
        row["skipped_share"] = self.skipped_share
        return row


@dataclass
class Report:
    since: datetime | None
    until: datetime | None
    team: str | None
    overall: Figures
    teams: list[Figures]
    agents: list[Figures]

    @property
    def is_empty(self) -> bool:
        return self.overall.cases == 0 and self.overall.inbound_messages == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "team": self.team,
            "overall": self.overall.as_dict(),
            "teams": [figures.as_dict() for figures in self.teams],
            "agents": [figures.as_dict() for figures in self.agents],
        }


async def build_report(
    connection: Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    team: str | None = None,
) -> Report:
    """The figures of the cases opened in [since, until), optionally of one team."""
    if await connection.fetchval("SELECT to_regclass($1)", f"{SCHEMA}.cases") is None:
        raise ReportError(f"no {SCHEMA}.cases table: run `casewire-router migrate` first")
    rows: dict[tuple[Scope, str | None], Figures] = {}

    def figures_for(record: asyncpg.Record) -> Figures:
        scope = _SCOPE_OF_GROUPING[record["grouping"]]
        name = None if scope == "overall" else record[scope if scope == "team" else "assignee"]
        return rows.setdefault((scope, name), Figures(scope, name))

    arguments = (since, until, team)
    async with connection.transaction(readonly=True, isolation="repeatable_read"):
        for record in await connection.fetch(_CASE_FIGURES, *arguments):
            figures = figures_for(record)
            figures.cases = record["cases"]
            figures.unique_customers = record["unique_customers"]
            figures.skipped_cases = record["skipped_cases"]
            figures.cases_needing_reply = record["cases"] - record["skipped_cases"]
            figures.replied_cases = record["replied_cases"]
            figures.first_response_seconds = _durations(record, "first_response")
            figures.resolution_seconds = _durations(record, "resolution")
        for record in await connection.fetch(_INBOUND_MESSAGES, *arguments):
            figures_for(record).inbound_messages = record["inbound_messages"]
        tags: dict[tuple[Scope, str | None], list[tuple[str, int]]] = {}
        for record in await connection.fetch(_TAG_COUNTS, *arguments):
            figures = figures_for(record)
            tags.setdefault((figures.scope, figures.name), []).append(
                (record["tag"], record["cases"])
            )
    for key, counts in tags.items():
        rows[key].top_tags = sorted(counts, key=lambda item: (-item[1], item[0]))[:TOP_TAGS]
    overall = rows.pop(("overall", None), Figures("overall", None))
    by_name = sorted(rows.values(), key=lambda f: (f.name is None, f.name or ""))
    return Report(
        since=since,
        until=until,
        team=team,
        overall=overall,
        teams=[figures for figures in by_name if figures.scope == "team"],
        agents=[figures for figures in by_name if figures.scope == "agent"],
    )


def _durations(record: asyncpg.Record, column: str) -> Durations:
    def seconds(name: str) -> float | None:
        value = record[f"{column}_{name}"]
        return None if value is None else float(value)

    return Durations(seconds("average"), seconds("median"), seconds("p90"))


def render_table(report: Report) -> str:
    """The report as fixed-width text tables for a terminal."""
    period = (
        f"from {report.since.isoformat() if report.since else 'the beginning'}"
        f" until {report.until.isoformat() if report.until else 'now'}"
    )
    title = f"Casewire care report, {period}" + (f", team {report.team}" if report.team else "")
    if report.is_empty:
        return f"{title}\n\nNo cases and no inbound messages in this period.\n"
    sections = [
        ("Overall", [report.overall]),
        ("By team", report.teams),
        ("By agent", report.agents),
    ]
    parts = [title]
    for heading, figures in sections:
        parts.append(f"\n{heading}\n{_table(figures)}")
    parts.append(
        "\nreply rate = cases with a brand reply / cases needing one (skipped cases excluded);"
        " times are from the first inbound message; resolution counts resolved cases only."
    )
    return "\n".join(parts) + "\n"


_HEADERS = (
    "",
    "inbound",
    "cases",
    "customers",
    "reply rate",
    "skipped",
    "first resp avg",
    "median",
    "p90",
    "resolution avg",
    "median",
    "p90",
    "top tags",
)


def _table(rows: list[Figures]) -> str:
    cells = [_HEADERS] + [_cells(figures) for figures in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(_HEADERS))]

    def line(row: tuple[str, ...]) -> str:
        first, *numbers, last = row
        padded = [first.ljust(widths[0])]
        padded += [cell.rjust(widths[i + 1]) for i, cell in enumerate(numbers)]
        return "  ".join([*padded, last]).rstrip()

    return "\n".join(line(row) for row in cells)


def _cells(figures: Figures) -> tuple[str, ...]:
    name = {"overall": "all", "team": figures.name, "agent": figures.name}[figures.scope]
    skipped = f"{figures.skipped_cases} ({_percent(figures.skipped_share)})"
    replied = f"{figures.replied_cases}/{figures.cases_needing_reply}"
    return (
        name or "(unassigned)",
        str(figures.inbound_messages),
        str(figures.cases),
        str(figures.unique_customers),
        f"{_percent(figures.reply_rate)} ({replied})",
        skipped,
        _duration(figures.first_response_seconds.average),
        _duration(figures.first_response_seconds.median),
        _duration(figures.first_response_seconds.p90),
        _duration(figures.resolution_seconds.average),
        _duration(figures.resolution_seconds.median),
        _duration(figures.resolution_seconds.p90),
        ", ".join(f"{tag} ({count})" for tag, count in figures.top_tags) or "-",
    )


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def _duration(seconds: float | None) -> str:
    """Seconds as a short human duration: 42s, 5m 03s, 2h 07m, 3d 04h."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
