"""`GET|PUT|DELETE /v1/saved-replies[/{id}]`: the saved replies the caller may read, and the
versions leads write through the API (docs/saved-replies.md).

No `from __future__ import annotations`: the routes' `Caller` type is built inside
`saved_replies_api`, as in `entrypoints.http`.
"""

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Response, status

from casewire_router.domain.access import Actor
from casewire_router.domain.saved_replies import SavedReply, SavedReplyContent
from casewire_router.entrypoints.auth import ApiError
from casewire_router.entrypoints.care_views import (
    SavedReplyChangeView,
    SavedReplyRemovalView,
    SavedReplyView,
    saved_reply_view,
)
from casewire_router.entrypoints.http import ActorDependency, _answer
from casewire_router.saved_replies_service import SavedRepliesService, UnknownSavedReply

T = TypeVar("T")

ReplyId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


def saved_replies_api(service: SavedRepliesService, current_actor: ActorDependency) -> APIRouter:
    api = APIRouter(prefix="/v1/saved-replies", tags=["saved replies"])
    Caller = Annotated[Actor, Depends(current_actor)]  # noqa: N806 (a type alias)

    @api.get("")
    async def list_saved_replies(
        actor: Caller,
        team: Annotated[str | None, Query(max_length=256)] = None,
        tag: Annotated[str | None, Query(max_length=256)] = None,
    ) -> list[SavedReplyView]:
        """The saved replies the caller may read (their teams' and those for every team; all
        for admins and services), in id order; optionally those offered to `team` or
        carrying `tag`."""
        return [
            saved_reply_view(entry) for entry in await _found(service.visible(actor, team, tag))
        ]

    @api.get("/{reply_id}")
    async def get_saved_reply(reply_id: ReplyId, actor: Caller) -> SavedReplyView:
        return saved_reply_view(await _found(service.get(actor, reply_id)))

    @api.put("/{reply_id}")
    async def put_saved_reply(
        reply_id: ReplyId, body: SavedReplyContent, response: Response, actor: Caller
    ) -> SavedReplyChangeView:
        """Create (201) or replace the API version of a saved reply, in force over the file's
        reply of the same id until removed. Leads write their teams' replies."""
        reply = SavedReply(id=reply_id, **body.model_dump())
        entry, created = await _found(service.put(actor, reply))
        if created:
            response.status_code = status.HTTP_201_CREATED
        return SavedReplyChangeView(saved_reply=saved_reply_view(entry), created=created)

    @api.delete("/{reply_id}")
    async def delete_saved_reply(reply_id: ReplyId, actor: Caller) -> SavedReplyRemovalView:
        """Remove the API version of a saved reply: the file's is in force again, if any."""
        entry = await _found(service.remove(actor, reply_id))
        return SavedReplyRemovalView(saved_reply=None if entry is None else saved_reply_view(entry))

    return api


async def _found(call: Awaitable[T]) -> T:
    """`_answer`'s mapping, and 404 for an unknown saved reply."""
    try:
        return await _answer(call)
    except UnknownSavedReply as error:
        raise ApiError(status.HTTP_404_NOT_FOUND, "not_found", str(error)) from error
