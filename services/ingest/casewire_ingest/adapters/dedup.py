"""Deduplication memory in PostgreSQL: the same platform message is published once, even when
the platform redelivers it to another replica or after a restart.

A request first *claims* the keys of its messages, publishes the ones it claimed, then marks
them published. A claim that was never marked published (the request failed or its replica
died) expires, so the platform's retry can publish the message: nothing is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from casewire_common.pg import Database

SCHEMA = "ingest"
MIGRATIONS_PACKAGE = "casewire_ingest.adapters.migrations"


class DedupStore:
    def __init__(self, database: Database, claim_timeout: timedelta) -> None:
        self._database = database
        self._claim_timeout = claim_timeout

    async def claim(self, keys: Sequence[str]) -> set[str]:
        """The keys this request now owns: new ones, and stale claims of failed requests."""
        if not keys:
            return set()
        rows = await self._database.pool.fetch(
            f"INSERT INTO {SCHEMA}.seen_messages (key, claimed_at)"
            " SELECT unnest($1::text[]), clock_timestamp()"
            " ON CONFLICT (key) DO UPDATE SET claimed_at = clock_timestamp()"
            f" WHERE {SCHEMA}.seen_messages.published_at IS NULL"
            f" AND {SCHEMA}.seen_messages.claimed_at < clock_timestamp() - $2::interval"
            " RETURNING key",
            list(keys),
            self._claim_timeout,
        )
        return {row["key"] for row in rows}

    async def mark_published(self, keys: Sequence[str]) -> None:
        if keys:
            await self._database.pool.execute(
                f"UPDATE {SCHEMA}.seen_messages SET published_at = clock_timestamp()"
                " WHERE key = ANY($1::text[])",
                list(keys),
            )

    async def release(self, keys: Sequence[str]) -> None:
        """Give up claims whose messages could not be published, so a retry publishes them."""
        if keys:
            await self._database.pool.execute(
                f"DELETE FROM {SCHEMA}.seen_messages"
                " WHERE key = ANY($1::text[]) AND published_at IS NULL",
                list(keys),
            )

    async def forget_older_than(self, age: timedelta) -> int:
        """Drop memory older than any platform's redelivery window."""
        result = await self._database.pool.execute(
            f"DELETE FROM {SCHEMA}.seen_messages"
            " WHERE claimed_at < clock_timestamp() - $1::interval",
            age,
        )
        return int(result.split()[-1])
