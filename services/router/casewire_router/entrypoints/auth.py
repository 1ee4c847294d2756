"""The API's caller and its errors: every request names a verified actor (or is refused with
401), every refusal is `{"error": <code>, "detail": <text>}`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from casewire_router.adapters.identity import Authenticator, InvalidToken
from casewire_router.domain.access import ROLES, Actor, Forbidden

log = structlog.get_logger(__name__)

Credentials = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description="An OpenID Connect or service token")),
]
# An agent's teams come from the roster: agent id -> teams, None when not on it.
RosterTeams = Callable[[str], Awaitable[list[str] | None]]

# The `error` code of a refusal that did not name one, by status.
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
    503: "unavailable",
}


class ApiError(HTTPException):
    """A refusal with its machine-readable code, and what else the caller needs to act on it
    (`extra`: more fields of the body, e.g. who holds a reply lease)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status_code, detail, headers)
        self.code = code
        self.extra = extra or {}


def forbidden(error: Forbidden) -> ApiError:
    return ApiError(status.HTTP_403_FORBIDDEN, "forbidden", str(error))


def actor_dependency(
    authenticator: Authenticator, roster_teams: RosterTeams
) -> Callable[[Credentials], Awaitable[Actor]]:
    """The FastAPI dependency that turns the bearer token into the acting `Actor`."""

    async def current_actor(credentials: Credentials) -> Actor:
        if not authenticator.enabled:
            raise ApiError(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "api_off",
                "the case API is off: configure an identity provider"
                " (CASEWIRE_ROUTER_OIDC_ISSUER) or service tokens",
            )
        if credentials is None or not credentials.credentials:
            raise _unauthorized("missing_token", "a bearer token is required")
        try:
            principal = await authenticator.authenticate(credentials.credentials)
        except InvalidToken as error:
            raise _unauthorized(error.code, str(error)) from None
        if principal.role is None:
            raise ApiError(
                status.HTTP_403_FORBIDDEN,
                "no_role",
                f"the token of {principal.id!r} holds none of the roles {list(ROLES)}",
            )
        teams = principal.teams
        if principal.role == "agent":
            roster = await roster_teams(principal.id)
            if roster is None:
                raise ApiError(
                    status.HTTP_403_FORBIDDEN,
                    "not_on_roster",
                    f"{principal.id!r} is not an agent on the roster",
                )
            teams = frozenset(roster)
        return Actor(principal.id, principal.role, teams, principal.scopes, principal.name)

    return current_actor


def _unauthorized(code: str, detail: str) -> ApiError:
    return ApiError(
        status.HTTP_401_UNAUTHORIZED,
        code,
        detail,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{code}"'},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Every refusal of the API as `{"error", "detail"}` (FastAPI's own `detail` kept); a
    validation error lists what was wrong without echoing the input back."""

    async def http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        code = getattr(error, "code", None) or ERROR_CODES.get(error.status_code, "error")
        return JSONResponse(
            {**getattr(error, "extra", {}), "error": code, "detail": error.detail},
            status_code=error.status_code,
            headers=error.headers,
        )

    async def invalid_request(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        details: list[dict[str, Any]] = [
            {"loc": list(item.get("loc", ())), "msg": item.get("msg", ""), "type": item.get("type")}
            for item in error.errors()
        ]
        return JSONResponse(
            {"error": "invalid_request", "detail": details},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
