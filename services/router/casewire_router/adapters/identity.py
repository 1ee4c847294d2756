"""Who is calling: OpenID Connect bearer tokens verified against the identity provider's keys,
and named machine tokens known only by their SHA-256.

A JWT is checked for signature (the provider's JWKS, cached and fetched again when a token
names an unknown `kid`, at most once per cooldown: `SigningKeys`), algorithm (only those
configured: `none` never), issuer, audience, expiry and not-before with a clock-skew leeway.
Its claims then name the caller (`agent claim`), their roles and, for leads, their teams.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from casewire_router.domain.access import Role, Scope, strongest_role

log = structlog.get_logger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
FETCH_TIMEOUT_SECONDS = 5.0


class InvalidToken(Exception):
    """No caller could be established (HTTP 401); `code` is the machine-readable reason."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class ServiceToken(BaseModel):
    """A machine client: its name (the actor id in events), the SHA-256 of its token, scopes.
    Revoking it is removing it from the list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: frozenset[Scope] = Field(min_length=1)

    @field_validator("token_sha256", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


SERVICE_TOKENS = TypeAdapter(list[ServiceToken])


def parse_service_tokens(raw: str) -> list[ServiceToken]:
    """The CASEWIRE_ROUTER_SERVICE_TOKENS JSON list; names must be unique."""
    tokens = SERVICE_TOKENS.validate_json(raw) if raw.strip() else []
    names = [token.name for token in tokens]
    if len(names) != len(set(names)):
        raise ValueError("service token names must be unique")
    return tokens


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    audience: str
    jwks_url: str | None  # None: from the issuer's discovery document
    algorithms: Sequence[str]
    leeway_seconds: float
    agent_claim: str
    roles_claim: str
    teams_claim: str
    scopes_claim: str
    jwks_cooldown_seconds: float
    jwks_max_age_seconds: float


@dataclass(frozen=True)
class Principal:
    """A verified caller before the roster is consulted: `teams` are the token's (leads');
    `role` None: the token holds no role Casewire knows (a valid token without any right)."""

    id: str
    role: Role | None
    teams: frozenset[str]
    scopes: frozenset[Scope]
    name: str | None = None


class SigningKeys:
    """The provider's JWKS (https://, or file:// for a key set mounted from a ConfigMap), kept
    for `max_age` and fetched again for an unknown `kid` at most once per `cooldown`: a flood
    of made-up key ids cannot turn into a flood of requests to the provider."""

    def __init__(self, url: str, *, max_age: float, cooldown: float) -> None:
        self._url = url
        self._max_age = max_age
        self._cooldown = cooldown
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        async with self._lock:
            now = time.monotonic()
            if self._fetched_at is None or now - self._fetched_at >= self._max_age:
                await self._fetch(now)
            found = self._find(kid)
            if found is None and now - (self._fetched_at or now) >= self._cooldown:
                await self._fetch(now)  # a rotated key: fetch the set again
                found = self._find(kid)
            if found is None:
                raise InvalidToken("unknown_key", f"no key of the issuer has kid {kid!r}")
            return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:  # a provider with one key may leave `kid` out
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _fetch(self, now: float) -> None:
        try:
            document = await asyncio.to_thread(_read_json, self._url)
            key_set = jwt.PyJWKSet.from_dict(document)
        except (OSError, ValueError, jwt.PyJWKSetError) as error:
            log.warning("identity provider keys unreadable", url=self._url, error=str(error))
            if not self._keys:
                raise InvalidToken(
                    "keys_unavailable", "the identity provider's keys are unreachable"
                ) from None
            return  # keep the keys we have; try again after the cooldown
        finally:
            self._fetched_at = now
        self._keys = {key.key_id or "": key for key in key_set.keys}


class OidcVerifier:
    """Verifies OpenID Connect access or ID tokens (JWT) of one issuer and audience."""

    def __init__(self, settings: OidcSettings) -> None:
        self._settings = settings
        self._keys: SigningKeys | None = None
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:  # DecodeError, and a malformed kid or crit
            raise InvalidToken("malformed_token", f"not a JWT: {error}") from None
        algorithm = header.get("alg")
        if algorithm not in self._settings.algorithms:
            raise InvalidToken("invalid_token", f"algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        key = await (await self._signing_keys()).key(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(self._settings.algorithms),
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("expired_token", "the token has expired") from None
        except jwt.InvalidTokenError as error:
            raise InvalidToken("invalid_token", str(error)) from None
        return principal_from_claims(claims, self._settings)

    async def _signing_keys(self) -> SigningKeys:
        async with self._lock:
            if self._keys is None:
                url = self._settings.jwks_url
                if url is None:
                    url = await asyncio.to_thread(_discover_jwks_url, self._settings.issuer)
                self._keys = SigningKeys(
                    url,
                    max_age=self._settings.jwks_max_age_seconds,
                    cooldown=self._settings.jwks_cooldown_seconds,
                )
            return self._keys


def _read_json(url: str) -> Any:
    """A JSON document from https://, http:// or file://."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return json.loads(Path(urllib.request.url2pathname(parsed.path)).read_bytes())
    if parsed.scheme not in ("https", "http"):
        raise ValueError(f"unsupported URL scheme {parsed.scheme!r}")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
        return json.load(response)


def _discover_jwks_url(issuer: str) -> str:
    url = issuer.rstrip("/") + DISCOVERY_PATH
    try:
        document = _read_json(url)
    except (OSError, ValueError) as error:
        log.warning("identity provider discovery failed", url=url, error=str(error))
        raise InvalidToken(
            "keys_unavailable", "the identity provider's discovery document is unreachable"
        ) from None
    jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
    if not isinstance(jwks_uri, str):
        raise InvalidToken("keys_unavailable", "the discovery document names no jwks_uri")
    return jwks_uri


def principal_from_claims(claims: Mapping[str, Any], settings: OidcSettings) -> Principal:
    """The caller a verified token names. Claim names may be dotted paths into nested objects
    (Keycloak's `realm_access.roles`)."""
    subject = _claim(claims, settings.agent_claim)
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("invalid_token", f"the token has no {settings.agent_claim!r} claim")
    roles = _strings(_claim(claims, settings.roles_claim))
    role = strongest_role(roles)
    teams = frozenset(_strings(_claim(claims, settings.teams_claim)))
    raw_scopes = _claim(claims, settings.scopes_claim)
    names = raw_scopes.split() if isinstance(raw_scopes, str) else _strings(raw_scopes)
    known = {scope.value for scope in Scope}
    scopes = frozenset(Scope(name) for name in names if name in known)
    name = claims.get("name")
    return Principal(subject, role, teams, scopes, name if isinstance(name, str) else None)


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    if path in claims:  # a namespaced claim (`https://example.com/roles`) is its own name
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


class ServiceTokens:
    """The named machine tokens, looked up by their SHA-256 (the tokens are never stored)."""

    def __init__(self, tokens: Sequence[ServiceToken]) -> None:
        self._by_digest = {token.token_sha256: token for token in tokens}

    def __bool__(self) -> bool:
        return bool(self._by_digest)

    def find(self, token: str) -> Principal | None:
        # Looked up by digest: timing can at most reveal a digest's prefix, not the token.
        entry = self._by_digest.get(hashlib.sha256(token.encode()).hexdigest())
        if entry is None:
            return None
        return Principal(entry.name, "service", frozenset(), entry.scopes)


class Authenticator:
    """A bearer token to a principal: a known machine token, else an OpenID Connect JWT."""

    def __init__(self, oidc: OidcVerifier | None, services: ServiceTokens) -> None:
        self._oidc = oidc
        self._services = services

    @property
    def enabled(self) -> bool:
        return self._oidc is not None or bool(self._services)

    async def authenticate(self, token: str) -> Principal:
        service = self._services.find(token)
        if service is not None:
            return service
        if self._oidc is None:
            raise InvalidToken("invalid_token", "unknown token (no identity provider is set up)")
        return await self._oidc.verify(token)
