"""PostgreSQL reads and writes of an agent's own work and of collision avoidance: the /me
lists, reply leases, platform echoes waiting for their author, offline owners' cases.

`PostgresDeskStore` and `PostgresLeaseStore` are the `DeskStore` and the `LeaseStore` of
`desk_service`; the functions the case API's and the message path's transactions need (a
case's live lease, echoes, cases to return) are here too, called by `case_store` and
`message_store`. Lock order as everywhere (`case_store`):
cases, then agents; a lease or an echo row after its case.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import asyncpg
from casewire_common.events import RoutingDecision
from casewire_common.messages import CanonicalMessage
from casewire_common.pg import Connection, Database

from casewire_router.adapters import case_feed
from casewire_router.adapters.repository import SCHEMA, case_columns, read_case
from casewire_router.domain.case import CaseState
from casewire_router.domain.desk import FeedEntry, FeedRow
from casewire_router.domain.leases import Lease, LeaseAttempt, LeaseEcho

_OPEN = "status NOT IN ('resolved', 'no_action')"
_LIVE_LEASE = f" LEFT JOIN {SCHEMA}.reply_leases l ON l.case_id = c.id AND l.expires_at > now()"
RETURNS_PER_ROUND = 200  # cases returned in one transaction (the rest in the next round)
ECHOES_PER_ROUND = 200


async def live_lease(connection: Connection, case_id: str) -> Lease | None:
    row = await connection.fetchrow(
        f"SELECT agent_id, expires_at FROM {SCHEMA}.reply_leases"
        " WHERE case_id = $1 AND expires_at > now()",
        case_id,
    )
    return None if row is None else Lease(case_id, row["agent_id"], row["expires_at"])


async def live_leases(connection: Connection, case_ids: Collection[str]) -> dict[str, str]:
    """The holders of the live leases on these cases, by case id."""
    rows = await connection.fetch(
        f"SELECT case_id::text, agent_id FROM {SCHEMA}.reply_leases"
        " WHERE case_id = ANY($1::uuid[]) AND expires_at > now()",
        sorted(case_ids),
    )
    return {row["case_id"]: row["agent_id"] for row in rows}


async def hold_echoes(connection: Connection, echoes: Sequence[LeaseEcho]) -> None:
    await connection.execute(
        f"INSERT INTO {SCHEMA}.lease_echoes (message_id, case_id, lease_holder, sent_at,"
        " decide_at) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[],"
        " $4::timestamptz[], $5::timestamptz[]) ON CONFLICT DO NOTHING",
        [echo.message_id for echo in echoes],
        [echo.case_id for echo in echoes],
        [echo.lease_holder for echo in echoes],
        [echo.sent_at for echo in echoes],
        [echo.decide_at for echo in echoes],
    )


async def stored_message(
    connection: Connection, message_id: str
) -> tuple[str | None, CanonicalMessage] | None:
    """A message kept already (its case id, None: kept without one); None: not kept."""
    row = await connection.fetchrow(
        f"SELECT case_id::text, body FROM {SCHEMA}.messages WHERE id = $1", message_id
    )
    if row is None:
        return None
    return row["case_id"], CanonicalMessage.model_validate_json(row["body"])


async def own_echo(connection: Connection, message_id: str) -> LeaseEcho | None:
    """An echo kept because it came during a lease, now recorded by its author: no longer
    waiting (after its case is locked). Whether it was counted as a collision already."""
    row = await connection.fetchrow(
        f"DELETE FROM {SCHEMA}.lease_echoes WHERE message_id = $1"
        " RETURNING case_id::text, lease_holder, sent_at, decide_at, collided",
        message_id,
    )
    if row is None:
        return None
    return LeaseEcho(
        message_id,
        row["case_id"],
        row["lease_holder"],
        row["sent_at"],
        row["decide_at"],
        row["collided"],
    )


async def lock_returnable(connection: Connection, cutoff: datetime) -> list[CaseState]:
    """Open cases whose owner has been offline since `cutoff` or earlier, locked (those other
    transactions hold are left to the next round: every replica looks)."""
    rows = await connection.fetch(
        f"SELECT {case_columns('c')}, c.decision FROM {SCHEMA}.cases c"
        f" WHERE c.assignee IN (SELECT id FROM {SCHEMA}.agents WHERE NOT online"
        f" AND offline_since <= $1) AND c.{_OPEN} ORDER BY c.id LIMIT $2"
        " FOR UPDATE OF c SKIP LOCKED",
        cutoff,
        RETURNS_PER_ROUND,
    )
    return [_with_decision(row) for row in rows]


async def offline_since(connection: Connection, agent_ids: Collection[str]) -> dict[str, datetime]:
    """Since when these agents have been offline (those online are left out)."""
    rows = await connection.fetch(
        f"SELECT id, offline_since FROM {SCHEMA}.agents WHERE id = ANY($1::text[])"
        " AND offline_since IS NOT NULL",
        sorted(agent_ids),
    )
    return {row["id"]: row["offline_since"] for row in rows}


async def due_echoes(connection: Connection) -> list[tuple[LeaseEcho, CaseState]]:
    """Echoes whose lease holder had until now to claim them, marked collided, with their
    cases; both locked: the cases first (as a reply recording an echo locks them), then the
    echoes no other replica took."""
    candidates = await connection.fetch(
        f"SELECT message_id, case_id::text FROM {SCHEMA}.lease_echoes"
        " WHERE NOT collided AND decide_at <= now() ORDER BY decide_at LIMIT $1",
        ECHOES_PER_ROUND,
    )
    if not candidates:
        return []
    cases = {
        str(row["id"]): read_case(row)
        for row in await connection.fetch(
            f"SELECT {case_columns()} FROM {SCHEMA}.cases WHERE id = ANY($1::uuid[])"
            " ORDER BY id FOR UPDATE",
            sorted({row["case_id"] for row in candidates}),
        )
    }
    rows = await connection.fetch(
        f"UPDATE {SCHEMA}.lease_echoes SET collided = true WHERE message_id IN (SELECT"
        f" message_id FROM {SCHEMA}.lease_echoes WHERE message_id = ANY($1::uuid[])"
        " AND NOT collided AND decide_at <= now() FOR UPDATE SKIP LOCKED)"
        " RETURNING message_id::text, case_id::text, lease_holder, sent_at, decide_at",
        [row["message_id"] for row in candidates],
    )
    due = [
        LeaseEcho(
            row["message_id"],
            row["case_id"],
            row["lease_holder"],
            row["sent_at"],
            row["decide_at"],
            collided=True,
        )
        for row in rows
    ]
    due.sort(key=lambda echo: (echo.decide_at, echo.message_id))
    return [(echo, cases[echo.case_id]) for echo in due]


def _with_decision(row: asyncpg.Record) -> CaseState:
    case = read_case(row)
    if row["decision"] is not None:
        case.decision = RoutingDecision.model_validate_json(row["decision"])
    return case


def _case_with_lease(row: asyncpg.Record) -> tuple[CaseState, Lease | None]:
    case = read_case(row)
    if row["lease_holder"] is None:
        return case, None
    return case, Lease(case.id, row["lease_holder"], row["lease_expires_at"])


class PostgresLeaseTransaction:
    """A reply lease's change: the case read (shared lock: its owner and team hold still),
    the lease row, and the feed entry, committed together."""

    def __init__(self, connection: Connection, feed: list[FeedEntry]) -> None:
        self._connection = connection
        self._feed = feed

    async def case(self, case_id: str) -> CaseState | None:
        row = await self._connection.fetchrow(
            f"SELECT {case_columns()} FROM {SCHEMA}.cases WHERE id = $1 FOR SHARE", case_id
        )
        return None if row is None else read_case(row)

    async def take(self, case_id: str, agent_id: str, ttl: timedelta) -> LeaseAttempt:
        """Take the lease, or renew one's own, unless someone else holds it live: decided by
        one statement, whatever other transactions try at the same time."""
        while True:
            row = await self._connection.fetchrow(
                f"WITH taken AS (INSERT INTO {SCHEMA}.reply_leases AS l"
                " (case_id, agent_id, taken_at, expires_at)"
                " VALUES ($1, $2, now(), now() + $3::interval)"
                " ON CONFLICT (case_id) DO UPDATE SET agent_id = EXCLUDED.agent_id,"
                " taken_at = CASE WHEN l.agent_id = EXCLUDED.agent_id AND l.expires_at > now()"
                " THEN l.taken_at ELSE EXCLUDED.taken_at END, expires_at = EXCLUDED.expires_at"
                " WHERE l.expires_at <= now() OR l.agent_id = EXCLUDED.agent_id"
                " RETURNING l.agent_id, l.expires_at, l.taken_at < now() AS renewed)"
                " SELECT agent_id, expires_at, renewed, true AS taken FROM taken"
                " UNION ALL SELECT agent_id, expires_at, false, false"
                f" FROM {SCHEMA}.reply_leases WHERE case_id = $1"
                " AND NOT EXISTS (SELECT 1 FROM taken)",
                case_id,
                agent_id,
                ttl,
            )
            # No row: the holder's lease committed after this statement's snapshot began (the
            # insert waited for it and lost): look again, with a snapshot that sees it.
            if row is not None:
                lease = Lease(case_id, row["agent_id"], row["expires_at"])
                return LeaseAttempt(lease, taken=row["taken"], renewed=row["renewed"])

    async def lock_lease(self, case_id: str) -> Lease | None:
        row = await self._connection.fetchrow(
            f"SELECT agent_id, expires_at FROM {SCHEMA}.reply_leases"
            " WHERE case_id = $1 AND expires_at > now() FOR UPDATE",
            case_id,
        )
        return None if row is None else Lease(case_id, row["agent_id"], row["expires_at"])

    async def release(self, case_id: str) -> None:
        await self._connection.execute(
            f"DELETE FROM {SCHEMA}.reply_leases WHERE case_id = $1", case_id
        )

    def add_feed(self, entries: Sequence[FeedEntry]) -> None:
        self._feed.extend(entries)


class PostgresDeskStore:
    """`DeskStore` in PostgreSQL: each list read with the feed position it reflects, in one
    snapshot."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def roster_teams(self, person: str) -> list[str] | None:
        async with self._database.pool.acquire() as connection:
            teams = await connection.fetchval(
                f"SELECT teams FROM {SCHEMA}.agents WHERE id = $1", person
            )
        return None if teams is None else list(teams)

    async def owned_cases(self, person: str) -> tuple[int, list[tuple[CaseState, Lease | None]]]:
        return await self._cases_at_position(f"c.assignee = $1 AND c.{_OPEN}", person)

    async def waiting_cases(
        self, teams: Collection[str]
    ) -> tuple[int, list[tuple[CaseState, Lease | None]]]:
        return await self._cases_at_position(
            f"c.team = ANY($1::text[]) AND c.assignee IS NULL AND c.{_OPEN}", sorted(teams)
        )

    async def _cases_at_position(
        self, where: str, argument: object
    ) -> tuple[int, list[tuple[CaseState, Lease | None]]]:
        """The cases and the feed position they reflect, read in one snapshot: a stream
        resumed from that position brings every change made since."""
        async with (
            self._database.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            position = await case_feed.head(connection)
            rows = await connection.fetch(
                f"SELECT {case_columns('c')}, l.agent_id AS lease_holder,"
                f" l.expires_at AS lease_expires_at FROM {SCHEMA}.cases c{_LIVE_LEASE}"
                f" WHERE {where}",
                argument,
            )
        return position, [_case_with_lease(row) for row in rows]

    async def feed_after(self, position: int, limit: int) -> list[FeedRow]:
        async with self._database.pool.acquire() as connection:
            return await case_feed.read_after(connection, position, limit)

    async def feed_head(self) -> int:
        async with self._database.pool.acquire() as connection:
            return await case_feed.head(connection)

    async def feed_bounds(self) -> tuple[int | None, int]:
        async with self._database.pool.acquire() as connection:
            return await case_feed.bounds(connection)


class PostgresLeaseStore:
    """`LeaseStore` in PostgreSQL: a lease change is one short transaction."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @asynccontextmanager
    async def lease_transaction(self) -> AsyncIterator[PostgresLeaseTransaction]:
        feed: list[FeedEntry] = []
        async with self._database.pool.acquire() as connection, connection.transaction():
            yield PostgresLeaseTransaction(connection, feed)
            await case_feed.append(connection, feed)
