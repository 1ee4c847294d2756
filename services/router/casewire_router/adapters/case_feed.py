"""The desks' feed in PostgreSQL (`router.case_feed`): written with the changes, read by the
streams of every replica.

Writing: every transaction of the router that commits case events (the message path, the
case API, the background duties) or changes a reply lease appends its feed entries in one
statement at its end, before its outbox rows and in the same transaction (`unit_with_feed`,
the one place both stores open a unit of work). The statement first takes the feed's
transaction-scoped advisory lock, held until commit, so feed ids are handed out in commit
order: a reader that sees id N has seen every committed row below N, and a stream resumed
after N misses nothing. (Committing writers are already serialized by PostgreSQL's NOTIFY,
which every such transaction sends; the lock adds only the feed and outbox inserts to that.)

Reading live: `FeedHub`, one per replica, LISTENs on one connection of its own and reads the
new rows once for all the replica's streams, handing each row to the subscriptions whose desk
sees it; a catch-up read every few seconds covers a notification missed while reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg
import structlog
from casewire_common.periodic import BackgroundTask
from casewire_common.pg import Connection, Database
from casewire_common.unit_of_work import UnitOfWork, unit_of_work

from casewire_router.adapters.repository import SCHEMA
from casewire_router.domain.case import Placement
from casewire_router.domain.desk import Desk, FeedEntry, FeedRow, sees

log = structlog.get_logger(__name__)

CHANNEL = f"{SCHEMA}_case_feed"
_LOCK = f"feed:{SCHEMA}"
_COLUMNS = "case_id, type, team, owner, waiting, previous_team, previous_owner, was_waiting, data"


async def append(connection: Connection, entries: Sequence[FeedEntry]) -> None:
    """Append entries inside the caller's transaction, in order, in one statement: the lock
    (the CTE, which every row of the join needs first, so it is taken before any id is drawn),
    the rows, and the notification sent on commit."""
    if not entries:
        return
    await connection.execute(
        "WITH serialized AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtext($1)) AS locked,"
        f" pg_notify($2, '') AS notified) INSERT INTO {SCHEMA}.case_feed ({_COLUMNS})"
        f" SELECT {_COLUMNS} FROM serialized, unnest($3::uuid[], $4::text[], $5::text[],"
        " $6::text[], $7::bool[], $8::text[], $9::text[], $10::bool[], $11::bytea[])"
        f" WITH ORDINALITY AS u({_COLUMNS}, position) ORDER BY u.position",
        _LOCK,
        CHANNEL,
        [entry.case_id for entry in entries],
        [entry.type for entry in entries],
        [entry.after.team for entry in entries],
        [entry.after.owner for entry in entries],
        [entry.after.waiting for entry in entries],
        [entry.before.team if entry.before else None for entry in entries],
        [entry.before.owner if entry.before else None for entry in entries],
        [entry.before.waiting if entry.before else False for entry in entries],
        [entry.data for entry in entries],
    )


@asynccontextmanager
async def unit_with_feed(database: Database) -> AsyncIterator[tuple[UnitOfWork, list[FeedEntry]]]:
    """A unit of work on a pooled connection whose feed entries (appended to the list it
    gives) are written at its end, before its outbox rows, in its transaction."""
    feed: list[FeedEntry] = []
    async with database.pool.acquire() as connection, unit_of_work(connection, SCHEMA) as work:
        yield work, feed
        await append(connection, feed)


async def read_after(connection: Connection, position: int, limit: int) -> list[FeedRow]:
    """The committed rows after `position`, in order, at most `limit`."""
    rows = await connection.fetch(
        f"SELECT id, case_id::text, {_COLUMNS.removeprefix('case_id, ')}"
        f" FROM {SCHEMA}.case_feed WHERE id > $1 ORDER BY id LIMIT $2",
        position,
        limit,
    )
    return [
        FeedRow(
            case_id=row["case_id"],
            type=row["type"],
            after=Placement(row["team"], row["owner"], row["waiting"]),
            before=(
                None
                if row["previous_team"] is None
                else Placement(row["previous_team"], row["previous_owner"], row["was_waiting"])
            ),
            data=bytes(row["data"]),
            id=row["id"],
        )
        for row in rows
    ]


async def head(connection: Connection) -> int:
    """The last committed position (0: none kept): everything up to it has committed."""
    position: int = await connection.fetchval(
        f"SELECT coalesce(max(id), 0) FROM {SCHEMA}.case_feed"
    )
    return position


async def bounds(connection: Connection) -> tuple[int | None, int]:
    """The oldest position kept (None: none is) and the last one handed out (committed or
    not): what `domain.desk.resumes` judges a resumed stream by."""
    row = await connection.fetchrow(
        f"SELECT (SELECT min(id) FROM {SCHEMA}.case_feed) AS oldest,"
        f" (SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
        f" FROM {SCHEMA}.case_feed_id_seq) AS newest"
    )
    assert row is not None
    return row["oldest"], row["newest"]


class Subscription:
    """One stream's share of the hub: the rows its desk sees, as they commit. When the stream
    falls too far behind (its queue is full) the hub stops filling it and the stream reads
    what it missed from the table again."""

    def __init__(self, desk: Desk, hub: FeedHub, size: int) -> None:
        self.desk = desk
        self._hub = hub
        self._rows: asyncio.Queue[FeedRow] = asyncio.Queue(size)
        self._lagged = False

    def offer(self, row: FeedRow) -> None:
        if self._lagged or not sees(self.desk, row):
            return
        try:
            self._rows.put_nowait(row)
        except asyncio.QueueFull:
            self._lagged = True
            self._drop_queued()

    async def next(self, timeout: float) -> list[FeedRow] | None:
        """The rows that reached the desk since the last call, waiting up to `timeout` for
        one ([] if none came); None if rows were dropped meanwhile (read them again)."""
        if self._lagged:
            self._lagged = False
            return None
        try:
            first = await asyncio.wait_for(self._rows.get(), timeout)
        except TimeoutError:
            return []
        rows = [first]
        while not self._rows.empty():
            rows.append(self._rows.get_nowait())
        return rows

    def close(self) -> None:
        self._hub.unsubscribe(self)
        self._drop_queued()

    def _drop_queued(self) -> None:
        while not self._rows.empty():
            self._rows.get_nowait()


class FeedHub:
    """The replica's live view of the feed: one LISTEN connection, each new row read once and
    offered to every subscription. Started before the API serves: its position is then set,
    so a stream that subscribes and then reads the table up to its end never misses a row
    committed in between (the hub offers every row after the position it had)."""

    def __init__(
        self,
        dsn: str,
        database: Database,
        *,
        poll_seconds: float,
        page_size: int = 500,
        queue_size: int = 1000,
    ) -> None:
        self._dsn = dsn
        self._database = database
        self._poll_seconds = poll_seconds
        self._page_size = page_size
        self._queue_size = queue_size
        self._subscriptions: set[Subscription] = set()
        self._position = 0
        self._wakeup = asyncio.Event()
        self._task = BackgroundTask("case-feed-hub", self._run)

    @property
    def subscriptions(self) -> int:
        """How many streams this replica serves now."""
        return len(self._subscriptions)

    async def start(self) -> None:
        async with self._database.pool.acquire() as connection:
            self._position = await head(connection)
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    def subscribe(self, desk: Desk) -> Subscription:
        subscription = Subscription(desk, self, self._queue_size)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("case feed listener failed; reconnecting")
                await asyncio.sleep(1.0)

    async def _listen(self) -> None:
        connection = await asyncpg.connect(self._dsn)
        try:
            await connection.add_listener(CHANNEL, self._on_notify)
            while True:
                # Cleared before reading: a commit notified while a read runs brings another.
                self._wakeup.clear()
                await self._catch_up(connection)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._poll_seconds)
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()

    async def _catch_up(self, connection: Connection) -> None:
        if not self._subscriptions:
            # Nobody to give rows to: only keep up. Not past a stream that subscribed while
            # the head was read: it counts on every row after the position it found.
            newest = await head(connection)
            if not self._subscriptions:
                self._position = newest
            return
        while True:
            rows = await read_after(connection, self._position, self._page_size)
            for row in rows:
                for subscription in list(self._subscriptions):
                    subscription.offer(row)
            if rows:
                self._position = rows[-1].id
            if len(rows) < self._page_size:
                return
