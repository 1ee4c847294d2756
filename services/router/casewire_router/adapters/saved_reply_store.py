"""Saved replies written through the API, in PostgreSQL (`saved_replies`): read by every
replica at each use, so a lead's change is in force everywhere at once; each write commits
with its audit event (`casewire.saved_reply.updated`) through the outbox.

`PostgresSavedReplyStore` is the `SavedReplyStore` of `saved_replies_service`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import asyncpg
from casewire_common import events as ev
from casewire_common.events import ActorRef
from casewire_common.outbox import OutboxRelay
from casewire_common.pg import Connection, Database
from casewire_common.unit_of_work import UnitOfWork, unit_of_work

from casewire_router.adapters.repository import SCHEMA
from casewire_router.domain.saved_replies import SavedReply, StoredReply

_COLUMNS = "id, content, updated_by_id, updated_by_role, updated_at"


async def api_replies(connection: Connection) -> list[StoredReply]:
    rows = await connection.fetch(f"SELECT {_COLUMNS} FROM {SCHEMA}.saved_replies ORDER BY id")
    return [_stored(row) for row in rows]


class PostgresSavedReplyTransaction:
    """One unit of work: the reply's lock, its write or removal, and the audit event."""

    def __init__(self, work: UnitOfWork) -> None:
        self._work = work
        self._connection: Connection = work.connection

    async def lock(self, reply_id: str) -> StoredReply | None:
        """The API version of the reply (None: there is none), locked by id until the end of
        the transaction, whether it exists or not: two writers of one id take turns."""
        await self._connection.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"saved-reply:{reply_id}"
        )
        row = await self._connection.fetchrow(
            f"SELECT {_COLUMNS} FROM {SCHEMA}.saved_replies WHERE id = $1", reply_id
        )
        return None if row is None else _stored(row)

    async def write(self, stored: StoredReply) -> None:
        await self._connection.execute(
            f"INSERT INTO {SCHEMA}.saved_replies ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content,"
            " updated_by_id = EXCLUDED.updated_by_id, updated_by_role = EXCLUDED.updated_by_role,"
            " updated_at = EXCLUDED.updated_at",
            stored.reply.id,
            stored.reply.model_dump_json(exclude={"id"}),
            stored.updated_by.id,
            stored.updated_by.role,
            stored.updated_at,
        )

    async def remove(self, reply_id: str) -> None:
        await self._connection.execute(
            f"DELETE FROM {SCHEMA}.saved_replies WHERE id = $1", reply_id
        )

    def add_events(self, records: Iterable[tuple[str, ev.EventRecord]]) -> None:
        self._work.add_events(records)


class PostgresSavedReplyStore:
    def __init__(self, database: Database, relay: OutboxRelay) -> None:
        self._database = database
        self._relay = relay

    async def api_replies(self) -> list[StoredReply]:
        async with self._database.pool.acquire() as connection:
            return await api_replies(connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresSavedReplyTransaction]:
        async with (
            self._database.pool.acquire() as connection,
            unit_of_work(connection, SCHEMA) as work,
        ):
            yield PostgresSavedReplyTransaction(work)
        if work.events:
            self._relay.wake()


def _stored(row: asyncpg.Record) -> StoredReply:
    return StoredReply(
        reply=SavedReply.model_validate({**json.loads(row["content"]), "id": row["id"]}),
        updated_by=ActorRef(id=row["updated_by_id"], role=row["updated_by_role"]),
        updated_at=row["updated_at"],
    )
