"""Care-team figures from the router's tables: volume, customers, reply rate, response and
resolution times, top tags, most used saved replies and skipped share — overall, per team and
per agent.

Read-only: every query runs in one read-only, repeatable-read transaction, so the figures of
one report agree with each other even while the router keeps writing.

Cases count in a period when they opened in it; inbound messages count when they were sent in
it, under the team and agent of the case they belong to, and so do the uses of saved replies
(replies recorded through the API naming one), by when the reply was sent. Cases closed at once
as `no_action` (rules said no reply is needed) are counted as skipped and left out of the reply
rate and the response and resolution times.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

import asyncpg
from casewire_common.pg import Connection

from casewire_router.adapters.repository import SCHEMA

TOP_TAGS = 5
TOP_SAVED_REPLIES = 5
Dimension = Literal["team", "agent", "tag", "platform", "language"]
Scope = Literal["overall", "team", "agent", "tag", "platform", "language"]
DIMENSIONS: tuple[Dimension, ...] = ("team", "agent", "tag", "platform", "language")
DEFAULT_BY: tuple[Dimension, ...] = ("team", "agent")
# The JSON key of each breakdown.
PLURAL: dict[Dimension, str] = {
    "team": "teams",
    "agent": "agents",
    "tag": "tags",
    "platform": "platforms",
    "language": "languages",
}

# Cases in scope: opened in the period ($1, $2 may be null: open-ended), of one team ($3, or all).
_SCOPED_CASES = f"""
    SELECT team, assignee, platform, language, customer_id, status, tags, first_response_at,
           extract(epoch FROM first_response_at - opened_at)::float8 AS first_response,
           CASE WHEN status = 'resolved'
                THEN extract(epoch FROM resolved_at - opened_at)::float8 END AS resolution
    FROM {SCHEMA}.cases
    WHERE ($1::timestamptz IS NULL OR opened_at >= $1)
      AND ($2::timestamptz IS NULL OR opened_at < $2)
      AND ($3::text IS NULL OR team = $3)
"""

# Each row's name, as an expression over a case `c`, and the join it needs: a case counts
# under each of its tags (untagged ones under none: NULL).
_ROW_NAME: dict[Scope, tuple[str, str]] = {
    "overall": ("NULL::text", ""),
    "team": ("c.team", ""),
    "agent": ("c.assignee", ""),
    "platform": ("c.platform::text", ""),
    "language": ("c.language", ""),
    "tag": ("t.tag", "LEFT JOIN LATERAL unnest(c.tags) AS t(tag) ON true"),
}


def _percentiles(column: str) -> str:
    needed = "c.status <> 'no_action'"
    return (
        f"avg({column}) FILTER (WHERE {needed}) AS {column}_average,"
        f" percentile_cont(0.5) WITHIN GROUP (ORDER BY {column}) FILTER (WHERE {needed})"
        f" AS {column}_median,"
        f" percentile_cont(0.9) WITHIN GROUP (ORDER BY {column}) FILTER (WHERE {needed})"
        f" AS {column}_p90"
    )


def _case_figures(scope: Scope) -> str:
    name, join = _ROW_NAME[scope]
    return f"""
        WITH scoped AS ({_SCOPED_CASES})
        SELECT {name} AS name,
               count(*) AS cases,
               count(DISTINCT c.platform || ':' || c.customer_id) AS unique_customers,
               count(*) FILTER (WHERE c.status = 'no_action') AS skipped_cases,
               count(*) FILTER (WHERE c.status <> 'no_action' AND c.first_response_at IS NOT NULL)
                   AS replied_cases,
               {_percentiles("first_response")},
               {_percentiles("resolution")}
        FROM scoped c {join} GROUP BY 1
    """


def _tag_counts(scope: Scope) -> str:
    name, join = _ROW_NAME[scope]
    return f"""
        WITH scoped AS ({_SCOPED_CASES})
        SELECT {name} AS name, counted AS tag, count(*) AS cases
        FROM scoped c {join}, unnest(c.tags) AS counted
        GROUP BY 1, 2
    """


def _inbound_messages(scope: Scope) -> str:
    name, join = _ROW_NAME[scope]
    return f"""
        SELECT {name} AS name, count(*) AS inbound_messages
        FROM {SCHEMA}.messages m JOIN {SCHEMA}.cases c ON c.id = m.case_id {join}
        WHERE m.direction = 'inbound'
          AND ($1::timestamptz IS NULL OR m.sent_at >= $1)
          AND ($2::timestamptz IS NULL OR m.sent_at < $2)
          AND ($3::text IS NULL OR c.team = $3)
        GROUP BY 1
    """


def _saved_reply_uses(scope: Scope) -> str:
    """Replies recorded with a saved reply, sent in the period, by row and saved reply."""
    name, join = _ROW_NAME[scope]
    return f"""
        SELECT {name} AS name, u.saved_reply_id AS saved_reply, count(*) AS uses
        FROM {SCHEMA}.saved_reply_uses u JOIN {SCHEMA}.cases c ON c.id = u.case_id {join}
        WHERE ($1::timestamptz IS NULL OR u.used_at >= $1)
          AND ($2::timestamptz IS NULL OR u.used_at < $2)
          AND ($3::text IS NULL OR c.team = $3)
        GROUP BY 1, 2
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
    """One row of the report: everything, or one team, agent, tag, platform or language (name
    None: unassigned cases in the agent rows, untagged ones in the tag rows, cases with no
    language in the language rows)."""

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
    top_saved_replies: list[tuple[str, int]] = field(default_factory=list)

    @property
    def reply_rate(self) -> float | None:
        return self.replied_cases / self.cases_needing_reply if self.cases_needing_reply else None

    @property
    def skipped_share(self) -> float | None:
        return self.skipped_cases / self.cases if self.cases else None

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["top_tags"] = [{"tag": tag, "cases": count} for tag, count in self.top_tags]
        row["top_saved_replies"] = [
            {"saved_reply": reply, "uses": count} for reply, count in self.top_saved_replies
        ]
        row["reply_rate"] = self.reply_rate
        row["skipped_share"] = self.skipped_share
        return row


@dataclass
class Report:
    since: datetime | None
    until: datetime | None
    team: str | None
    overall: Figures
    breakdowns: dict[Dimension, list[Figures]] = field(default_factory=dict)

    @property
    def teams(self) -> list[Figures]:
        return self.breakdowns.get("team", [])

    @property
    def agents(self) -> list[Figures]:
        return self.breakdowns.get("agent", [])

    @property
    def tags(self) -> list[Figures]:
        return self.breakdowns.get("tag", [])

    @property
    def platforms(self) -> list[Figures]:
        return self.breakdowns.get("platform", [])

    @property
    def languages(self) -> list[Figures]:
        return self.breakdowns.get("language", [])

    @property
    def is_empty(self) -> bool:
        return self.overall.cases == 0 and self.overall.inbound_messages == 0

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "team": self.team,
            "overall": self.overall.as_dict(),
        }
        for dimension, rows in self.breakdowns.items():
            body[PLURAL[dimension]] = [figures.as_dict() for figures in rows]
        return body


async def build_report(
    connection: Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    team: str | None = None,
    by: Sequence[Dimension] = DEFAULT_BY,
) -> Report:
    """The figures of the cases opened in [since, until), optionally of one team: overall and
    broken down `by` team, agent (the case's assignee), tag, platform or language."""
    await _require_schema(connection)
    async with connection.transaction(readonly=True, isolation="repeatable_read"):
        return await _report(connection, since, until, team, by)


async def build_daily_reports(
    connection: Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    team: str | None = None,
    by: Sequence[Dimension] = DEFAULT_BY,
    now: datetime | None = None,
) -> list[Report]:
    """One report per UTC day of [since, until) (the first and last day cut at those
    instants), all read in one transaction. Without `since` the days start at the first
    case's; without `until` they end now."""
    await _require_schema(connection)
    async with connection.transaction(readonly=True, isolation="repeatable_read"):
        if since is None:
            since = await connection.fetchval(
                f"SELECT min(opened_at) FROM {SCHEMA}.cases WHERE ($1::text IS NULL OR team = $1)",
                team,
            )
            if since is None:
                return []
        end = until or now or datetime.now(UTC)
        reports = []
        for start, stop in day_buckets(since, end):
            reports.append(await _report(connection, start, stop, team, by))
        return reports


def day_buckets(since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """[since, until) cut at each UTC midnight."""
    buckets = []
    start = since.astimezone(UTC)
    while start < until:
        midnight = datetime.combine(start.date(), time(), UTC) + timedelta(days=1)
        stop = min(midnight, until)
        buckets.append((start, stop))
        start = stop
    return buckets


async def _require_schema(connection: Connection) -> None:
    if await connection.fetchval("SELECT to_regclass($1)", f"{SCHEMA}.cases") is None:
        raise ReportError(f"no {SCHEMA}.cases table: run `casewire-router migrate` first")


async def _report(
    connection: Connection,
    since: datetime | None,
    until: datetime | None,
    team: str | None,
    by: Sequence[Dimension],
) -> Report:
    arguments = (since, until, team)
    overall_scope: Scope = "overall"
    rows: dict[Scope, dict[str | None, Figures]] = {
        overall_scope: await _rows(connection, overall_scope, arguments)
    }
    for dimension in by:
        rows[dimension] = await _rows(connection, dimension, arguments)
    overall = rows.pop("overall").get(None, Figures("overall", None))
    return Report(
        since=since,
        until=until,
        team=team,
        overall=overall,
        breakdowns={
            dimension: sorted(
                rows[dimension].values(), key=lambda f: (f.name is None, f.name or "")
            )
            for dimension in by
        },
    )


async def _rows(
    connection: Connection, scope: Scope, arguments: tuple[Any, ...]
) -> dict[str | None, Figures]:
    """The figures of each row of one scope, by name."""
    rows: dict[str | None, Figures] = {}

    def figures_for(record: asyncpg.Record) -> Figures:
        name = record["name"]
        return rows.setdefault(name, Figures(scope, name))

    for record in await connection.fetch(_case_figures(scope), *arguments):
        figures = figures_for(record)
        figures.cases = record["cases"]
        figures.unique_customers = record["unique_customers"]
        figures.skipped_cases = record["skipped_cases"]
        figures.cases_needing_reply = record["cases"] - record["skipped_cases"]
        figures.replied_cases = record["replied_cases"]
        figures.first_response_seconds = _durations(record, "first_response")
        figures.resolution_seconds = _durations(record, "resolution")
    for record in await connection.fetch(_inbound_messages(scope), *arguments):
        figures_for(record).inbound_messages = record["inbound_messages"]
    tags: dict[str | None, list[tuple[str, int]]] = {}
    for record in await connection.fetch(_tag_counts(scope), *arguments):
        figures_for(record)
        tags.setdefault(record["name"], []).append((record["tag"], record["cases"]))
    for name, counts in tags.items():
        rows[name].top_tags = sorted(counts, key=lambda item: (-item[1], item[0]))[:TOP_TAGS]
    uses: dict[str | None, list[tuple[str, int]]] = {}
    for record in await connection.fetch(_saved_reply_uses(scope), *arguments):
        figures_for(record)
        uses.setdefault(record["name"], []).append((record["saved_reply"], record["uses"]))
    for name, counts in uses.items():
        rows[name].top_saved_replies = sorted(counts, key=lambda item: (-item[1], item[0]))[
            :TOP_SAVED_REPLIES
        ]
    return rows


def _durations(record: asyncpg.Record, column: str) -> Durations:
    def seconds(name: str) -> float | None:
        value = record[f"{column}_{name}"]
        return None if value is None else float(value)

    return Durations(seconds("average"), seconds("median"), seconds("p90"))


_HEADINGS: dict[Dimension, str] = {
    "team": "By team",
    "agent": "By agent",
    "tag": "By tag",
    "platform": "By platform",
    "language": "By language",
}
_NO_NAME: dict[Scope, str] = {
    "overall": "all",
    "team": "(no team)",
    "agent": "(unassigned)",
    "tag": "(untagged)",
    "platform": "(no platform)",
    "language": "(unknown)",
}
_FOOTNOTE = (
    "reply rate = cases with a brand reply / cases needing one (skipped cases excluded);"
    " times are from the first inbound message; resolution counts resolved cases only."
    " Definitions: docs/report.md."
)


def _period(since: datetime | None, until: datetime | None) -> str:
    return (
        f"from {since.isoformat() if since else 'the beginning'}"
        f" until {until.isoformat() if until else 'now'}"
    )


def render_table(report: Report) -> str:
    """The report as fixed-width text tables for a terminal."""
    title = f"Casewire care report, {_period(report.since, report.until)}" + (
        f", team {report.team}" if report.team else ""
    )
    return f"{title}\n{_sections(report)}\n{_FOOTNOTE}\n"


def render_daily_table(
    reports: list[Report], since: datetime | None, until: datetime | None, team: str | None
) -> str:
    """Daily reports, one block per day, for a terminal."""
    title = f"Casewire care report by day, {_period(since, until)}" + (
        f", team {team}" if team else ""
    )
    if not reports:
        return f"{title}\n\nNo cases in this period.\n"
    parts = [title]
    for report in reports:
        assert report.since is not None
        parts.append(f"\n== {report.since.date().isoformat()} ==\n{_sections(report)}")
    return "\n".join(parts) + f"\n{_FOOTNOTE}\n"


def _sections(report: Report) -> str:
    if report.is_empty:
        return "\nNo cases and no inbound messages in this period.\n"
    parts = [f"\nOverall\n{_table([report.overall])}"]
    for dimension, rows in report.breakdowns.items():
        parts.append(f"\n{_HEADINGS[dimension]}\n{_table(rows)}")
    used = _saved_replies_used(report)
    if used:
        parts.append(f"\n{used}")
    return "\n".join(parts) + "\n"


def _saved_replies_used(report: Report) -> str:
    """The most used saved replies of each team (of the whole report without a team
    breakdown); empty when none was used."""
    rows = report.teams if "team" in report.breakdowns else [report.overall]
    lines = [
        f"{figures.name or 'all'}: "
        + ", ".join(f"{reply} ({count})" for reply, count in figures.top_saved_replies)
        for figures in rows
        if figures.top_saved_replies
    ]
    return "Most used saved replies\n" + "\n".join(lines) if lines else ""


CSV_COLUMNS = (
    "day",
    "scope",
    "name",
    "inbound_messages",
    "cases",
    "unique_customers",
    "cases_needing_reply",
    "replied_cases",
    "reply_rate",
    "skipped_cases",
    "skipped_share",
    "first_response_average_seconds",
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_average_seconds",
    "resolution_median_seconds",
    "resolution_p90_seconds",
    "top_tags",
    "top_saved_replies",
)


def render_csv(reports: list[Report], *, daily: bool = False) -> str:
    """One CSV row per figures row (overall first, then each breakdown), with a `day` column
    (empty unless daily); empty cells where a figure has no value; top tags as `tag:count` and
    top saved replies as `id:uses`, separated by spaces."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for report in reports:
        day = report.since.date().isoformat() if daily and report.since else ""
        rows = [report.overall] + [f for rows in report.breakdowns.values() for f in rows]
        for figures in rows:
            writer.writerow(
                [
                    day,
                    figures.scope,
                    figures.name or "",
                    figures.inbound_messages,
                    figures.cases,
                    figures.unique_customers,
                    figures.cases_needing_reply,
                    figures.replied_cases,
                    _number(figures.reply_rate),
                    figures.skipped_cases,
                    _number(figures.skipped_share),
                    *(
                        _number(getattr(durations, part))
                        for durations in (
                            figures.first_response_seconds,
                            figures.resolution_seconds,
                        )
                        for part in ("average", "median", "p90")
                    ),
                    " ".join(f"{tag}:{count}" for tag, count in figures.top_tags),
                    " ".join(f"{reply}:{count}" for reply, count in figures.top_saved_replies),
                ]
            )
    return out.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


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
    name = "all" if figures.scope == "overall" else figures.name
    skipped = f"{figures.skipped_cases} ({_percent(figures.skipped_share)})"
    replied = f"{figures.replied_cases}/{figures.cases_needing_reply}"
    return (
        name or _NO_NAME[figures.scope],
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
