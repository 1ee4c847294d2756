"""SLA alerts as CloudEvents for `casewire.sla-alerts.v1`, keyed by case id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from casewire_common import topics
from casewire_common.events import EventRecord, SlaAlertData, encode_event

from casewire_sla.domain.clock_record import ClockRecord

SOURCE = "casewire/sla"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://casewire/sla-alerts")


def alert_event_id(
    clock: ClockRecord, event_type: str, fraction: float | None, at: datetime | None = None
) -> str:
    """Derived from what the alert is about, so the same alert always has the same id; `at`
    tells apart the pauses and resumes of one clock, the policy an additive policy's clock
    from the contract's clock of the same name (whose id does not change with its policy)."""
    name = f"{clock.case_id}|{clock.clock}|{clock.started_at.isoformat()}|{event_type}|{fraction}"
    if clock.additive:
        name += f"|additive:{clock.policy_id}"
    if at is not None:
        name += f"|{at.astimezone(UTC).isoformat()}"
    return str(uuid.uuid5(_ID_NAMESPACE, name))


def alert_record(
    clock: ClockRecord,
    event_type: str,
    *,
    time: datetime,
    fraction: float | None = None,
    late: bool = False,
    elapsed: timedelta | None = None,
    at: datetime | None = None,
    provisional: bool = False,
    retracted_alert_id: str | None = None,
) -> tuple[str, EventRecord]:
    """One (topic, record) pair for the outbox."""
    data = SlaAlertData(
        case_id=clock.case_id,
        policy_id=clock.policy_id,
        clock=clock.clock,
        target_seconds=clock.target_seconds,
        started_at=clock.started_at,
        due_at=clock.due_at,
        fraction=fraction,
        late=late,
        elapsed_seconds=None if elapsed is None else elapsed.total_seconds(),
        team=clock.team,
        priority=clock.priority,
        provisional=provisional,
        retracted_alert_id=retracted_alert_id,
    )
    record = encode_event(
        event_id=alert_event_id(clock, event_type, fraction, at),
        event_type=event_type,
        source=SOURCE,
        subject=clock.case_id,
        time=time.astimezone(UTC),
        data=data,
    )
    return topics.SLA_ALERTS, record
