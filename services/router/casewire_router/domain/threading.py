"""Threading: which case a message joins. A message joins the open case of its conversation,
of the message it answers, or of the same customer in the other visibility (merge window);
a customer message soon after resolution reopens the case; brand replies processed before
the message they answer wait as orphans; a reply chain split by processing order is merged.
Decided by sending times, whatever the arrival order."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from casewire_common import events as ev
from casewire_common.messages import CanonicalMessage

from casewire_router.domain.assignment import AgentState, choose_agent
from casewire_router.domain.batch import Batch, BatchState
from casewire_router.domain.case import (
    CLOSED_STATUSES,
    CaseState,
    customer_key,
    customer_of,
)
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.rules import PRIORITY_ORDER


def counts_as_response(reply: CanonicalMessage, case: CaseState, answered_at: datetime) -> bool:
    """Whether a brand reply is a response of the case: sent after the message it answers
    (`answered_at`; the case's opening when it names none of its messages) and, on a closed
    case, before the case was closed. Decided by sending times, whatever the arrival order."""
    if reply.sent_at < answered_at:
        return False
    if case.status in CLOSED_STATUSES:
        return case.resolved_at is not None and reply.sent_at < case.resolved_at
    return True


def _seniority(case: CaseState, result: RoutingOutcome) -> tuple[datetime, bool, str]:
    """Which of two cases of one reply chain is kept: the earliest opened (event time); on a
    tie the earliest created, as far as the router knows: one stored before the batch before
    one the batch opened (the table records no creation time), then by id."""
    return (case.opened_at, case.id in result.opened, case.id)


def _repoint(state: BatchState, absorbed: CaseState, kept: CaseState) -> None:
    """The rest of the batch finds the kept case wherever it would have found the absorbed
    one: by conversation (the absorbed case's own included), customer, message, answer."""
    for conversation, case in list(state.open_cases.items()):
        if case is absorbed:
            state.open_cases[conversation] = kept
    state.open_cases[absorbed.conversation_id] = kept
    for cases in state.open_by_customer.values():
        cases[:] = [case for case in cases if case is not absorbed]
    for key, case in list(state.cases_by_message.items()):
        if case is absorbed:
            state.cases_by_message[key] = kept
    for cases in state.cases_answering.values():
        if any(case is absorbed for case in cases):
            held = [case for case in cases if case is not absorbed and case is not kept]
            cases[:] = [*held, kept]


def reopen_case(
    case: CaseState,
    agents: Mapping[str, AgentState],
    outcome: RoutingOutcome,
    now: datetime,
    message_id: str | None = None,
) -> None:
    """A closed case opens again (`status_changed` to reopened, resolved_at cleared, back in
    the team queue), then goes to its previous owner if they are online with room, else to
    the best agent of the team with room (`choose_agent`), else it waits as `reopened`."""
    previous_owner = case.assignee
    case.assignee = None
    case.resolved_at = None
    case.queued_at = now
    outcome.change_status(case, "reopened", message_id=message_id)
    choice = choose_agent(case.team, case.language, list(agents.values()), requested=previous_owner)
    if choice.agent_id is not None:
        outcome.assign(case, agents[choice.agent_id], now, message_id=message_id)


def closed_after_sending(message: CanonicalMessage, state: BatchState) -> CaseState | None:
    """The resolved case of the message's conversation, or holding the message it answers,
    that was resolved after the message was sent (the message only arrived late)."""
    candidates = [state.resolved.get(message.conversation_id)]
    if message.in_reply_to is not None:
        candidates.append(state.cases_by_message.get((message.platform, message.in_reply_to)))
    for case in candidates:
        if (
            case is not None
            and case.status == "resolved"
            and case.resolved_at is not None
            and message.sent_at < case.resolved_at
            and case.account_id == message.account_id
            and case.customer_id == message.customer_id
        ):
            return case
    return None


def attach_orphan_replies(message: CanonicalMessage, case: CaseState, batch: Batch) -> CaseState:
    """Brand replies processed before the customer message they answer join its case now,
    earliest first, each counted as a response if it was sent after the message. Returns
    the message's case: another one if a reply's own answers were in it (absorbed)."""
    orphans = batch.state.orphan_replies
    for reply in orphans.answering(message):
        if counts_as_response(reply, case, answered_at=message.sent_at):
            orphans.remove(reply)
            batch.result.attached_replies.append((reply, case.id))
            respond(case, reply, batch)
            case = absorb_split_chain(reply, case, batch)
    return case


def absorb_split_chain(message: CanonicalMessage, case: CaseState, batch: Batch) -> CaseState:
    """`message` just got its open case: the customer's other open cases holding an answer
    to it are the same reply chain, split because the answer was processed first (it found
    no case to join). They become one: the earliest opened is kept, the other absorbed.
    Returns the message's case after it (the kept one)."""
    if case.status in CLOSED_STATUSES:
        return case
    answering = batch.state.cases_answering.get((message.platform, message.platform_message_id))
    for other in list(answering or []):
        if (
            other.id == case.id
            or other.status in CLOSED_STATUSES
            or customer_of(other) != customer_of(case)
        ):
            continue
        kept, absorbed = sorted((case, other), key=lambda c: _seniority(c, batch.result))
        absorb(kept, absorbed, message, batch)
        case = kept
    return case


def absorb(kept: CaseState, absorbed: CaseState, message: CanonicalMessage, batch: Batch) -> None:
    """One case takes another's history (`casewire.case.merged` on both): the kept case
    answers for what either did (earliest opening and response, the more urgent priority,
    every tag); the absorbed one is closed now and its owner's load released, so that no
    agent holds one reply chain twice."""
    state, result = batch.state, batch.result
    kept.opened_at = min(kept.opened_at, absorbed.opened_at)
    responses = [
        at for at in (kept.first_response_at, absorbed.first_response_at) if at is not None
    ]
    kept.first_response_at = min(responses, default=None)
    kept.tags.extend(tag for tag in absorbed.tags if tag not in kept.tags)
    if PRIORITY_ORDER[absorbed.priority] < PRIORITY_ORDER[kept.priority]:
        kept.priority = absorbed.priority
    kept.urgency_score = max(kept.urgency_score, absorbed.urgency_score)
    if absorbed.worst_sentiment is not None:
        if absorbed.worst_sentiment.worse_than(kept.worst_sentiment):
            kept.worst_sentiment = absorbed.worst_sentiment
        if kept.sentiment is None:
            kept.sentiment = absorbed.sentiment
    if kept.language is None:
        kept.language = absorbed.language
    absorbed.status = "resolved"
    absorbed.resolved_at = batch.now
    if absorbed.assignee is not None:
        result.release(state.agents[absorbed.assignee])
    result.absorbed.append((absorbed.id, kept.id))
    result.emit(ev.CASE_MERGED, absorbed, message.id, merged_into_case_id=kept.id)
    result.emit(
        ev.CASE_MERGED,
        kept,
        message.id,
        merged_case_id=absorbed.id,
        merged_conversation_id=absorbed.conversation_id,
    )
    _repoint(state, absorbed, kept)


def answered_case(message: CanonicalMessage, state: BatchState) -> CaseState | None:
    """The customer's open case holding the message this one answers. A tweet names only
    the tweet it answers, which ingest takes as its thread's root, so a back-and-forth on
    X gets a new conversation key at every reply: this keeps it one case."""
    if message.in_reply_to is None:
        return None
    case = state.cases_by_message.get((message.platform, message.in_reply_to))
    if (
        case is None
        or case.status in CLOSED_STATUSES
        or case.account_id != message.account_id
        or case.customer_id != message.customer_id
    ):
        return None
    return case


def merge_target(
    message: CanonicalMessage, state: BatchState, window: timedelta
) -> CaseState | None:
    """The customer's open case on the same platform, in the other visibility (their
    public post and their DM), opened within the merge window."""
    for case in reversed(state.open_by_customer.get(customer_key(message), [])):
        if (
            case.visibility != message.visibility
            and case.status not in CLOSED_STATUSES
            and abs(message.sent_at - case.opened_at) <= window
        ):
            return case
    return None


def closed_merge_target(
    message: CanonicalMessage, state: BatchState, window: timedelta
) -> CaseState | None:
    """The customer's case in the other visibility that was open when the message was sent,
    within the merge window, and has been resolved since: processed in time, the message
    would have merged into it. (Never a `no_action` case: it was never open.)"""
    for case in reversed(state.closed_by_customer.get(customer_key(message), [])):
        if (
            case.status == "resolved"
            and case.visibility != message.visibility
            and case.resolved_at is not None
            and message.sent_at < case.resolved_at
            and abs(message.sent_at - case.opened_at) <= window
        ):
            return case
    return None


def respond(case: CaseState, reply: CanonicalMessage, batch: Batch) -> None:
    """Count a brand reply on its case. The first response is the earliest sent: a reply
    processed after a later-sent one takes its place (and says it is the first)."""
    batch.state.cases_by_message[(reply.platform, reply.platform_message_id)] = case
    first = case.first_response_at is None or reply.sent_at < case.first_response_at
    if case.first_response_at is None:
        batch.result.first_answers.add(case.id)
    if first:
        case.first_response_at = reply.sent_at
        batch.result.cases[case.id] = case
    batch.result.emit(
        ev.CASE_RESPONDED, case, reply.id, first_response=first, agent_id=reply.author.id
    )
