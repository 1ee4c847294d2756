"""Escalation on SLA alerts: what the rules file's `escalation` section does to a case."""

from __future__ import annotations

from datetime import datetime

from casewire_common import events as ev

from casewire_router.domain.assignment import AgentState
from casewire_router.domain.routing import CLOSED_STATUSES, BatchOutcome, CaseState
from casewire_router.domain.rules import PRIORITY_ORDER, EscalationRule


def escalate(
    case: CaseState,
    rule: EscalationRule,
    alert_id: str,
    agents: dict[str, AgentState],
    outcome: BatchOutcome,
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
