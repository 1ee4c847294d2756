"""A customer's history from the router's tables: their cases (by `cases_by_customer`, newest
first) and their inbound messages on them (by `messages_case`), read in one read-only
snapshot. The team filter is applied in SQL, so nothing of another team's cases is read.

`PostgresCustomerStore` is the `CustomerStore` of `customer_service`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import timedelta

import asyncpg
from casewire_common.messages import Platform
from casewire_common.pg import Connection, Database

from casewire_router.adapters.repository import SCHEMA
from casewire_router.domain.customers import Contacts, CustomerCase, CustomerContext, Profile

_OPEN = "status NOT IN ('resolved', 'no_action')"
# The customer's cases the caller may see: $1 platform, $2 customer, $3 teams (NULL: all).
_CASES = (
    f"FROM {SCHEMA}.cases c WHERE c.platform = $1 AND c.customer_id = $2"
    " AND ($3::text[] IS NULL OR c.team = ANY($3::text[]))"
)
_CASE_COLUMNS = (
    "c.id::text AS id, c.account_id, c.channel, c.status, c.priority, c.team, c.assignee,"
    " c.tags, c.language, c.opened_at, c.first_response_at, c.resolved_at"
)
# Their inbound messages, each with the gap since the one before (over all cases in view).
_INBOUND = f"""
    SELECT m.sent_at, m.language, m.sent_at - lag(m.sent_at) OVER (ORDER BY m.sent_at) AS gap
    FROM {SCHEMA}.cases c JOIN {SCHEMA}.messages m ON m.case_id = c.id
    WHERE c.platform = $1 AND c.customer_id = $2
      AND ($3::text[] IS NULL OR c.team = ANY($3::text[])) AND m.direction = 'inbound'
"""


async def customer_context(
    connection: Connection,
    platform: Platform,
    customer_id: str,
    teams: Collection[str] | None,
    repeat_window: timedelta,
    recent: int,
) -> CustomerContext | None:
    """The customer's context over the cases of `teams` (None: every team): their `recent`
    newest cases and every open one; None when they have no such case."""
    scope = (platform, customer_id, None if teams is None else sorted(teams))
    counts = await _aggregate(
        connection,
        f"SELECT count(*) AS total, count(*) FILTER (WHERE c.{_OPEN}) AS open {_CASES}",
        *scope,
    )
    if counts["total"] == 0:
        return None
    cases = await connection.fetch(
        f"(SELECT {_CASE_COLUMNS} {_CASES} ORDER BY c.opened_at DESC LIMIT $4)"
        f" UNION (SELECT {_CASE_COLUMNS} {_CASES} AND c.{_OPEN})"
        " ORDER BY opened_at DESC, id",
        *scope,
        recent,
    )
    contacts = await _aggregate(
        connection,
        f"""
        WITH inbound AS ({_INBOUND}), last AS (SELECT max(sent_at) AS at FROM inbound)
        SELECT count(*) AS messages, min(sent_at) AS first_contact, (SELECT at FROM last)
                   AS last_contact,
               count(*) FILTER (WHERE sent_at >= (SELECT at FROM last) - $4::interval
                                  AND sent_at < (SELECT at FROM last)) AS repeat_in_window,
               count(*) FILTER (WHERE gap > interval '0' AND gap <= $4::interval)
                   AS repeat_total
        FROM inbound
        """,
        *scope,
        repeat_window,
    )
    languages = await connection.fetch(
        f"SELECT language FROM ({_INBOUND}) AS inbound WHERE language IS NOT NULL"
        " GROUP BY language ORDER BY count(*) DESC, language",
        *scope,
    )
    author = await connection.fetchval(
        f"SELECT m.body->'author' FROM {SCHEMA}.cases c JOIN {SCHEMA}.messages m"
        " ON m.case_id = c.id WHERE c.platform = $1 AND c.customer_id = $2"
        " AND ($3::text[] IS NULL OR c.team = ANY($3::text[])) AND m.direction = 'inbound'"
        " ORDER BY m.sent_at DESC LIMIT 1",
        *scope,
    )
    return CustomerContext(
        platform=platform,
        customer_id=customer_id,
        profile=_profile(author),
        cases=[_case(row) for row in cases],
        total_cases=counts["total"],
        open_cases=counts["open"],
        contacts=Contacts(
            messages=contacts["messages"],
            first_contact=contacts["first_contact"],
            last_contact=contacts["last_contact"],
            repeat_window=repeat_window,
            repeat_in_window=contacts["repeat_in_window"],
            repeat_total=contacts["repeat_total"],
            languages=[row["language"] for row in languages],
        ),
    )


async def case_author(connection: Connection, case_id: str) -> Profile | None:
    """The customer of one case as its latest inbound message names them."""
    author = await connection.fetchval(
        f"SELECT body->'author' FROM {SCHEMA}.messages WHERE case_id = $1"
        " AND direction = 'inbound' ORDER BY sent_at DESC LIMIT 1",
        case_id,
    )
    return _profile(author)


class PostgresCustomerStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def customer_context(
        self,
        platform: Platform,
        customer_id: str,
        teams: Collection[str] | None,
        repeat_window: timedelta,
        recent: int,
    ) -> CustomerContext | None:
        async with (
            self._database.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            return await customer_context(
                connection, platform, customer_id, teams, repeat_window, recent
            )

    async def case_author(self, case_id: str) -> Profile | None:
        async with self._database.pool.acquire() as connection:
            return await case_author(connection, case_id)


async def _aggregate(connection: Connection, query: str, *arguments: object) -> asyncpg.Record:
    """The one row of an aggregate query (there always is one)."""
    row = await connection.fetchrow(query, *arguments)
    assert row is not None
    return row


def _profile(author: str | None) -> Profile | None:
    if author is None:
        return None
    fields = json.loads(author)
    return Profile(
        handle=fields.get("handle"),
        name=fields.get("name"),
        followers=fields.get("followers"),
        verified=fields.get("verified"),
    )


def _case(row: asyncpg.Record) -> CustomerCase:
    return CustomerCase(
        id=row["id"],
        account_id=row["account_id"],
        channel=row["channel"],
        status=row["status"],
        priority=row["priority"],
        team=row["team"],
        assignee=row["assignee"],
        tags=list(row["tags"]),
        language=row["language"],
        opened_at=row["opened_at"],
        first_response_at=row["first_response_at"],
        resolved_at=row["resolved_at"],
    )
