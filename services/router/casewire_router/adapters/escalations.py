"""Applying SLA alerts to cases: one transaction per batch, each alert once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from casewire_common import events as ev
from casewire_common.pg import Connection

from casewire_router.adapters.repository import SCHEMA, case_columns, lock_agents, read_case
from casewire_router.domain.escalation import escalate
from casewire_router.domain.routing import BatchOutcome, Router

ALERT_KINDS = {ev.SLA_WARNING: "warning", ev.SLA_BREACHED: "breached"}


@dataclass(frozen=True)
class Alert:
    """An SLA warning or breach, as read from `casewire.sla-alerts.v1`."""

    event_id: str
    kind: str  # "warning" or "breached"
    data: ev.SlaAlertData


def alert_key(alert: Alert) -> str:
    """What makes a delivery of an alert 'the same' for the idempotent consumer."""
    return f"sla-alert:{alert.event_id}"


@dataclass
class Escalations:
    outcome: BatchOutcome
    teams_to_drain: set[str]
    escalated: int


async def apply_alerts(
    connection: Connection, alerts: Sequence[Alert], router: Router, now: datetime
) -> Escalations:
    """Escalate the cases the alerts are about, as the rules file says; `alerts` are the
    ones the unit of work claimed (`alert_key`), so a redelivered alert changes nothing."""
    result = Escalations(BatchOutcome(), set(), 0)
    if not alerts:
        return result
    cases = {
        str(row["id"]): read_case(row)
        for row in await connection.fetch(
            f"SELECT {case_columns()} FROM {SCHEMA}.cases WHERE id = ANY($1::uuid[])"
            " ORDER BY id FOR UPDATE",
            sorted({alert.data.case_id for alert in alerts}),
        )
    }
    agents = await lock_agents(connection)
    for alert in alerts:
        case = cases.get(alert.data.case_id)
        if case is None:
            continue  # a case this router never stored (another deployment's alert)
        rule = router.rules.escalation_for(alert.kind, alert.data.clock, case.team, case.priority)
        if rule is None:
            continue
        result.teams_to_drain |= escalate(case, rule, alert.event_id, agents, result.outcome, now)
        result.escalated += 1
    return result
