"""Deduplication memory in PostgreSQL: the same platform message is published once, even when
the platform redelivers it to another replica or after a restart.

A request first *claims* the keys of its messages, publishes the ones it claimed, then marks
them published. A claim that was never marked published (the request failed or its replica
died) expires, so the platform's retry can publish the message: nothing is lost.

Marks are written in the background, the marks of every request of the last few milliseconds in
one statement: the request is answered once its messages are acknowledged, and until its mark
lands, its claim keeps redeliveries out. A mark is lost only if the process dies in those
milliseconds (shutdown writes what is pending); the message could then be published again by a
redelivery arriving after the claim expired.

Claims and marks of concurrent requests share one statement (group commit): a request waits
for the statement that holds its keys, and when two requests bring the same key, the first
one claims it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import timedelta

import structlog
from casewire_common.pg import Database, pending_migrations
from casewire_common.unit_of_work import AgedTable

from casewire_ingest.adapters.group_commit import GroupCommit

SCHEMA = "ingest"
MIGRATIONS_PACKAGE = "casewire_ingest.adapters.migrations"
# Pruned beyond the retention window (`casewire_common.unit_of_work.RetentionPruner`).
SEEN_MESSAGES = AgedTable(SCHEMA, "seen_messages", "claimed_at")
# How long marks gather before their statement: at 200 requests/s, one statement for four.
MARK_LINGER_SECONDS = 0.02

log = structlog.get_logger(__name__)


class NotMigrated(RuntimeError):
    """The database lacks migrations this code needs."""


async def require_migrated(database: Database) -> None:
    """Refuse to start on a schema older than the code: `casewire-ingest migrate` first."""
    async with database.pool.acquire() as connection:
        pending = await pending_migrations(connection, SCHEMA, MIGRATIONS_PACKAGE)
    if pending:
        raise NotMigrated(f"{pending} database migration(s) pending: run `casewire-ingest migrate`")


class PostgresDedupStore:
    """The dedup memory (`webhook_service.DedupStore`) in PostgreSQL."""

    def __init__(self, database: Database, claim_timeout: timedelta) -> None:
        self._database = database
        self._claim_timeout = claim_timeout
        self._claims: GroupCommit[Sequence[str], set[str]] = GroupCommit(self._claim_groups)
        self._marks: GroupCommit[Sequence[str], None] = GroupCommit(
            self._mark_groups, max_writes=1, linger_seconds=MARK_LINGER_SECONDS
        )
        self._abandoned_checks: GroupCommit[Sequence[str], set[str]] = GroupCommit(
            self._abandoned_groups
        )
        self._marking: set[str] = set()  # published here, their marks not written yet

    def claim(self, keys: Sequence[str]) -> Awaitable[set[str]]:
        """The keys this request now owns: new ones, and stale claims of failed requests.
        Queued at once: the claim goes out while the caller does other work."""
        if not keys:
            claimed: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
            claimed.set_result(set())
            return claimed
        return self._claims.enqueue(keys)

    def mark_published(self, keys: Sequence[str]) -> None:
        """Queue the mark; it is written in the background (see the module's docstring)."""
        if keys:
            self._marking.update(keys)
            self._marks.enqueue(keys).add_done_callback(lambda mark: self._marked(keys, mark))

    def _marked(self, keys: Sequence[str], mark: asyncio.Future[None]) -> None:
        self._marking.difference_update(keys)
        _report_lost_mark(mark)

    async def flush(self) -> None:
        """Write the marks still queued (at shutdown, before the pool closes)."""
        await self._marks.drain()

    async def _claim_groups(self, requests: Sequence[Sequence[str]]) -> list[set[str]]:
        # A key may come twice in one statement only once (ON CONFLICT updates a row once);
        # sorted, so that replicas claiming the same keys lock them in one order.
        owner: dict[str, int] = {}
        for index, keys in enumerate(requests):
            for key in keys:
                owner.setdefault(key, index)
        claimed = await self._claim(sorted(owner))
        owned: list[set[str]] = [set() for _ in requests]
        for key in claimed:
            owned[owner[key]].add(key)
        return owned

    async def _claim(self, keys: list[str]) -> list[str]:
        rows = await self._database.pool.fetch(
            f"INSERT INTO {SCHEMA}.seen_messages (key, claimed_at)"
            " SELECT unnest($1::text[]), clock_timestamp()"
            " ON CONFLICT (key) DO UPDATE SET claimed_at = clock_timestamp()"
            f" WHERE {SCHEMA}.seen_messages.published_at IS NULL"
            f" AND {SCHEMA}.seen_messages.claimed_at < clock_timestamp() - $2::interval"
            " RETURNING key",
            keys,
            self._claim_timeout,
        )
        return [row["key"] for row in rows]

    async def _mark_groups(self, requests: Sequence[Sequence[str]]) -> list[None]:
        await self._database.pool.execute(
            f"UPDATE {SCHEMA}.seen_messages SET published_at = clock_timestamp()"
            " WHERE key = ANY($1::text[])",
            sorted({key for keys in requests for key in keys}),
        )
        return [None] * len(requests)

    def abandoned(self, keys: Sequence[str]) -> Awaitable[set[str]]:
        """The keys whose claim expired unmarked: their request failed before publishing, or
        its ingest died between publishing and marking (the marks of its last milliseconds).
        Which of the two, only the messages topic can tell. Asked by replay, many bodies at
        once: one statement for all of them."""
        return self._abandoned_checks.enqueue(keys)

    async def _abandoned_groups(self, requests: Sequence[Sequence[str]]) -> list[set[str]]:
        rows = await self._database.pool.fetch(
            f"SELECT key FROM {SCHEMA}.seen_messages WHERE key = ANY($1::text[])"
            " AND published_at IS NULL AND claimed_at < clock_timestamp() - $2::interval",
            sorted({key for keys in requests for key in keys}),
            self._claim_timeout,
        )
        found = {row["key"] for row in rows}
        return [found.intersection(keys) for keys in requests]

    async def in_flight(self, keys: Sequence[str]) -> set[str]:
        """Keys claimed and not marked published (the caller could not claim them, so their
        claim has not expired), but for those this process published and is marking now (a
        redelivery right behind its first delivery): only asked for keys seen before."""
        rows = await self._database.pool.fetch(
            f"SELECT key FROM {SCHEMA}.seen_messages WHERE key = ANY($1::text[])"
            " AND published_at IS NULL",
            list(keys),
        )
        return {row["key"] for row in rows} - self._marking

    async def release(self, keys: Sequence[str]) -> None:
        """Give up claims whose messages could not be published, so a retry publishes them."""
        if keys:
            await self._database.pool.execute(
                f"DELETE FROM {SCHEMA}.seen_messages"
                " WHERE key = ANY($1::text[]) AND published_at IS NULL",
                list(keys),
            )


def _report_lost_mark(mark: asyncio.Future[None]) -> None:
    error = None if mark.cancelled() else mark.exception()
    if mark.cancelled() or error is not None:
        log.warning(
            "dedup marks not written: their claims expire, a later redelivery may publish again",
            error="cancelled" if error is None else type(error).__name__,
        )
