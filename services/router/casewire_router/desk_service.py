"""An agent's own work and reply leases: the use cases of `GET /v1/me/...` and
`POST|DELETE /v1/cases/{id}/reply-lease` (docs/agent-desk.md).

The lists are read with the feed position they reflect, and the stream goes on from a
position: every change committed after it that reaches the desk (`domain.desk.sees`), read from
the feed table, then live from the replica's `LiveFeed` (whichever replica the client reaches).
The offline returns and the echo decisions change cases, so they are `CaseService` use cases.

Two services, each over its own ports: `DeskService` (the lists and the stream: `DeskStore`,
`LiveFeed`) and `ReplyLeaseService` (`LeaseStore`, `LeaseTransaction`); `adapters.desk_store`
and `adapters.case_feed` in the service.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from casewire_common.messages import UtcDatetime
from pydantic import BaseModel, ConfigDict

from casewire_router.case_service import CaseNotFound
from casewire_router.domain.access import Actor, require_lease, require_lease_release
from casewire_router.domain.case import CaseState
from casewire_router.domain.case_actions import TransitionError, is_open
from casewire_router.domain.desk import (
    LEASE_RELEASED,
    LEASE_TAKEN,
    Desk,
    FeedEntry,
    FeedRow,
    desk_of,
    resumes,
    sees,
)
from casewire_router.domain.leases import Lease, LeaseAttempt
from casewire_router.domain.queue import queue_order

PAGE_SIZE = 500  # feed rows read at a time when a stream catches up


class LeaseHeld(Exception):
    """Someone else holds the case's live reply lease (HTTP 409, naming them)."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(
            f"{lease.holder!r} is answering case {lease.case_id} (reply lease until"
            f" {lease.expires_at.isoformat()})"
        )
        self.lease = lease


class ReplyLeaseData(BaseModel):
    """The data of the stream's `casewire.reply_lease.taken|released` events."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    holder: str
    expires_at: UtcDatetime
    renewed: bool = False  # taken: the holder had it already and extended it
    released_by: str | None = None  # released: who did (the holder, a lead or an admin)


@dataclass(frozen=True)
class DeskCases:
    """A desk's list: the cases with their live leases, and the feed position it reflects
    (resume the stream from it to miss nothing)."""

    position: int
    cases: list[tuple[CaseState, Lease | None]]


@dataclass(frozen=True)
class StreamOpened:
    """The stream has caught up and goes on live from `position`."""

    position: int


@dataclass(frozen=True)
class StreamReset:
    """The stream could not go on from the client's position (pruned, or not one of this
    feed's): reload the lists; it goes on from `position`."""

    position: int


@dataclass(frozen=True)
class KeepAlive:
    """Nothing happened for a while."""


StreamItem = FeedRow | StreamOpened | StreamReset | KeepAlive


class LeaseTransaction(Protocol):
    """One lease change: the case read (held still), the lease, the feed entry, committed
    together."""

    async def case(self, case_id: str) -> CaseState | None: ...

    async def take(self, case_id: str, agent_id: str, ttl: timedelta) -> LeaseAttempt:
        """Take the lease or renew one's own, unless someone else holds it live."""
        ...

    async def lock_lease(self, case_id: str) -> Lease | None:
        """The live lease, locked; None: nobody holds one."""
        ...

    async def release(self, case_id: str) -> None: ...

    def add_feed(self, entries: Sequence[FeedEntry]) -> None: ...


class DeskStore(Protocol):
    """Where the desks' lists (with their live leases) and the feed are read."""

    async def roster_teams(self, person: str) -> list[str] | None: ...

    async def owned_cases(self, person: str) -> tuple[int, list[tuple[CaseState, Lease | None]]]:
        """The person's open cases with their live leases, and the feed position they reflect."""
        ...

    async def waiting_cases(
        self, teams: Collection[str]
    ) -> tuple[int, list[tuple[CaseState, Lease | None]]]:
        """The waiting cases of these teams with their live leases, and the feed position."""
        ...

    async def feed_after(self, position: int, limit: int) -> list[FeedRow]: ...

    async def feed_head(self) -> int:
        """The last committed position: everything up to it has committed."""
        ...

    async def feed_bounds(self) -> tuple[int | None, int]:
        """The oldest position kept (None: none) and the last one handed out."""
        ...


class LeaseStore(Protocol):
    """Where the reply leases are changed, one transaction a change."""

    def lease_transaction(self) -> AbstractAsyncContextManager[LeaseTransaction]: ...


class LiveSubscription(Protocol):
    async def next(self, timeout: float) -> list[FeedRow] | None:
        """The rows that reached the desk since the last call, waiting up to `timeout` ([]:
        none came); None: rows were dropped (the stream fell behind), read them again."""
        ...

    def close(self) -> None: ...


class LiveFeed(Protocol):
    """The replica's live view of the feed."""

    def subscribe(self, desk: Desk) -> LiveSubscription: ...


@dataclass
class _Cursor:
    position: int


class DeskService:
    """What a person sees of their own work, live."""

    def __init__(
        self,
        store: DeskStore,
        live: LiveFeed,
        *,
        keepalive_seconds: float,
        stream_seconds: float,
    ) -> None:
        self._store = store
        self._live = live
        self._keepalive_seconds = keepalive_seconds
        self._stream_seconds = stream_seconds

    async def desk(self, actor: Actor) -> Desk:
        """The actor's desk (`domain.desk.desk_of`); `Forbidden` for a service token."""
        roster = None
        if actor.is_person and actor.role != "agent":
            roster = await self._store.roster_teams(actor.id)
        return desk_of(actor, roster)

    async def my_cases(self, desk: Desk) -> DeskCases:
        """The desk's open cases, most urgent first, then the longest waiting."""
        position, cases = await self._store.owned_cases(desk.person)
        return DeskCases(position, sorted(cases, key=lambda item: queue_order(item[0])))

    async def my_queue(self, desk: Desk) -> DeskCases:
        """What the desk may claim: its teams' waiting cases, in drain order."""
        if not desk.teams:
            return DeskCases(await self._store.feed_head(), [])
        position, cases = await self._store.waiting_cases(desk.teams)
        return DeskCases(position, sorted(cases, key=lambda item: queue_order(item[0])))

    async def stream(self, desk: Desk, last_event_id: int | None) -> AsyncIterator[StreamItem]:
        """The changes that reach the desk, from after `last_event_id` (None: from now), in
        commit order and each once; a `StreamOpened` once caught up, a `KeepAlive` when
        nothing came for a while; it ends after the stream's longest duration (the client
        reconnects with its last id, and a fresh token)."""
        subscription = self._live.subscribe(desk)  # first: no row may pass unseen meanwhile
        try:
            if last_event_id is None:
                cursor = _Cursor(await self._store.feed_head())
            else:
                cursor = _Cursor(last_event_id)
                if not resumes(last_event_id, *await self._store.feed_bounds()):
                    cursor.position = await self._store.feed_head()
                    yield StreamReset(cursor.position)
            async for row in self._catch_up(desk, cursor):
                yield row
            yield StreamOpened(cursor.position)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._stream_seconds
            while (remaining := deadline - loop.time()) > 0:
                rows = await subscription.next(min(self._keepalive_seconds, remaining))
                if rows is None:  # it fell behind and rows were dropped: read them again
                    async for row in self._catch_up(desk, cursor):
                        yield row
                elif rows:
                    for row in rows:
                        if row.id > cursor.position:  # the catch-up may have given it
                            cursor.position = row.id
                            yield row
                elif deadline > loop.time():
                    yield KeepAlive()
        finally:
            subscription.close()

    async def _catch_up(self, desk: Desk, cursor: _Cursor) -> AsyncIterator[FeedRow]:
        """The committed rows after the cursor that reach the desk, from the table; the cursor
        ends at the last row read, seen by the desk or not."""
        while True:
            rows = await self._store.feed_after(cursor.position, PAGE_SIZE)
            for row in rows:
                cursor.position = row.id
                if sees(desk, row):
                    yield row
            if len(rows) < PAGE_SIZE:
                return


class ReplyLeaseService:
    """The reply leases that keep two people from answering one case."""

    def __init__(self, store: LeaseStore, *, lease_ttl: timedelta) -> None:
        self._store = store
        self._lease_ttl = lease_ttl

    async def take_lease(self, actor: Actor, case_id: str) -> LeaseAttempt:
        """Take the case's reply lease, or renew one's own (for the lease's TTL from now);
        `LeaseHeld` while someone else holds it live."""
        async with self._store.lease_transaction() as work:
            case = await work.case(case_id)
            if case is None:
                raise CaseNotFound(f"no case {case_id}")
            require_lease(actor, case)
            if not is_open(case):
                raise TransitionError(f"case {case_id} is {case.status}: nobody answers it now")
            attempt = await work.take(case_id, actor.id, self._lease_ttl)
            if not attempt.taken:
                raise LeaseHeld(attempt.lease)
            lease = attempt.lease
            data = ReplyLeaseData(
                case_id=case_id,
                holder=lease.holder,
                expires_at=lease.expires_at,
                renewed=attempt.renewed,
            )
            work.add_feed([_lease_entry(case, LEASE_TAKEN, data)])
        return attempt

    async def release_lease(self, actor: Actor, case_id: str) -> Lease | None:
        """Release the case's reply lease: its holder, or a lead or an admin; returns the
        lease released (None: nobody held one, nothing to do)."""
        async with self._store.lease_transaction() as work:
            case = await work.case(case_id)
            if case is None:
                raise CaseNotFound(f"no case {case_id}")
            lease = await work.lock_lease(case_id)
            require_lease_release(actor, case, lease.holder if lease is not None else None)
            if lease is None:
                return None
            await work.release(case_id)
            data = ReplyLeaseData(
                case_id=case_id,
                holder=lease.holder,
                expires_at=lease.expires_at,
                released_by=actor.id,
            )
            work.add_feed([_lease_entry(case, LEASE_RELEASED, data)])
        return lease


def _lease_entry(case: CaseState, event_type: str, data: ReplyLeaseData) -> FeedEntry:
    """A lease change as a feed entry of its case (which does not move: before = after)."""
    placement = case.placement()
    return FeedEntry(case.id, event_type, placement, placement, data.model_dump_json().encode())
