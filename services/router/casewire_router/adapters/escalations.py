"""PostgreSQL reads and writes of the alert path (`MessageService.handle_alerts` decides):
the cases alerts are about, and the escalations recorded with what they changed, for a
breach retraction to undo."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from casewire_common.pg import Connection

from casewire_router.adapters.repository import SCHEMA, case_columns, read_case
from casewire_router.domain.case import CaseState
from casewire_router.domain.escalation import EscalationRecord


async def lock_cases(connection: Connection, case_ids: Collection[str]) -> dict[str, CaseState]:
    """The cases with these ids that this router holds, locked in id order."""
    return {
        str(row["id"]): read_case(row)
        for row in await connection.fetch(
            f"SELECT {case_columns()} FROM {SCHEMA}.cases WHERE id = ANY($1::uuid[])"
            " ORDER BY id FOR UPDATE",
            sorted(case_ids),
        )
    }


async def standing_escalations(
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


async def record_escalations(
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
