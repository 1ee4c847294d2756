"""`GET /v1/customers/{platform}/{id}`: who a customer is, over the cases the caller may see.

No `from __future__ import annotations`: the routes' `Caller` type is built inside
`customers_api`, as in `entrypoints.http`.
"""

from typing import Annotated

from casewire_common.messages import Platform
from fastapi import APIRouter, Depends, Path, status

from casewire_router.customer_service import CustomerService, UnknownCustomer
from casewire_router.domain.access import Actor
from casewire_router.entrypoints.auth import ApiError
from casewire_router.entrypoints.care_views import CustomerView, customer_view
from casewire_router.entrypoints.http import ActorDependency, _answer

CustomerId = Annotated[str, Path(min_length=1, max_length=256)]


def customers_api(service: CustomerService, current_actor: ActorDependency) -> APIRouter:
    api = APIRouter(prefix="/v1/customers", tags=["customers"])
    Caller = Annotated[Actor, Depends(current_actor)]  # noqa: N806 (a type alias)

    @api.get("/{platform}/{customer_id}")
    async def get_customer(
        platform: Platform, customer_id: CustomerId, actor: Caller
    ) -> CustomerView:
        """The customer (the author of inbound messages on `platform`, across the brand's
        accounts there): their cases, newest first, with outcome and times; their contacts,
        repeat contacts and languages. Agents and leads see their teams' cases only (a
        customer known only to other teams is 404), admins and `customers:read` services all."""
        try:
            context = await _answer(service.context(actor, platform, customer_id))
        except UnknownCustomer as error:
            raise ApiError(status.HTTP_404_NOT_FOUND, "not_found", str(error)) from error
        return customer_view(context)

    return api
