"""Escalation on SLA alerts: what the rules file's `escalation` section does to a case, and
how an escalation is undone when the SLA service retracts the breach that caused it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from casewire_common import events as ev
from casewire_common.events import Priority

from casewire_router.domain.assignment import AgentScope, AgentState, choose_agent
from casewire_router.domain.case import CLOSED_STATUSES, CaseState
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.rules import PRIORITY_ORDER, EscalationRule

# The SLA events the router acts on, by the kind of alert they are.
ALERT_KINDS = {
    ev.SLA_WARNING: "warning",
    ev.SLA_BREACHED: "breached",
    ev.SLA_BREACH_RETRACTED: "retracted",
}


@dataclass(frozen=True)
class Alert:
    """An SLA warning, breach or breach retraction, as read from `casewire.sla-alerts.v1`."""

    event_id: str
    kind: str  # "warning", "breached" or "retracted"
    data: ev.SlaAlertData


def alert_key(alert: Alert) -> str:
    """What makes a delivery of an alert 'the same' for the idempotent consumer."""
    return f"sla-alert:{alert.event_id}"


@dataclass
class EscalationRecord:
    """What one SLA alert's escalation changed on a case: enough to undo it while nothing
    else has changed the case (`case_version` is the case's version once its effects are
    out, the queue drain that may have followed included)."""

    alert_id: str
    case_id: str
    rule_id: str
    previous_priority: Priority
    previous_team: str
    previous_assignee: str | None
    added_tags: list[str]
    case_version: int


def escalation_scope(
    cases: Iterable[CaseState],
    records: Iterable[EscalationRecord],
    rules: Sequence[EscalationRule],
) -> AgentScope:
    """The agents escalating (or undoing escalations of) these cases may assign or release:
    of the cases' teams and owners, of the teams and owners the undone escalations restore,
    and every team and agent an escalation rule names (a case escalated twice in one batch
    may match another rule the second time)."""
    cases, records = list(cases), list(records)
    return AgentScope.of(
        [case.team for case in cases]
        + [record.previous_team for record in records]
        + [rule.then.team for rule in rules if rule.then.team is not None],
        [case.assignee for case in cases]
        + [record.previous_assignee for record in records]
        + [rule.then.assign_to for rule in rules],
    )


def escalate_recorded(
    case: CaseState,
    rule: EscalationRule,
    alert_id: str,
    agents: dict[str, AgentState],
    outcome: RoutingOutcome,
    now: datetime,
) -> tuple[set[str], EscalationRecord | None]:
    """`escalate`, and the record that lets a retraction of the alert undo it (None: the case
    was closed, nothing happened)."""
    before = (case.priority, case.team, case.assignee, list(case.tags), case.version)
    drain = escalate(case, rule, alert_id, agents, outcome, now)
    priority, team, assignee, tags, version = before
    if case.version == version:
        return drain, None
    added = [tag for tag in case.tags if tag not in tags]
    return drain, EscalationRecord(
        alert_id, case.id, rule.id, priority, team, assignee, added, case.version
    )


def escalate(
    case: CaseState,
    rule: EscalationRule,
    alert_id: str,
    agents: dict[str, AgentState],
    outcome: RoutingOutcome,
    now: datetime,
) -> set[str]:
    """Raise the priority, move the case to another team, give it to a lead, tag it — as the
    rule says. Returns the teams whose queue may now drain (capacity freed, or a case queued).

    A closed case is left alone. A lead or team member gets the case only if they are online
    with room: escalation never over-fills an agent; the case then waits at the head of the
    (new) team's queue, its priority raised.
    """
    if case.status in CLOSED_STATUSES:
        return set()
    then = rule.then
    previous_priority = case.priority
    drain: set[str] = set()
    if then.priority is not None and PRIORITY_ORDER[then.priority] < PRIORITY_ORDER[case.priority]:
        case.priority = then.priority
    case.tags.extend(tag for tag in then.tags if tag not in case.tags)
    owner = agents.get(case.assignee) if case.assignee is not None else None
    if then.team is not None and then.team != case.team:
        case.team = then.team
        drain.add(case.team)
        if owner is not None and case.team not in owner.teams:
            # The owner is not in the new team: the case leaves them for the team's queue.
            outcome.release(owner)
            drain.update(owner.teams)
            case.assignee = None
            owner = None
            if case.status == "assigned":
                case.status = "queued"
    outcome.cases[case.id] = case
    outcome.emit(
        ev.CASE_ESCALATED,
        case,
        previous_priority=previous_priority if case.priority != previous_priority else None,
        escalation_rule=rule.id,
        sla_alert_id=alert_id,
    )
    lead = agents.get(then.assign_to) if then.assign_to is not None else None
    if (
        lead is not None
        and lead.id != case.assignee
        and lead.online
        and lead.load < lead.capacity
        and case.status != "pending"
    ):
        if owner is not None:
            outcome.release(owner)
            drain.update(owner.teams)
            case.assignee = None
        outcome.assign(case, lead, now)
    return drain


def undo_escalation(
    case: CaseState,
    escalation: EscalationRecord,
    retraction_id: str,
    agents: Mapping[str, AgentState],
    outcome: RoutingOutcome,
    now: datetime,
) -> set[str] | None:
    """Put a case back as it was before `escalation` (priority, team, tags), its owner as the
    rules would choose (the owner before the escalation preferred, if they have room), and
    say so with a `casewire.case.escalated` that names the escalation's alert in
    `undoes_sla_alert_id`. Only when nothing else changed the case since (its version):
    else returns None and the case is left as it is. Returns the teams whose queue may drain.
    """
    if case.version != escalation.case_version:
        return None
    drain: set[str] = set()
    previous_priority = case.priority
    case.priority = escalation.previous_priority
    case.team = escalation.previous_team
    case.tags = [tag for tag in case.tags if tag not in escalation.added_tags]
    ownership_changed = case.assignee != escalation.previous_assignee
    if ownership_changed and case.assignee is not None:
        owner = agents.get(case.assignee)
        if owner is not None:
            outcome.release(owner)
            drain.update(owner.teams)
        case.assignee = None
        if case.status == "assigned":
            case.status = "queued"
    outcome.emit(
        ev.CASE_ESCALATED,
        case,
        previous_priority=previous_priority if case.priority != previous_priority else None,
        escalation_rule=escalation.rule_id,
        sla_alert_id=retraction_id,
        undoes_sla_alert_id=escalation.alert_id,
    )
    if ownership_changed and case.status != "pending":
        choice = choose_agent(
            case.team, case.language, list(agents.values()), requested=escalation.previous_assignee
        )
        if choice.agent_id is not None:
            outcome.assign(case, agents[choice.agent_id], now)
    return drain
