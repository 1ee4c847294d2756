"""What a case event does to SLA clocks: pure decisions, no I/O.

In this version the service runs the `first_response` clock: it starts when a case is
opened (unless the case needs no action) and is fulfilled by the first brand reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from casewire_common.events import CASE_CREATED, CASE_RESPONDED, CaseEventData, ClockName

from casewire_sla.domain.policies import (
    CaseFields,
    PolicySet,
    due_at,
    select_policy,
    warning_instants,
)

# Clocks that start when the case opens (DESIGN.md: next_response starts later).
OPENING_CLOCKS: tuple[ClockName, ...] = ("first_response", "resolution")
# Clocks this service runs so far; the `due` tool already reports every opening clock.
RUNNING_CLOCKS: tuple[ClockName, ...] = ("first_response",)
# Case events that change a running clock; every other type is recorded and ignored.
HANDLED_TYPES = frozenset({CASE_CREATED, CASE_RESPONDED})


@dataclass(frozen=True)
class ClockStart:
    """A clock that starts, with every instant it will fire at if nothing stops it."""

    case_id: str
    clock: ClockName
    policy_id: str
    calendar_id: str
    target: timedelta
    started_at: datetime
    due_at: datetime
    warnings: tuple[tuple[float, datetime], ...]
    team: str
    priority: str


@dataclass(frozen=True)
class ClockFulfilment:
    """A running clock stopped by what it waited for (a brand reply)."""

    case_id: str
    clock: ClockName
    fulfilled_at: datetime


ClockChange = ClockStart | ClockFulfilment


def clocks_at_opening(
    policies: PolicySet,
    case_id: str,
    case: CaseFields,
    opened_at: datetime,
    clocks: Sequence[ClockName] = OPENING_CLOCKS,
) -> list[ClockStart]:
    """The clocks that start when a case opens, under the first policy that matches it."""
    policy = select_policy(policies.policies, case)
    if policy is None:
        return []
    calendar = policies.calendar(policy.calendar)
    starts = []
    for clock in clocks:
        target = policy.target(clock)
        if target is None:
            continue
        starts.append(
            ClockStart(
                case_id=case_id,
                clock=clock,
                policy_id=policy.id,
                calendar_id=calendar.id,
                target=target,
                started_at=opened_at,
                due_at=due_at(calendar, opened_at, target),
                warnings=tuple(warning_instants(calendar, opened_at, target, policy.warn_at)),
                team=case.team,
                priority=case.priority,
            )
        )
    return starts


def clock_changes(policies: PolicySet, event_type: str, data: CaseEventData) -> list[ClockChange]:
    """What one case event does to the running clocks of its case."""
    case = data.case
    changes: list[ClockChange] = []
    if event_type == CASE_CREATED and case.status != "no_action":
        changes.extend(clocks_at_opening(policies, case.id, case, case.opened_at, RUNNING_CLOCKS))
        if case.first_response_at is not None:  # opened already answered: stop at once
            changes.append(ClockFulfilment(case.id, "first_response", case.first_response_at))
    elif event_type == CASE_RESPONDED and data.first_response and case.first_response_at:
        changes.append(ClockFulfilment(case.id, "first_response", case.first_response_at))
    return changes
