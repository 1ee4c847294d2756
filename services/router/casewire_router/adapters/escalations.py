"""Applying SLA alerts to cases: one transaction per batch, each alert once.

Warnings and breaches escalate as the rules file says, and each escalation is recorded with
what it changed; a breach retraction undoes the escalation its breach caused while nothing
else has changed the case. An alert about a case this router does not hold is handed back
(`unknown_cases`) for the dead-letter topic, and is not marked processed.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from casewire_common import events as ev
from casewire_common.pg import Connection
from casewire_common.unit_of_work import UnitOfWork

from casewire_router.adapters.case_store import drain_teams
from casewire_router.adapters.repository import (
    SCHEMA,
    case_columns,
    lock_agents,
    read_case,
    save_outcome,
)
from casewire_router.domain.escalation import (
    EscalationRecord,
    escalate_recorded,
    undo_escalation,
)
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.routing import CaseRouter

log = structlog.get_logger(__name__)

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
class Escalations:
    """What a batch of alerts did: the changes to save and publish, in order."""

    outcomes: list[RoutingOutcome] = field(default_factory=list)
    escalated: int = 0
    # Retractions by what became of the escalation: undone, case_changed, no_escalation.
    retractions: collections.Counter[str] = field(default_factory=collections.Counter)
    unknown_cases: list[Alert] = field(default_factory=list)


async def apply_alerts(
    work: UnitOfWork, alerts: Sequence[Alert], case_router: CaseRouter, now: datetime
) -> Escalations:
    """Escalate (or undo escalations of) the cases the alerts are about, save the changes and
    record the escalations. The unit of work claims the alerts about cases this router holds
    (after locking them), so a redelivered alert changes nothing and an alert about an
    unknown case stays unclaimed (it is dead-lettered, and sent again if that fails)."""
    connection = work.connection
    result = Escalations()
    cases = {
        str(row["id"]): read_case(row)
        for row in await connection.fetch(
            f"SELECT {case_columns()} FROM {SCHEMA}.cases WHERE id = ANY($1::uuid[])"
            " ORDER BY id FOR UPDATE",
            sorted({alert.data.case_id for alert in alerts}),
        )
    }
    result.unknown_cases = [alert for alert in alerts if alert.data.case_id not in cases]
    known = [alert for alert in alerts if alert.data.case_id in cases]
    fresh = await work.claim(known, alert_key)  # also the same alert twice in one batch
    if not fresh:
        return result
    standing = await _standing_escalations(
        connection, [a.data.retracted_alert_id for a in fresh if a.data.retracted_alert_id]
    )
    agents = await lock_agents(connection)
    outcome = RoutingOutcome()
    made: dict[str, EscalationRecord] = {}
    undone: dict[str, str] = {}  # escalation's alert id -> the retraction's
    teams_to_drain: set[str] = set()
    for alert in fresh:
        case = cases[alert.data.case_id]
        if alert.kind == "retracted":
            escalation = standing.get(alert.data.retracted_alert_id or "")
            if escalation is None or escalation.case_id != case.id or escalation.alert_id in undone:
                result.retractions["no_escalation"] += 1
                continue
            drain = undo_escalation(case, escalation, alert.event_id, agents, outcome, now)
            if drain is None:
                result.retractions["case_changed"] += 1
                log.info(
                    "escalation kept: the case changed after it",
                    case_id=case.id,
                    alert_id=escalation.alert_id,
                    escalated_at_version=escalation.case_version,
                    version=case.version,
                )
                continue
            result.retractions["undone"] += 1
            undone[escalation.alert_id] = alert.event_id
            teams_to_drain |= drain
            continue
        rule = case_router.rules.escalation_for(
            alert.kind, alert.data.clock, case.team, case.priority
        )
        if rule is None:
            continue
        drain, record = escalate_recorded(case, rule, alert.event_id, agents, outcome, now)
        teams_to_drain |= drain
        if record is not None:
            made[record.alert_id] = record
            standing[record.alert_id] = record  # a retraction later in the batch finds it
            result.escalated += 1
    await save_outcome(connection, outcome, now)
    result.outcomes.append(outcome)
    if teams_to_drain:
        # Read after the escalations are written: the queues as they now are.
        drained = await drain_teams(connection, teams_to_drain, now)
        await save_outcome(connection, drained, now)
        result.outcomes.append(drained)
        # A case the drain gave an owner: that is part of its last escalation.
        last_escalation = {record.case_id: record for record in made.values()}
        for case_id, case in drained.cases.items():
            record = last_escalation.get(case_id)
            if record is not None and record.alert_id not in undone:
                record.case_version = case.version
    await _record(connection, made, undone, now)
    return result


async def _standing_escalations(
    connection: Connection, alert_ids: list[str]
) -> dict[str, EscalationRecord]:
    """The escalations these alerts caused that no retraction has undone yet."""
    if not alert_ids:
        return {}
    rows = await connection.fetch(
        "SELECT alert_id, case_id::text, rule_id, previous_priority, previous_team,"
        f" previous_assignee, added_tags, case_version FROM {SCHEMA}.escalations"
        " WHERE alert_id = ANY($1::text[]) AND undone_by IS NULL",
        alert_ids,
    )
    return {
        row["alert_id"]: EscalationRecord(
            alert_id=row["alert_id"],
            case_id=row["case_id"],
            rule_id=row["rule_id"],
            previous_priority=row["previous_priority"],
            previous_team=row["previous_team"],
            previous_assignee=row["previous_assignee"],
            added_tags=list(row["added_tags"]),
            case_version=row["case_version"],
        )
        for row in rows
    }


async def _record(
    connection: Connection,
    made: dict[str, EscalationRecord],
    undone: dict[str, str],
    now: datetime,
) -> None:
    if made:
        await connection.executemany(
            f"INSERT INTO {SCHEMA}.escalations (alert_id, case_id, rule_id, previous_priority,"
            " previous_team, previous_assignee, added_tags, case_version, escalated_at,"
            " undone_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [
                (
                    r.alert_id,
                    r.case_id,
                    r.rule_id,
                    r.previous_priority,
                    r.previous_team,
                    r.previous_assignee,
                    r.added_tags,
                    r.case_version,
                    now,
                    undone.get(r.alert_id),
                )
                for r in made.values()
            ],
        )
    earlier = [(alert_id, by) for alert_id, by in undone.items() if alert_id not in made]
    if earlier:
        await connection.executemany(
            f"UPDATE {SCHEMA}.escalations SET undone_by = $2 WHERE alert_id = $1", earlier
        )
