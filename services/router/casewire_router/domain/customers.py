"""Who a customer is (DESIGN.md "Agents (router)"): one author on one platform, across the
brand's accounts there, as their cases tell it — their cases open and past with outcome and
times, their contacts (inbound messages), the repeat contacts the urgency signal counts, the
languages they write in, and their latest name and handle.

Only the cases the caller may see make the history (`domain.access.customer_teams`): a
customer known to other teams only is, for this caller, no customer at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from casewire_common.events import CaseStatus, Priority
from casewire_common.messages import Channel, Platform

from casewire_router.domain.case import CLOSED_STATUSES

Outcome = Literal["open", "resolved", "no_action"]
RECENT_CASES = 50  # cases listed, most recent first; `total_cases` counts them all


@dataclass(frozen=True)
class CustomerCase:
    id: str
    account_id: str
    channel: Channel
    status: CaseStatus
    priority: Priority
    team: str
    assignee: str | None
    tags: list[str]
    language: str | None
    opened_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None

    @property
    def outcome(self) -> Outcome:
        """How the case ended: still open, resolved, or closed as needing no reply."""
        if self.status not in CLOSED_STATUSES:
            return "open"
        return "no_action" if self.status == "no_action" else "resolved"


@dataclass(frozen=True)
class Profile:
    """The author as their latest message says (names and handles change)."""

    handle: str | None
    name: str | None
    followers: int | None
    verified: bool | None


@dataclass(frozen=True)
class Contacts:
    """The customer's inbound messages on the cases in view. A repeat contact is a message
    sent within the repeat-contact window after an earlier one (CASEWIRE_ROUTER_REPEAT_CONTACT
    _WINDOW, the urgency signal's): `repeat_in_window` are those the last contact counted (the
    messages sent in the window before it), `repeat_total` every message that was one when
    sent."""

    messages: int
    first_contact: datetime | None
    last_contact: datetime | None
    repeat_window: timedelta
    repeat_in_window: int
    repeat_total: int
    languages: list[str]  # most used first


@dataclass(frozen=True)
class CustomerContext:
    platform: Platform
    customer_id: str
    profile: Profile | None
    cases: list[CustomerCase]  # the most recent RECENT_CASES, newest first
    total_cases: int
    open_cases: int
    contacts: Contacts


@dataclass(frozen=True)
class CustomerSummary:
    """The customer in a case view: who they are and how often they came, without the list."""

    platform: Platform
    customer_id: str
    profile: Profile | None
    total_cases: int
    open_cases: int
    other_open_case_ids: list[str]  # open cases besides this one: the same issue twice?
    last_contact: datetime | None
    repeat_contacts_in_window: int
    languages: list[str]


def summary(context: CustomerContext, case_id: str) -> CustomerSummary:
    """The case view's short form of the customer's context."""
    return CustomerSummary(
        platform=context.platform,
        customer_id=context.customer_id,
        profile=context.profile,
        total_cases=context.total_cases,
        open_cases=context.open_cases,
        other_open_case_ids=[
            case.id for case in context.cases if case.outcome == "open" and case.id != case_id
        ],
        last_contact=context.contacts.last_contact,
        repeat_contacts_in_window=context.contacts.repeat_in_window,
        languages=context.contacts.languages,
    )
