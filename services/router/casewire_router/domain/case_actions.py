"""What people do to a case: claim, reassign, pending, resolve, reopen, record a reply.

Pure transitions over plain data: each checks that the move is allowed (or raises
`TransitionError`), changes the case and the agents' load, and records the events on a
`RoutingOutcome`. An agent's load is the number of open cases they own; a closed case keeps
the agent who owned it (for reporting) without counting towards their load.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from casewire_common import events as ev
from casewire_common import messages
from casewire_common.events import CaseStatus
from casewire_common.messages import Author, CanonicalMessage

from casewire_router.domain.assignment import AgentState
from casewire_router.domain.case import CLOSED_STATUSES, CaseState
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.threading import reopen_case

# The platform message ids of replies recorded through the API (they never came from a platform).
REPLY_ID_PREFIX = "casewire-api:"
# The `reason` of a case returned to its queue because its owner stayed offline.
OWNER_OFFLINE = "owner_offline"


class TransitionError(Exception):
    """The case is not in a state that allows the action (HTTP 409)."""


class UnknownAgent(LookupError):
    """No agent has this id (HTTP 404)."""


class InvalidInput(ValueError):
    """The request contradicts the case (HTTP 422)."""


def is_open(case: CaseState) -> bool:
    return case.status not in CLOSED_STATUSES


def in_queue(case: CaseState) -> bool:
    """Waiting in its team queue: open and nobody owns it (queued, or reopened without owner)."""
    return is_open(case) and case.assignee is None


def waiting_since(case: CaseState) -> datetime:
    return case.queued_at or case.opened_at


def claim(
    case: CaseState,
    agent_id: str,
    agents: Mapping[str, AgentState],
    outcome: RoutingOutcome,
    now: datetime,
    *,
    force: bool = False,
) -> None:
    """An agent takes a case from the queue."""
    agent = _agent(agents, agent_id)
    _require_open(case, "claim")
    if case.assignee is not None:
        raise TransitionError(
            f"case {case.id} is already assigned to {case.assignee!r}: reassign it instead"
        )
    _require_fit(case, agent, force)
    outcome.assign(case, agent, now)


def reassign(
    case: CaseState,
    agent_id: str,
    agents: Mapping[str, AgentState],
    outcome: RoutingOutcome,
    now: datetime,
    *,
    force: bool = False,
) -> None:
    """Give a case to another agent; the previous owner's load drops. A pending case stays
    pending (the customer still owes an answer), only its owner changes."""
    agent = _agent(agents, agent_id)
    _require_open(case, "reassign")
    if case.assignee == agent.id:
        raise TransitionError(f"case {case.id} is already assigned to {agent.id!r}")
    _require_fit(case, agent, force)
    previous_owner = agents.get(case.assignee) if case.assignee is not None else None
    if previous_owner is not None:
        outcome.agents[previous_owner.id] = previous_owner  # so that `assign` releases them
    if case.status != "pending":
        outcome.assign(case, agent, now)
        return
    if previous_owner is not None:
        outcome.release(previous_owner)
    agent.load += 1
    agent.last_assigned_at = now
    outcome.agents[agent.id] = agent
    case.assignee = agent.id
    outcome.cases[case.id] = case
    outcome.emit(ev.CASE_ASSIGNED, case, agent_id=agent.id, previous_status="pending")


def set_pending(case: CaseState, outcome: RoutingOutcome) -> None:
    """Waiting on the customer: the owner keeps the case (and its load), the SLA resolution
    clock pauses where the policy says so; the customer's next message (message path) hands
    it back to the owner."""
    _require_open(case, "set pending")
    if case.status == "pending":
        raise TransitionError(f"case {case.id} is already pending")
    if case.assignee is None:
        raise TransitionError(f"case {case.id} has no owner: claim it before setting it pending")
    outcome.change_status(case, "pending", agent_id=case.assignee)


def close(
    case: CaseState,
    status: CaseStatus,
    agents: Mapping[str, AgentState],
    outcome: RoutingOutcome,
    now: datetime,
) -> None:
    """Resolve a case (or close it as needing no action): its owner's load drops; the owner
    stays recorded on the case."""
    if status not in CLOSED_STATUSES:
        raise ValueError(f"{status!r} does not close a case")
    _require_open(case, "resolve" if status == "resolved" else "close as no_action")
    owner = agents.get(case.assignee) if case.assignee is not None else None
    if owner is not None:
        outcome.release(owner)
    case.resolved_at = now
    outcome.change_status(case, status, agent_id=case.assignee)


def reopen(
    case: CaseState,
    agents: Mapping[str, AgentState],
    outcome: RoutingOutcome,
    now: datetime,
    message_id: str | None = None,
) -> None:
    """A closed case opens again: see `routing.reopen_case` (the message path reopens the
    same way)."""
    if is_open(case):
        raise TransitionError(f"case {case.id} is {case.status}, not closed: nothing to reopen")
    reopen_case(case, agents, outcome, now, message_id)


def return_to_queue(
    case: CaseState, agents: Mapping[str, AgentState], outcome: RoutingOutcome
) -> None:
    """An open case whose owner stayed offline goes back to its team queue: nobody owns it,
    its status is queued, the owner's load drops. It keeps its place in the queue (waiting
    since it first did: the customer has waited all along)."""
    _require_open(case, "return to the queue")
    previous_owner, previous_status = case.assignee, case.status
    owner = agents.get(previous_owner) if previous_owner is not None else None
    if owner is not None:
        outcome.release(owner)
    case.assignee = None
    case.status = "queued"
    outcome.emit(
        ev.CASE_STATUS_CHANGED,
        case,
        agent_id=previous_owner,
        previous_status=previous_status,
        reason=OWNER_OFFLINE,
    )


def reply_message(
    case: CaseState,
    agent_id: str,
    text: str,
    sent_at: datetime,
    received_at: datetime,
    platform_message_id: str | None = None,
) -> CanonicalMessage:
    """A reply made outside the router's sight, as a brand message of the case's
    conversation: by phone, e-mail or a native app (a `casewire-api:` id of its own), or sent
    through the platform's API by a desk that gives the id the platform returned (then the
    message is the one the platform's echo will be: the same id)."""
    platform_message_id = platform_message_id or f"{REPLY_ID_PREFIX}{uuid.uuid4()}"
    return CanonicalMessage(
        id=messages.message_id(case.platform, platform_message_id),
        platform=case.platform,
        channel=case.channel,
        visibility=case.visibility,
        direction="outbound",
        account_id=case.account_id,
        platform_message_id=platform_message_id,
        conversation_id=case.conversation_id,
        author=Author(id=agent_id),
        text=text,
        sent_at=sent_at,
        received_at=received_at,
    )


def record_reply(
    case: CaseState,
    reply: CanonicalMessage,
    outcome: RoutingOutcome,
    saved_reply_id: str | None = None,
    *,
    stored: bool = False,
) -> bool:
    """Count a brand reply on an open case; returns whether it was the first response.
    `saved_reply_id`: the saved reply the agent answered with (its use is counted).
    `stored`: the message is kept already, without a case (its platform echo came first and
    found none): it joins this one."""
    _require_open(case, "reply to")
    if reply.sent_at < case.opened_at:
        raise InvalidInput(f"the reply was sent before case {case.id} opened ({case.opened_at})")
    if stored:
        outcome.attached_replies.append((reply, case.id))
    else:
        outcome.stored_messages.append((reply, case.id))
    first = case.first_response_at is None
    if first:
        outcome.first_answers.add(case.id)
        case.first_response_at = reply.sent_at
        outcome.cases[case.id] = case
    outcome.emit(
        ev.CASE_RESPONDED,
        case,
        reply.id,
        first_response=first,
        agent_id=reply.author.id,
        saved_reply_id=saved_reply_id,
    )
    return first


def _agent(agents: Mapping[str, AgentState], agent_id: str) -> AgentState:
    agent = agents.get(agent_id)
    if agent is None:
        raise UnknownAgent(f"no agent {agent_id!r}")
    return agent


def _require_open(case: CaseState, action: str) -> None:
    if not is_open(case):
        raise TransitionError(f"cannot {action} case {case.id}: it is {case.status}")


def _require_fit(case: CaseState, agent: AgentState, force: bool) -> None:
    """Team membership always; presence and capacity unless a supervisor forces it."""
    if case.team not in agent.teams:
        raise TransitionError(f"agent {agent.id!r} is not in team {case.team!r}")
    if force:
        return
    if not agent.online:
        raise TransitionError(f"agent {agent.id!r} is offline (send force: true to insist)")
    if agent.load >= agent.capacity:
        raise TransitionError(
            f"agent {agent.id!r} is at capacity ({agent.load}/{agent.capacity});"
            " send force: true to go over it"
        )
