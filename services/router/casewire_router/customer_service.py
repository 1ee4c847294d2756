"""Who a customer is (`GET /v1/customers/{platform}/{id}`, and the summary in a case view): their
history over the cases the caller may see (`domain.access.customer_teams`), read in one
snapshot. The store is a port (`CustomerStore`): `adapters.customer_store.PostgresCustomerStore`
in the service.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Protocol

from casewire_common.messages import Platform

from casewire_router.domain.access import Actor, Forbidden, customer_teams
from casewire_router.domain.case import CaseState
from casewire_router.domain.customers import (
    RECENT_CASES,
    CustomerContext,
    CustomerSummary,
    Profile,
    summary,
)


class UnknownCustomer(LookupError):
    """No case the caller may see is this customer's (HTTP 404)."""


class CustomerStore(Protocol):
    async def customer_context(
        self,
        platform: Platform,
        customer_id: str,
        teams: Collection[str] | None,
        repeat_window: timedelta,
        recent: int,
    ) -> CustomerContext | None:
        """The customer's history over the cases of `teams` (None: every team); None: they
        have no such case."""
        ...

    async def case_author(self, case_id: str) -> Profile | None:
        """The customer of one case, as its latest inbound message names them."""
        ...


class CustomerService:
    def __init__(self, store: CustomerStore, repeat_window: timedelta) -> None:
        self._store = store
        self._repeat_window = repeat_window  # the router's, for the urgency signal

    async def context(self, actor: Actor, platform: Platform, customer_id: str) -> CustomerContext:
        context = await self._store.customer_context(
            platform, customer_id, customer_teams(actor), self._repeat_window, RECENT_CASES
        )
        if context is None:
            # The same answer whether they wrote to other teams or never: nothing leaks.
            raise UnknownCustomer(
                f"no customer {customer_id!r} on {platform} in the cases you may see"
            )
        return context

    async def for_case(
        self, actor: Actor, case: CaseState
    ) -> tuple[Profile | None, CustomerSummary | None]:
        """The case's customer as its messages name them, and their summary for a caller who
        may read customers (None for a service without `customers:read`)."""
        profile = await self._store.case_author(case.id)
        try:
            teams = customer_teams(actor)
        except Forbidden:
            return profile, None
        context = await self._store.customer_context(
            case.platform, case.customer_id, teams, self._repeat_window, RECENT_CASES
        )
        return profile, None if context is None else summary(context, case.id)
