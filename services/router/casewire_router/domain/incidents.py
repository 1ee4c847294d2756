"""Incidents: a burst of cases on one crisis topic within the incident window opens one
incident, links the cases and raises them to P1; an incident quiet for a whole window is
closed."""

from __future__ import annotations

from datetime import datetime

from casewire_common import events as ev

from casewire_router.domain.batch import Batch, QuietIncident, TopicState
from casewire_router.domain.case import CLOSED_STATUSES
from casewire_router.domain.outcome import IncidentChange

INCIDENT_TAG = "incident"


def close_incident(incident: QuietIncident) -> IncidentChange:
    """A quiet incident is over (`casewire.incident.closed`): the next burst on its topic
    opens a new one."""
    return IncidentChange(
        event_type=ev.INCIDENT_CLOSED,
        data=ev.IncidentData(
            incident_id=incident.incident_id,
            topic=incident.topic,
            status="closed",
            opened_at=incident.opened_at,
            last_seen_at=incident.last_seen_at,
            case_count=incident.case_count,
            added_case_ids=[],
        ),
    )


def open_incidents(batch: Batch, threshold: int) -> None:
    """A burst of cases on one crisis topic (`threshold` within the incident window) opens one
    incident, or grows the open one; its cases are linked, tagged and raised to P1."""
    for topic, hits in batch.hits.items():
        topic_state = batch.state.topics.setdefault(topic, TopicState())
        opened = topic_state.incident_id is None
        if opened:
            added = batch.topic_cases(topic)
            if len(added) < threshold:
                continue
            topic_state.incident_id = batch.new_id()
            topic_state.opened_at = batch.now
        else:
            added = [case_id for case_id in hits if case_id not in topic_state.incident_case_ids]
            if not added:
                continue
        assert topic_state.incident_id is not None
        assert topic_state.opened_at is not None
        topic_state.incident_case_ids.update(added)
        topic_state.incident_case_count += len(added)
        batch.result.incidents.append(
            IncidentChange(
                event_type=ev.INCIDENT_OPENED if opened else ev.INCIDENT_UPDATED,
                data=ev.IncidentData(
                    incident_id=topic_state.incident_id,
                    topic=topic,
                    status="open",
                    opened_at=topic_state.opened_at,
                    last_seen_at=batch.now,
                    case_count=topic_state.incident_case_count,
                    added_case_ids=added,
                ),
            )
        )
        for case_id in added:
            case = hits[case_id].case if case_id in hits else topic_state.open_cases.get(case_id)
            if case is None or case.status in CLOSED_STATUSES:
                continue
            if INCIDENT_TAG not in case.tags:
                case.tags.append(INCIDENT_TAG)
                batch.result.cases[case.id] = case
            if case.priority != "P1":
                previous = case.priority
                case.priority = "P1"
                batch.result.cases[case.id] = case
                batch.result.emit(
                    ev.CASE_PRIORITY_CHANGED,
                    case,
                    previous_priority=previous,
                    incident_id=topic_state.incident_id,
                )


def is_quiet(last_seen_at: datetime, since: datetime) -> bool:
    """Whether an open incident last seen at `last_seen_at` has been quiet since the start of
    the incident window (`since`): it is then over, and the next burst opens a new one."""
    return last_seen_at < since
