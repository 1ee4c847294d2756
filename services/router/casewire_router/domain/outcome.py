"""What routing changed: the change set a pure transition returns, saved and published by
the caller in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from casewire_common import events as ev
from casewire_common.events import CaseEventData, CaseStatus, RoutingDecision
from casewire_common.messages import CanonicalMessage

from casewire_router.domain.assignment import AgentState
from casewire_router.domain.case import CaseState, Placement
from casewire_router.domain.handover import DeliveryMarks, Handover


@dataclass(frozen=True)
class IncidentChange:
    """An incident event to publish (opened, updated or closed)."""

    event_type: str
    data: ev.IncidentData


@dataclass(frozen=True)
class CaseChange:
    """A case event to publish: its type, case, data and when it happened; and where the case
    stood before and after it (for the agents' desks: `domain.desk`)."""

    type: str
    case_id: str
    data: CaseEventData
    at: datetime | None = None  # when it happened, if not when its message was sent
    after: Placement = field(kw_only=True)
    before: Placement | None = field(kw_only=True)  # None: the case's first event


@dataclass
class RoutingOutcome:
    """What a batch (or a case action) changed: the cases, agents and links to save, and the
    events to publish, in order."""

    cases: dict[str, CaseState] = field(default_factory=dict)  # opened or changed, by id
    opened: set[str] = field(default_factory=set)  # ids of the cases the batch opened
    stored_messages: list[tuple[CanonicalMessage, str | None]] = field(default_factory=list)
    # Brand replies stored earlier without a case (orphans) that now join one: (reply, case id).
    attached_replies: list[tuple[CanonicalMessage, str]] = field(default_factory=list)
    edits: list[CanonicalMessage] = field(default_factory=list)
    events: list[CaseChange] = field(default_factory=list)
    agents: dict[str, AgentState] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)  # (conversation, case) to remember
    topic_hits: list[tuple[str, str]] = field(default_factory=list)  # (crisis topic, case id)
    incidents: list[IncidentChange] = field(default_factory=list)
    decisions: dict[str, RoutingDecision] = field(default_factory=dict)  # by customer message id
    # Cases absorbed into another of the same reply chain, in the order merged: (absorbed id,
    # kept id). Their messages and conversations move to the kept case, after the batch's own.
    absorbed: list[tuple[str, str]] = field(default_factory=list)
    # Cases that got their first brand reply in this batch (none before): each answered once
    # in the care metrics, even when an earlier-sent reply read later takes the first's place.
    first_answers: set[str] = field(default_factory=set)
    # Bot handover (docs/handover.md). Of `stored_messages`: those sent while a chatbot
    # answered (the bot's transcript: kept with the case of the handover after them, if any).
    bot_phase: set[str] = field(default_factory=set)
    # How ingest delivered the stored messages (standby channel, sending app), by id.
    marks: dict[str, DeliveryMarks] = field(default_factory=dict)
    # Handovers recorded, or given their case: saved by (conversation, source).
    handovers: list[Handover] = field(default_factory=list)
    # Transcript messages stored earlier without a case that join one: (message id, case id).
    transcripts: list[tuple[str, str]] = field(default_factory=list)
    # Messages stored earlier as transcript that a handover read late shows were sent after
    # humans had the conversation: routed again now (their `stored_messages` entry updates
    # the row).
    rerouted: set[str] = field(default_factory=set)
    # Thread-control records read, and what each did: human, bot, request, not_followed.
    thread_controls: list[tuple[str, str]] = field(default_factory=list)  # (action, outcome)
    # Who acted, for a case action of the API (None: the router decided, from messages).
    actor: ev.ActorRef | None = None
    agent_changes: list[ev.AgentData] = field(default_factory=list)  # made through the API

    def emit(
        self,
        event_type: str,
        case: CaseState,
        message_id: str | None = None,
        *,
        at: datetime | None = None,
        **details: Any,
    ) -> None:
        """Record an event carrying the case as it is now (the snapshot is taken here). Every
        event counts one more version of the case, so the case is written back."""
        case.version += 1
        self.cases[case.id] = case
        data = CaseEventData(
            case=case.snapshot(), actor=self.actor, message_id=message_id, **details
        )
        before, after = case.placed, case.placement()
        case.placed = after
        self.events.append(CaseChange(event_type, case.id, data, at, after=after, before=before))

    def assign(
        self,
        case: CaseState,
        agent: AgentState,
        now: datetime,
        *,
        message_id: str | None = None,
        decision: RoutingDecision | None = None,
        at: datetime | None = None,
    ) -> None:
        """Give the case to `agent` (who must have room): one owner, the agent's load counted.
        `at`: when it happened, if not when the message was sent."""
        previous = case.status
        if case.assignee is not None and case.assignee != agent.id and case.assignee in self.agents:
            self.release(self.agents[case.assignee])
        agent.load += 1
        agent.last_assigned_at = now
        self.agents[agent.id] = agent
        case.assignee = agent.id
        case.status = "assigned"
        self.cases[case.id] = case
        self.emit(
            ev.CASE_ASSIGNED,
            case,
            message_id,
            at=at,
            decision=decision,
            agent_id=agent.id,
            previous_status=previous,
        )

    def release(self, agent: AgentState) -> None:
        """The agent no longer owns one of their open cases."""
        agent.load = max(0, agent.load - 1)
        self.agents[agent.id] = agent

    def change_status(
        self,
        case: CaseState,
        status: CaseStatus,
        *,
        message_id: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        previous = case.status
        case.status = status
        self.cases[case.id] = case
        self.emit(
            ev.CASE_STATUS_CHANGED,
            case,
            message_id,
            agent_id=agent_id,
            previous_status=previous,
        )
