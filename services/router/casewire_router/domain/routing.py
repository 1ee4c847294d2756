"""From messages to cases: threading, routing decisions, assignment, and the events they cause.

`route_batch` is pure: given a batch of messages, the open cases of their conversations and
the agents, it returns what changed and which events to publish. The adapter loads that
state and stores the outcome in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from casewire_common import events as ev
from casewire_common.events import (
    CaseEventData,
    CaseSnapshot,
    CaseStatus,
    Priority,
    RoutingDecision,
)
from casewire_common.messages import CanonicalMessage, Channel, Platform, Visibility

from casewire_router.domain.assignment import AgentState, choose_agent
from casewire_router.domain.keywords import fold
from casewire_router.domain.rules import PRIORITY_ORDER, RuleSet, most_urgent
from casewire_router.domain.urgency import UrgencyModel, priority_for, score

CLOSED_STATUSES: frozenset[CaseStatus] = frozenset({"resolved", "no_action"})


@dataclass
class CaseState:
    id: str
    conversation_id: str
    customer_id: str
    account_id: str
    platform: Platform
    channel: Channel
    visibility: Visibility
    status: CaseStatus
    priority: Priority
    urgency_score: int
    team: str
    assignee: str | None
    tags: list[str]
    language: str | None
    opened_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    # The decision that opened the case: set and stored when the case opens, never read back.
    decision: RoutingDecision | None = None

    def snapshot(self) -> CaseSnapshot:
        return CaseSnapshot(
            id=self.id,
            conversation_id=self.conversation_id,
            platform=self.platform,
            channel=self.channel,
            visibility=self.visibility,
            status=self.status,
            priority=self.priority,
            urgency_score=self.urgency_score,
            team=self.team,
            assignee=self.assignee,
            tags=list(self.tags),
            language=self.language,
            opened_at=self.opened_at,
            first_response_at=self.first_response_at,
            resolved_at=self.resolved_at,
        )


@dataclass(frozen=True)
class CaseEvent:
    type: str
    case_id: str
    data: CaseEventData


@dataclass
class BatchOutcome:
    cases: dict[str, CaseState] = field(default_factory=dict)  # opened or changed, by id
    opened: set[str] = field(default_factory=set)  # ids of the cases the batch opened
    stored_messages: list[tuple[CanonicalMessage, str | None]] = field(default_factory=list)
    edits: list[CanonicalMessage] = field(default_factory=list)
    events: list[CaseEvent] = field(default_factory=list)
    agents: dict[str, AgentState] = field(default_factory=dict)

    def emit(
        self, event_type: str, case: CaseState, message: CanonicalMessage, **details: Any
    ) -> None:
        """Record an event carrying the case as it is now (the snapshot is taken here)."""
        data = CaseEventData(case=case.snapshot(), message_id=message.id, **details)
        self.events.append(CaseEvent(event_type, case.id, data))


@dataclass(frozen=True)
class Router:
    """The routing policy in force: rules and urgency model."""

    rules: RuleSet
    urgency: UrgencyModel

    def decide(self, message: CanonicalMessage) -> tuple[RoutingDecision, str | None]:
        """The routing decision for a message, and the agent a rule asks for (`assign_to`)."""
        folded = fold(message.text)  # once for the rules and every urgency signal
        outcome = self.rules.evaluate(message, folded)
        urgency = score(self.urgency, message, folded)
        priority = most_urgent(outcome.priority, priority_for(urgency.score))
        assert priority is not None
        return (
            RoutingDecision(
                rules_version=self.rules.version,
                matched_rules=outcome.matched_rules,
                urgency=urgency,
                team=outcome.team,
                priority=priority,
                tags=outcome.tags,
                skip=outcome.skip,
                reply_template=outcome.reply_template,
            ),
            outcome.assign_to,
        )

    def route_batch(
        self,
        messages: Sequence[CanonicalMessage],
        open_cases: dict[str, CaseState],
        agents: dict[str, AgentState],
        *,
        new_id: Callable[[], str],
        now: datetime,
    ) -> BatchOutcome:
        """Apply messages in order; `open_cases` is keyed by conversation and updated in place."""
        result = BatchOutcome()
        for message in messages:
            if message.event != "message":
                result.edits.append(message)
            elif message.direction == "outbound":
                self._on_brand_message(message, open_cases, result, now)
            else:
                self._on_customer_message(message, open_cases, agents, result, new_id, now)
        return result

    def _on_customer_message(
        self,
        message: CanonicalMessage,
        open_cases: dict[str, CaseState],
        agents: dict[str, AgentState],
        result: BatchOutcome,
        new_id: Callable[[], str],
        now: datetime,
    ) -> None:
        decision, requested = self.decide(message)
        case = open_cases.get(message.conversation_id)
        if case is None:
            self._open_case(message, decision, requested, open_cases, agents, result, new_id, now)
            return
        result.stored_messages.append((message, case.id))
        # Only a case that changed is written back.
        new_tags = [tag for tag in decision.tags if tag not in case.tags]
        case.tags.extend(new_tags)
        changed = bool(new_tags)
        if case.language is None and message.language is not None:
            case.language = message.language
            changed = True
        if changed:
            result.cases[case.id] = case
        result.emit(ev.CASE_MESSAGE_ADDED, case, message)
        if PRIORITY_ORDER[decision.priority] < PRIORITY_ORDER[case.priority]:
            previous = case.priority
            case.priority = decision.priority
            case.urgency_score = max(case.urgency_score, decision.urgency.score)
            result.cases[case.id] = case
            result.emit(
                ev.CASE_PRIORITY_CHANGED,
                case,
                message,
                decision=decision,
                previous_priority=previous,
            )

    def _open_case(
        self,
        message: CanonicalMessage,
        decision: RoutingDecision,
        requested: str | None,
        open_cases: dict[str, CaseState],
        agents: dict[str, AgentState],
        result: BatchOutcome,
        new_id: Callable[[], str],
        now: datetime,
    ) -> None:
        case = CaseState(
            id=new_id(),
            conversation_id=message.conversation_id,
            customer_id=message.customer_id,
            account_id=message.account_id,
            platform=message.platform,
            channel=message.channel,
            visibility=message.visibility,
            status="queued",
            priority=decision.priority,
            urgency_score=decision.urgency.score,
            team=decision.team,
            assignee=None,
            tags=list(decision.tags),
            language=message.language,
            opened_at=message.sent_at,
            decision=decision,
        )
        result.cases[case.id] = case
        result.opened.add(case.id)
        result.stored_messages.append((message, case.id))
        if decision.skip:
            # Needs no reply: recorded and counted, closed at once.
            case.status = "no_action"
            case.resolved_at = message.sent_at
            result.emit(ev.CASE_CREATED, case, message, decision=decision)
            return
        open_cases[case.conversation_id] = case
        choice = choose_agent(case.team, case.language, list(agents.values()), requested=requested)
        decision = replace_decision(decision, choice.candidates, choice.agent_id, choice.reason)
        case.decision = decision
        result.emit(ev.CASE_CREATED, case, message, decision=decision)
        if choice.agent_id is None:
            return
        agent = agents[choice.agent_id]
        agent.load += 1
        agent.last_assigned_at = now
        result.agents[agent.id] = agent
        case.assignee = agent.id
        case.status = "assigned"
        result.emit(
            ev.CASE_ASSIGNED,
            case,
            message,
            decision=decision,
            agent_id=agent.id,
            previous_status="queued",
        )

    def _on_brand_message(
        self,
        message: CanonicalMessage,
        open_cases: dict[str, CaseState],
        result: BatchOutcome,
        now: datetime,
    ) -> None:
        case = open_cases.get(message.conversation_id)
        if case is None:
            # A brand message never opens a case; it is still kept with its conversation.
            result.stored_messages.append((message, None))
            return
        result.stored_messages.append((message, case.id))
        first = case.first_response_at is None
        if first:
            case.first_response_at = message.sent_at
            result.cases[case.id] = case
        result.emit(
            ev.CASE_RESPONDED, case, message, first_response=first, agent_id=message.author.id
        )


def replace_decision(
    decision: RoutingDecision,
    candidates: list[ev.CandidateAgent],
    assignee: str | None,
    reason: str,
) -> RoutingDecision:
    return decision.model_copy(
        update={"candidates": candidates, "assignee": assignee, "assignment_reason": reason}
    )
