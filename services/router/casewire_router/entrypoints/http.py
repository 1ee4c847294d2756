"""The router's HTTP API (`/v1`): team queues, cases and what agents do to them, agents.

Every endpoint needs a bearer token naming who calls (an OpenID Connect token of an agent, a
lead or an admin, or a named service token; `entrypoints.auth`), and `domain.access` decides
what that caller may do. Without an identity provider or service tokens the API answers 503
(it is never open). docs/api.md and docs/identity.md describe it.
"""

# No `from __future__ import annotations`: the routes' `Caller` type is built inside
# `case_api`, and FastAPI must see it as an object, not as a name to look up in this module.

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Self, TypeVar

from casewire_common.events import CaseSnapshot, RoutingDecision
from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from casewire_router.adapters.case_store import StoredMessage
from casewire_router.case_service import ActionResult, AgentResult, CaseNotFound, CaseService
from casewire_router.customer_service import CustomerService
from casewire_router.domain.access import Actor, Forbidden
from casewire_router.domain.assignment import AgentState
from casewire_router.domain.case import CaseState
from casewire_router.domain.case_actions import (
    REPLY_ID_PREFIX,
    InvalidInput,
    TransitionError,
    UnknownAgent,
    in_queue,
    waiting_since,
)
from casewire_router.domain.leases import Lease
from casewire_router.entrypoints.auth import forbidden
from casewire_router.entrypoints.care_views import (
    CustomerSummaryView,
    SuggestedReplyView,
    customer_summary_view,
    suggestion_view,
)
from casewire_router.saved_replies_service import SavedRepliesService

T = TypeVar("T")

# A reply's `sent_at` may run ahead of the router's clock by this much (clock skew).
REPLY_CLOCK_SKEW = timedelta(minutes=2)

AgentId = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._@-]+$")]
Team = Annotated[str, Path(min_length=1, max_length=256)]
Language = Annotated[str, Field(pattern=r"^[a-z]{2}$")]
ActorDependency = Callable[..., Awaitable[Actor]]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimBody(_Body):
    agent_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Who takes the case: default the caller; a lead (or a service) names an"
        " agent of the case's team.",
    )
    force: bool = Field(
        default=False,
        description="Leads: assign even over the agent's capacity or while offline.",
    )


class AssignBody(ClaimBody):
    agent_id: str = Field(min_length=1, max_length=256)


class ReplyBody(_Body):
    agent_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Service tokens only: the agent who wrote the reply (a person's reply is"
        " theirs).",
    )
    text: str = Field(max_length=65536)
    sent_at: AwareDatetime | None = Field(default=None, description="Default: now.")
    saved_reply_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The saved reply the text came from (its use is counted); it must exist.",
    )
    platform_message_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=r"^\S+$",
        description="A reply sent through the platform's API: the id the platform gave it. The"
        " platform's echo of it is then this reply (counted once, and not a collision when it"
        " is yours).",
    )

    @field_validator("platform_message_id")
    @classmethod
    def _from_a_platform(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(REPLY_ID_PREFIX):
            raise ValueError(f"{REPLY_ID_PREFIX} ids are the router's own, not a platform's")
        return value


class AgentBody(_Body):
    teams: list[str] = Field(min_length=1, max_length=100)
    languages: list[Language] = Field(default_factory=list, max_length=100)
    capacity: int = Field(ge=0, le=10_000)
    online: bool = False


class AgentPatch(_Body):
    online: bool | None = None
    capacity: int | None = Field(default=None, ge=0, le=10_000)

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.online is None and self.capacity is None:
            raise ValueError("give online, capacity or both")
        return self


class QueuedCase(CaseSnapshot):
    waiting_since: datetime


class Assignment(BaseModel):
    case_id: str
    agent_id: str


class CaseActionView(BaseModel):
    case: CaseSnapshot
    assigned_from_queue: list[Assignment] = Field(
        description="Waiting cases the freed capacity went to, in the same transaction."
    )


class ReplyView(CaseActionView):
    first_response: bool
    collision: bool = Field(
        description="The reply collided: someone else held the case's reply lease, or with no"
        " lease the case had another owner (casewire.case.collision)."
    )
    seen_on_platform: bool = Field(
        description="The platform's echo of this reply had been processed already: the reply"
        " is that message, counted once."
    )


class ReplyLeaseView(BaseModel):
    holder: str = Field(description="Who is answering the case.")
    expires_at: datetime = Field(description="Until when, unless they renew it.")


class MessageView(BaseModel):
    id: str
    direction: str
    author_id: str
    platform_message_id: str
    text: str | None = Field(description="null once the author deleted the message")
    language: str | None
    sent_at: datetime
    received_at: datetime
    edited: bool
    edited_at: datetime | None
    deleted: bool
    deleted_at: datetime | None
    bot_phase: bool = Field(
        description="Sent while a chatbot answered the conversation: the bot's transcript"
        " (docs/handover.md), never a response."
    )


class CaseDetail(BaseModel):
    case: CaseSnapshot
    waiting_since: datetime | None = Field(description="Set while the case waits in the queue.")
    decision: RoutingDecision | None
    messages: list[MessageView]
    suggested_replies: list[SuggestedReplyView] = Field(
        description="Saved replies to answer with, rendered for this customer in the case's"
        " language (else the team's default): the rule's reply_template first."
    )
    customer: CustomerSummaryView | None = Field(
        description="Who the customer is, over the cases the caller may see (null for a"
        " service without customers:read)."
    )
    reply_lease: ReplyLeaseView | None = Field(
        default=None, description="The live reply lease: who is answering the case now."
    )


class AgentView(BaseModel):
    id: str
    teams: list[str]
    languages: list[str]
    capacity: int
    online: bool
    load: int = Field(description="Open cases the agent owns.")
    last_assigned_at: datetime | None


class AgentChangeView(BaseModel):
    agent: AgentView
    created: bool
    assigned_from_queue: list[Assignment]


def case_api(
    service: CaseService,
    current_actor: ActorDependency,
    saved_replies: SavedRepliesService,
    customers: CustomerService,
) -> APIRouter:
    """The `/v1` routes: each knows its caller (`current_actor`) and asks the service layer,
    which applies `domain.access`. A case view also offers saved replies and sums up the
    customer."""

    api = APIRouter(prefix="/v1", tags=["cases"])
    Caller = Annotated[Actor, Depends(current_actor)]  # noqa: N806 (a type alias)

    @api.get("/teams/{team}/queue")
    async def team_queue(team: Team, actor: Caller) -> list[QueuedCase]:
        """The team's waiting cases in drain order: most urgent first, then longest waiting."""
        return [
            QueuedCase(**case.snapshot().model_dump(), waiting_since=waiting_since(case))
            for case in await _answer(service.team_queue(actor, team))
        ]

    @api.get("/cases/{case_id}")
    async def get_case(case_id: str, actor: Caller) -> CaseDetail:
        case, messages = await _answer(service.case_detail(actor, _case_id(case_id)))
        waiting = waiting_since(case) if in_queue(case) else None
        profile, customer = await customers.for_case(actor, case)
        return CaseDetail(
            case=case.snapshot(),
            waiting_since=waiting,
            decision=case.decision,
            messages=[_message_view(message) for message in messages],
            reply_lease=reply_lease_view(await service.live_lease(case.id)),
            suggested_replies=[
                suggestion_view(suggestion)
                for suggestion in await saved_replies.suggestions(actor, case, profile)
            ],
            customer=customer_summary_view(customer),
        )

    @api.post("/cases/{case_id}/claim")
    async def claim(case_id: str, actor: Caller, body: ClaimBody | None = None) -> CaseActionView:
        """An agent takes a waiting case (a lead may name the agent)."""
        body = body or ClaimBody()
        return _action_view(
            await _answer(service.claim(actor, _case_id(case_id), body.agent_id, force=body.force))
        )

    @api.post("/cases/{case_id}/reassign")
    async def reassign(case_id: str, body: AssignBody, actor: Caller) -> CaseActionView:
        """Give the case to another agent; the previous owner's freed place drains the queue."""
        return _action_view(
            await _answer(
                service.reassign(actor, _case_id(case_id), body.agent_id, force=body.force)
            )
        )

    @api.post("/cases/{case_id}/pending")
    async def pending(case_id: str, actor: Caller) -> CaseActionView:
        """Waiting on the customer; their next message hands it back to the owner."""
        return _action_view(await _answer(service.set_pending(actor, _case_id(case_id))))

    @api.post("/cases/{case_id}/resolve")
    async def resolve(case_id: str, actor: Caller) -> CaseActionView:
        return _action_view(await _answer(service.close(actor, _case_id(case_id), "resolved")))

    @api.post("/cases/{case_id}/no-action")
    async def no_action(case_id: str, actor: Caller) -> CaseActionView:
        """Close a case that needs no reply (spam, praise, a troll)."""
        return _action_view(await _answer(service.close(actor, _case_id(case_id), "no_action")))

    @api.post("/cases/{case_id}/reopen")
    async def reopen(case_id: str, actor: Caller) -> CaseActionView:
        return _action_view(await _answer(service.reopen(actor, _case_id(case_id))))

    @api.post("/cases/{case_id}/replies", status_code=status.HTTP_201_CREATED)
    async def reply(case_id: str, body: ReplyBody, actor: Caller, response: Response) -> ReplyView:
        """Record a reply made outside the router's sight (it counts for response times), or
        sent through the platform's API (`platform_message_id`): 201, or 200 when its echo
        had been seen already."""
        if body.sent_at is not None and body.sent_at > datetime.now(UTC) + REPLY_CLOCK_SKEW:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "sent_at is in the future")
        if body.saved_reply_id is not None:
            await _answer(saved_replies.require_known(body.saved_reply_id))
        result = await _answer(
            service.reply(
                actor,
                _case_id(case_id),
                body.agent_id,
                body.text,
                body.sent_at,
                body.saved_reply_id,
                body.platform_message_id,
            )
        )
        if result.seen_on_platform:
            response.status_code = status.HTTP_200_OK
        return ReplyView(
            **_action_view(result.action).model_dump(),
            first_response=result.first_response,
            collision=result.collision,
            seen_on_platform=result.seen_on_platform,
        )

    @api.get("/agents", tags=["agents"])
    async def list_agents(actor: Caller) -> list[AgentView]:
        """The agents the caller may see: all (admins, services), their teams' (leads),
        themselves (agents)."""
        return [_agent_view(agent) for agent in await _answer(service.agents(actor))]

    @api.put("/agents/{agent_id}", tags=["agents"])
    async def put_agent(
        agent_id: AgentId, body: AgentBody, response: Response, actor: Caller
    ) -> AgentChangeView:
        """Create an agent (201) or replace their teams, languages, capacity and presence."""
        result = await _answer(
            service.put_agent(
                actor,
                agent_id,
                list(dict.fromkeys(body.teams)),
                list(dict.fromkeys(body.languages)),
                body.capacity,
                body.online,
            )
        )
        if result.created:
            response.status_code = status.HTTP_201_CREATED
        return _agent_change_view(result)

    @api.patch("/agents/{agent_id}", tags=["agents"])
    async def patch_agent(agent_id: AgentId, body: AgentPatch, actor: Caller) -> AgentChangeView:
        """Presence and capacity: going online or raising capacity takes waiting cases at
        once; going offline keeps the agent's open cases."""
        result = await _answer(
            service.patch_agent(actor, agent_id, online=body.online, capacity=body.capacity)
        )
        return _agent_change_view(result)

    return api


async def _answer(call: Awaitable[T]) -> T:
    """Domain refusals as HTTP answers: not allowed 403, unknown case or agent 404, invalid
    transition 409, input that contradicts the case 422."""
    try:
        return await call
    except Forbidden as error:
        raise forbidden(error) from error
    except (CaseNotFound, UnknownAgent) as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    except TransitionError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    except InvalidInput as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error


def _case_id(raw: str) -> str:
    """Case ids are UUIDs: anything else names no case."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {raw}") from None


def _assignments(cases: list[CaseState]) -> list[Assignment]:
    return [Assignment(case_id=case.id, agent_id=case.assignee or "") for case in cases]


def _action_view(result: ActionResult) -> CaseActionView:
    return CaseActionView(
        case=result.case.snapshot(), assigned_from_queue=_assignments(result.assigned_from_queue)
    )


def _agent_view(agent: AgentState) -> AgentView:
    return AgentView(
        id=agent.id,
        teams=agent.teams,
        languages=agent.languages,
        capacity=agent.capacity,
        online=agent.online,
        load=agent.load,
        last_assigned_at=agent.last_assigned_at,
    )


def _agent_change_view(result: AgentResult) -> AgentChangeView:
    return AgentChangeView(
        agent=_agent_view(result.agent),
        created=result.created,
        assigned_from_queue=_assignments(result.assigned_from_queue),
    )


def reply_lease_view(lease: Lease | None) -> ReplyLeaseView | None:
    return (
        None if lease is None else ReplyLeaseView(holder=lease.holder, expires_at=lease.expires_at)
    )


def _message_view(message: StoredMessage) -> MessageView:
    deleted = message.deleted_at is not None
    return MessageView(
        id=message.id,
        direction=message.direction,
        author_id=message.author_id,
        platform_message_id=message.platform_message_id,
        text=None if deleted else message.text,
        language=message.language,
        sent_at=message.sent_at,
        received_at=message.received_at,
        edited=message.edited_at is not None,
        edited_at=message.edited_at,
        deleted=deleted,
        deleted_at=message.deleted_at,
        bot_phase=message.bot_phase,
    )
