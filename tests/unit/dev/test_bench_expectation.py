"""The router bench compares the case events it reads with those the messages imply, except
the counts that depend on how the messages fell into batches."""

from __future__ import annotations

from collections import Counter

from casewire_common import events as ev
from casewire_dev.bench_workload import predictable_counts


def test_incident_updates_and_priority_changes_of_incident_cases_are_not_predicted() -> None:
    events = [
        (ev.CASE_CREATED, "case-1"),
        (ev.CASE_CREATED, "case-2"),
        (ev.CASE_PRIORITY_CHANGED, "case-1"),  # in the incident: batching decides
        (ev.CASE_PRIORITY_CHANGED, "case-2"),  # not in it: predicted
        (ev.INCIDENT_OPENED, "incident-1"),
        (ev.INCIDENT_UPDATED, "incident-1"),
        (ev.INCIDENT_UPDATED, "incident-1"),
    ]

    assert predictable_counts(events, {"case-1"}) == Counter(
        {ev.CASE_CREATED: 2, ev.CASE_PRIORITY_CHANGED: 1, ev.INCIDENT_OPENED: 1}
    )
