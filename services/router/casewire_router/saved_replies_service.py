"""The saved replies' use cases: what a caller may read, what a lead writes through the API
(each change one transaction with its audit event, `casewire.saved_reply.updated`), and the
replies offered on a case, rendered for its customer.

The replies in force are the saved-replies file's (swapped by its watcher, `use_file`) with the
API's versions over them (`domain.saved_replies.catalogue`), read from the store at each use so
that every replica sees a lead's change at once. The store is a port (`SavedReplyStore`):
`adapters.saved_reply_store.PostgresSavedReplyStore` in the service.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Literal, Protocol

from casewire_common import events as ev
from casewire_common import topics

from casewire_router.adapters.care_metrics import CareMetrics
from casewire_router.domain.access import (
    Actor,
    Scope,
    may_read_saved_reply,
    require_saved_reply_change,
    require_saved_reply_read,
    require_scope,
)
from casewire_router.domain.case import CaseState
from casewire_router.domain.case_actions import InvalidInput
from casewire_router.domain.customers import Profile
from casewire_router.domain.saved_replies import (
    Catalogue,
    CatalogueEntry,
    SavedRepliesFile,
    SavedReply,
    StoredReply,
    Suggestion,
    catalogue,
    placeholder_values,
    suggestions,
)
from casewire_router.message_service import EVENT_SOURCE

Change = Literal["created", "updated", "removed"]


class UnknownSavedReply(LookupError):
    """No saved reply (or no API version of it) has this id (HTTP 404)."""


class SavedReplyTransaction(Protocol):
    """One write of one reply: its lock, the write or removal and its event commit together."""

    async def lock(self, reply_id: str) -> StoredReply | None:
        """The reply's API version (None: none), locked by id until the transaction ends."""
        ...

    async def write(self, stored: StoredReply) -> None: ...

    async def remove(self, reply_id: str) -> None: ...

    def add_events(self, records: Iterable[tuple[str, ev.EventRecord]]) -> None: ...


class SavedReplyStore(Protocol):
    async def api_replies(self) -> list[StoredReply]:
        """Every reply written through the API, in id order."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[SavedReplyTransaction]: ...


class SavedRepliesService:
    def __init__(
        self,
        store: SavedReplyStore,
        file: SavedRepliesFile,
        teams: Callable[[], list[str]],
        metrics: CareMetrics,
    ) -> None:
        self._store = store
        self._file = file
        self._teams = teams  # the rules in force's
        self._metrics = metrics
        # The (id, teams) of the replies whose use counters exist, each replica on its own:
        # a reply another replica wrote gets its series at the first read here.
        self._offered: set[tuple[str, tuple[str, ...]]] = set()

    @property
    def file(self) -> SavedRepliesFile:
        return self._file

    async def start(self) -> None:
        """Start the use counters of every reply in force at zero."""
        await self.catalogue()

    def use_file(self, file: SavedRepliesFile) -> None:
        """A new saved-replies file in force (from the next request on)."""
        self._file = file
        self._offer(file.replies)

    def use_teams(self) -> None:
        """The rules' teams changed: the counters of every reply for every team start anew
        (the API's at their next read)."""
        self._offered.clear()
        self._offer(self._file.replies)

    async def catalogue(self) -> Catalogue:
        found = catalogue(self._file, await self._store.api_replies())
        self._offer(entry.reply for entry in found.entries.values())
        return found

    def _offer(self, replies: Iterable[SavedReply]) -> None:
        """Start at zero the (team, reply) use counters of the replies not offered yet, so
        that `increase()` sees their first use."""
        teams = self._teams()
        new = [reply for reply in replies if (reply.id, tuple(reply.teams)) not in self._offered]
        self._offered.update((reply.id, tuple(reply.teams)) for reply in new)
        self._metrics.use_saved_replies(
            (team, reply.id) for reply in new for team in (reply.teams or teams) if team in teams
        )

    # Reads.

    async def visible(
        self, actor: Actor, team: str | None = None, tag: str | None = None
    ) -> list[CatalogueEntry]:
        """The replies the actor may read, in id order; optionally those offered to `team`
        (its own and those for every team) or carrying `tag`."""
        require_scope(actor, Scope.SAVED_REPLIES_READ)
        return [
            entry
            for entry in (await self.catalogue()).entries.values()
            if may_read_saved_reply(actor, entry.reply.teams)
            and (team is None or entry.reply.for_team(team))
            and (tag is None or tag in entry.reply.tags)
        ]

    async def get(self, actor: Actor, reply_id: str) -> CatalogueEntry:
        entry = (await self.catalogue()).entries.get(reply_id)
        if entry is None:
            require_scope(actor, Scope.SAVED_REPLIES_READ)
            raise UnknownSavedReply(f"no saved reply {reply_id!r}")
        require_saved_reply_read(actor, reply_id, entry.reply.teams)
        return entry

    async def require_known(self, reply_id: str) -> None:
        """A reply recorded with `saved_reply_id` must name a saved reply in force (422)."""
        if reply_id not in (await self.catalogue()).entries:
            raise InvalidInput(f"saved_reply_id: no saved reply {reply_id!r}")

    async def suggestions(
        self, actor: Actor, case: CaseState, customer: Profile | None
    ) -> list[Suggestion]:
        """The replies offered on the case (`domain.saved_replies.suggestions`), rendered for
        its customer and for the agent who would send them (the caller, or for a service the
        case's owner); none for a service without `saved-replies:read`."""
        if actor.role == "service" and Scope.SAVED_REPLIES_READ not in actor.scopes:
            return []
        values = placeholder_values(
            case,
            customer_name=customer.name if customer else None,
            customer_handle=customer.handle if customer else None,
            # The caller's name from their token (`name`), else their id.
            agent_name=(actor.name or actor.id) if actor.is_person else case.assignee,
        )
        return suggestions(await self.catalogue(), case, values)

    # Writes.

    async def put(self, actor: Actor, reply: SavedReply) -> tuple[CatalogueEntry, bool]:
        """Write the API version of a reply (over the file's, if it has one); returns it and
        whether the id is new."""
        known = self._teams()
        unknown = [team for team in reply.teams if team not in known]
        if unknown:
            raise InvalidInput(
                f"teams: {', '.join(unknown)} not in the rules file's teams ({', '.join(known)})"
            )
        now = datetime.now(UTC)
        async with self._store.transaction() as work:
            api_version = await work.lock(reply.id)
            from_file = self._file_reply(reply.id)
            current = api_version.reply if api_version is not None else from_file
            require_saved_reply_change(
                actor, reply.id, None if current is None else current.teams, reply.teams
            )
            await work.write(StoredReply(reply, actor.ref, now))
            entry = CatalogueEntry(reply, "api", from_file is not None, actor.ref, now)
            change: Change = "created" if current is None else "updated"
            work.add_events([_audit(reply.id, change, entry, actor, now)])
        self._offer([reply])
        return entry, change == "created"

    async def remove(self, actor: Actor, reply_id: str) -> CatalogueEntry | None:
        """Delete the API version of a reply; returns the file's version, in force again (None:
        the reply existed only through the API and is gone)."""
        now = datetime.now(UTC)
        async with self._store.transaction() as work:
            api_version = await work.lock(reply_id)
            if api_version is None:
                require_saved_reply_change(actor, reply_id, None, None)  # 403 before 404
                raise UnknownSavedReply(
                    f"saved reply {reply_id!r} has no version written through the API"
                )
            require_saved_reply_change(actor, reply_id, api_version.reply.teams, None)
            await work.remove(reply_id)
            from_file = self._file_reply(reply_id)
            entry = None if from_file is None else CatalogueEntry(from_file, "file", False)
            work.add_events([_audit(reply_id, "removed", entry, actor, now)])
        return entry

    def _file_reply(self, reply_id: str) -> SavedReply | None:
        return next((reply for reply in self._file.replies if reply.id == reply_id), None)


def _audit(
    reply_id: str, change: Change, entry: CatalogueEntry | None, actor: Actor, now: datetime
) -> tuple[str, ev.EventRecord]:
    """`casewire.saved_reply.updated`, keyed `saved-reply:<id>`: one reply's changes in order."""
    reply = entry.reply if entry is not None else None
    data = ev.SavedReplyData(
        saved_reply_id=reply_id,
        change=change,
        source=entry.source if entry is not None else None,
        title=reply.title if reply is not None else None,
        text=dict(reply.text) if reply is not None else {},
        teams=list(reply.teams) if reply is not None else [],
        tags=list(reply.tags) if reply is not None else [],
        actor=actor.ref,
    )
    record = ev.encode_event(
        event_id=str(uuid.uuid4()),
        event_type=ev.SAVED_REPLY_UPDATED,
        source=EVENT_SOURCE,
        subject=f"saved-reply:{reply_id}",
        time=now,
        data=data,
    )
    return topics.CASE_EVENTS, record
