"""A customer's cases: their outcome, and the short form a case view shows."""

from __future__ import annotations

from datetime import timedelta

from casewire_common.events import CaseStatus
from casewire_router.domain.customers import (
    Contacts,
    CustomerCase,
    CustomerContext,
    Profile,
    summary,
)

from tests.unit.router.factories import T0


def case(case_id: str, status: CaseStatus, minutes: int) -> CustomerCase:
    return CustomerCase(
        id=case_id,
        account_id="brand",
        channel="dm",
        status=status,
        priority="P3",
        team="shipping",
        assignee=None,
        tags=[],
        language="ar",
        opened_at=T0 + timedelta(minutes=minutes),
        first_response_at=None,
        resolved_at=None,
    )


def test_the_outcome_of_a_case_is_open_resolved_or_no_action() -> None:
    outcomes = {
        status: case("c", status, 0).outcome
        for status in ("queued", "assigned", "pending", "reopened", "resolved", "no_action")
    }
    assert outcomes == {
        "queued": "open",
        "assigned": "open",
        "pending": "open",
        "reopened": "open",
        "resolved": "resolved",
        "no_action": "no_action",
    }


def test_the_summary_names_the_customers_other_open_cases() -> None:
    context = CustomerContext(
        platform="whatsapp",
        customer_id="966500000001",
        profile=Profile(handle=None, name="محمد", followers=None, verified=None),
        cases=[case("c3", "assigned", 30), case("c2", "queued", 20), case("c1", "resolved", 10)],
        total_cases=3,
        open_cases=2,
        contacts=Contacts(
            messages=5,
            first_contact=T0,
            last_contact=T0 + timedelta(minutes=31),
            repeat_window=timedelta(hours=24),
            repeat_in_window=4,
            repeat_total=4,
            languages=["ar", "en"],
        ),
    )
    seen_from_c3 = summary(context, "c3")
    assert seen_from_c3.other_open_case_ids == ["c2"]
    assert (seen_from_c3.total_cases, seen_from_c3.open_cases) == (3, 2)
    assert seen_from_c3.last_contact == T0 + timedelta(minutes=31)
    assert seen_from_c3.repeat_contacts_in_window == 4
    assert seen_from_c3.languages == ["ar", "en"]
    assert seen_from_c3.profile is not None
    assert seen_from_c3.profile.name == "محمد"
    assert summary(context, "c1").other_open_case_ids == ["c3", "c2"]
