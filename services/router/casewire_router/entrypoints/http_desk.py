"""The API of an agent's own work and of reply leases: `GET /v1/me/cases`, `/v1/me/queue`,
`/v1/me/stream` (Server-Sent Events) and `POST|DELETE /v1/cases/{id}/reply-lease`.

docs/api.md and docs/agent-desk.md describe them; `desk_service` decides.
"""

# No `from __future__ import annotations`: the routes' `Caller` and `MyDesk` types are built
# inside `desk_api`, and FastAPI must see them as objects (as in `entrypoints.http`).

import json
from collections.abc import AsyncIterable
from datetime import datetime
from typing import Annotated

from casewire_common.events import CaseSnapshot
from fastapi import APIRouter, Depends, Header, Response, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from casewire_router.desk_service import (
    DeskCases,
    DeskService,
    KeepAlive,
    LeaseHeld,
    ReplyLeaseService,
    StreamItem,
    StreamOpened,
    StreamReset,
)
from casewire_router.domain.access import Actor
from casewire_router.domain.case_actions import waiting_since
from casewire_router.domain.desk import Desk
from casewire_router.entrypoints.auth import ApiError
from casewire_router.entrypoints.http import (
    ActorDependency,
    ReplyLeaseView,
    _answer,
    _case_id,
    reply_lease_view,
)

# The feed position a list reflects: open the stream with it as `Last-Event-ID`.
POSITION_HEADER = "Casewire-Stream-Position"
# What the stream tells a client to wait before it reconnects (milliseconds).
RECONNECT_MS = 2000
# A `Last-Event-ID` that is no position of the feed: the stream resets.
NO_POSITION = -1
RESET_REASON = (
    "the changes since Last-Event-ID are no longer kept: reload /v1/me/cases and /v1/me/queue"
)


class DeskCase(CaseSnapshot):
    waiting_since: datetime = Field(
        description="Since when the case has waited: opened, or back in the queue."
    )
    reply_lease: ReplyLeaseView | None = Field(
        description="The live reply lease: who is answering the case now."
    )


class ReplyLeaseTaken(BaseModel):
    case_id: str
    holder: str
    expires_at: datetime = Field(description="Renew (POST again) before then while typing.")
    renewed: bool = Field(description="The caller held it already: extended.")


def desk_api(
    service: DeskService, leases: ReplyLeaseService, current_actor: ActorDependency
) -> APIRouter:
    """The `/v1/me` routes and the reply-lease routes."""

    api = APIRouter(prefix="/v1")
    Caller = Annotated[Actor, Depends(current_actor)]  # noqa: N806 (a type alias)

    async def current_desk(actor: Caller) -> Desk:
        """The caller's desk, resolved before a stream starts (a refusal is then an answer)."""
        return await _answer(service.desk(actor))

    MyDesk = Annotated[Desk, Depends(current_desk)]  # noqa: N806 (a type alias)

    @api.get("/me/cases", tags=["me"])
    async def my_cases(me: MyDesk, response: Response) -> list[DeskCase]:
        """The caller's open cases: most urgent first, then the longest waiting. The header
        `Casewire-Stream-Position` is the stream position the list reflects."""
        return _desk_list(await service.my_cases(me), response)

    @api.get("/me/queue", tags=["me"])
    async def my_queue(me: MyDesk, response: Response) -> list[DeskCase]:
        """What the caller may claim: their teams' waiting cases, in drain order."""
        return _desk_list(await service.my_queue(me), response)

    @api.get("/me/stream", tags=["me"], response_class=EventSourceResponse)
    async def my_stream(
        me: MyDesk,
        last_event_id: Annotated[str | None, Header(max_length=32)] = None,
    ) -> AsyncIterable[ServerSentEvent]:
        """Changes to the caller's cases and their teams' queues, live, as Server-Sent Events
        (`id:` = stream position; send `Last-Event-ID` to resume after it)."""
        async for item in service.stream(me, _position(last_event_id)):
            yield _event(item)

    @api.post(
        "/cases/{case_id}/reply-lease",
        tags=["cases"],
        responses={status.HTTP_409_CONFLICT: {"description": "Someone else is answering."}},
    )
    async def take_reply_lease(case_id: str, actor: Caller) -> ReplyLeaseTaken:
        """Take the case's reply lease before answering, or renew it while typing."""
        try:
            attempt = await _answer(leases.take_lease(actor, _case_id(case_id)))
        except LeaseHeld as held:
            raise ApiError(
                status.HTTP_409_CONFLICT,
                "lease_held",
                str(held),
                # Who holds it and until when, written as the lease views write them.
                extra=ReplyLeaseView(
                    holder=held.lease.holder, expires_at=held.lease.expires_at
                ).model_dump(mode="json"),
            ) from held
        lease = attempt.lease
        return ReplyLeaseTaken(
            case_id=lease.case_id,
            holder=lease.holder,
            expires_at=lease.expires_at,
            renewed=attempt.renewed,
        )

    @api.delete(
        "/cases/{case_id}/reply-lease", tags=["cases"], status_code=status.HTTP_204_NO_CONTENT
    )
    async def release_reply_lease(case_id: str, actor: Caller) -> Response:
        """Release the case's reply lease (its holder, or a lead or an admin)."""
        await _answer(leases.release_lease(actor, _case_id(case_id)))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return api


def _desk_list(listed: DeskCases, response: Response) -> list[DeskCase]:
    response.headers[POSITION_HEADER] = str(listed.position)
    return [
        DeskCase(
            **case.snapshot().model_dump(),
            waiting_since=waiting_since(case),
            reply_lease=reply_lease_view(lease),
        )
        for case, lease in listed.cases
    ]


def _position(last_event_id: str | None) -> int | None:
    """The position a client resumes after: its `Last-Event-ID` (none: from now)."""
    if last_event_id is None or not last_event_id.strip():
        return None
    value = last_event_id.strip()
    return int(value) if value.isdigit() and len(value) <= 18 else NO_POSITION


def _event(item: StreamItem) -> ServerSentEvent:
    if isinstance(item, KeepAlive):
        return ServerSentEvent(comment="keep-alive")
    if isinstance(item, StreamOpened):
        # An id with no data moves the client's Last-Event-ID without an event to handle.
        return ServerSentEvent(comment="live", id=str(item.position), retry=RECONNECT_MS)
    if isinstance(item, StreamReset):
        return ServerSentEvent(
            event="reset",
            id=str(item.position),
            raw_data=json.dumps({"position": item.position, "reason": RESET_REASON}),
            retry=RECONNECT_MS,
        )
    return ServerSentEvent(event=item.type, id=str(item.id), raw_data=item.data.decode())
