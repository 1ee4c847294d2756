"""Token verification (adapters.identity) against a real RSA key set in a JWKS file: what a
forged, stale or foreign token gets, and how a rotated key is picked up without a flood of
fetches."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from casewire_dev.identity import AUDIENCE, ISSUER, LocalIdentity
from casewire_router.adapters import identity as identity_module
from casewire_router.adapters.identity import (
    Authenticator,
    InvalidToken,
    OidcSettings,
    OidcVerifier,
    ServiceTokens,
    parse_service_tokens,
)
from casewire_router.domain.access import Scope
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from pydantic import ValidationError


def settings(jwks: Path, **changes: Any) -> OidcSettings:
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks_url": jwks.as_uri(),
        "algorithms": ["RS256", "ES256"],
        "leeway_seconds": 30,
        "agent_claim": "sub",
        "roles_claim": "roles",
        "teams_claim": "teams",
        "scopes_claim": "scope",
        "jwks_cooldown_seconds": 30,
        "jwks_max_age_seconds": 300,
    }
    return OidcSettings(**(values | changes))


@pytest.fixture
def provider(tmp_path: Path) -> LocalIdentity:
    return LocalIdentity(tmp_path / "jwks.json")


async def refusal(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(token)
    return refused.value.code


def unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


async def test_a_valid_token_names_the_agent_role_and_lead_teams(provider: LocalIdentity) -> None:
    verifier = OidcVerifier(settings(provider.jwks_path))
    lead = await verifier.verify(provider.token("lee", ["agent", "lead"], teams=["shipping"]))
    assert (lead.id, lead.role, lead.teams) == ("lee", "lead", frozenset({"shipping"}))
    agent = await verifier.verify(provider.token("amal", ["agent"], name="أمل"))
    assert (agent.id, agent.role, agent.name) == ("amal", "agent", "أمل")


async def test_stale_foreign_and_forged_tokens_are_refused(
    provider: LocalIdentity, tmp_path: Path
) -> None:
    verifier = OidcVerifier(settings(provider.jwks_path))
    expired = provider.token("amal", ["agent"], exp=int(time.time()) - 120)
    assert await refusal(verifier, expired) == "expired_token"
    within_skew = provider.token("amal", ["agent"], exp=int(time.time()) - 10)
    assert (await verifier.verify(within_skew)).id == "amal"
    not_yet = provider.token("amal", ["agent"], nbf=int(time.time()) + 600)
    assert await refusal(verifier, not_yet) == "invalid_token"
    wrong_audience = provider.token("amal", ["agent"], aud="another-app")
    assert await refusal(verifier, wrong_audience) == "invalid_token"
    wrong_issuer = provider.token("amal", ["agent"], iss="https://evil.example/")
    assert await refusal(verifier, wrong_issuer) == "invalid_token"
    no_expiry = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "amal", "roles": ["agent"]},
        provider._key,
        algorithm="RS256",
        headers={"kid": provider.kid},
    )
    assert await refusal(verifier, no_expiry) == "invalid_token"
    claims = jwt.decode(provider.token("root", ["admin"]), options={"verify_signature": False})
    assert await refusal(verifier, unsigned(claims, {"alg": "none", "typ": "JWT"})) == (
        "invalid_token"
    )
    # Algorithm confusion: HMAC "signed" with the public key as the secret.
    public_pem = provider._key.public_key().public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    forged = unsigned(claims, {"alg": "HS256", "kid": provider.kid})[:-1]
    signature = base64.urlsafe_b64encode(
        hmac.new(public_pem, forged.encode(), hashlib.sha256).digest()
    )
    assert await refusal(verifier, f"{forged}.{signature.rstrip(b'=').decode()}") == (
        "invalid_token"
    )
    stranger = LocalIdentity(tmp_path / "stranger.json")
    assert await refusal(verifier, stranger.token("amal", ["agent"])) == "unknown_key"
    tampered = provider.token("amal", ["agent"])
    head, _, signature_part = tampered.split(".")
    promoted = base64.urlsafe_b64encode(
        json.dumps(
            jwt.decode(tampered, options={"verify_signature": False}) | {"roles": ["admin"]}
        ).encode()
    ).rstrip(b"=")
    assert await refusal(verifier, f"{head}.{promoted.decode()}.{signature_part}") == (
        "invalid_token"
    )
    assert await refusal(verifier, "not-a-jwt") == "malformed_token"
    assert (await verifier.verify(provider.token("amal", ["viewer"]))).role is None  # 403


async def test_a_rotated_key_is_fetched_once_per_cooldown(
    provider: LocalIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    read_json = identity_module._read_json

    def counting(url: str) -> Any:
        reads.append(url)
        return read_json(url)

    monkeypatch.setattr(identity_module, "_read_json", counting)
    verifier = OidcVerifier(settings(provider.jwks_path, jwks_cooldown_seconds=3600))
    await verifier.verify(provider.token("amal", ["agent"]))
    new_key = LocalIdentity(tmp_path / "next.json")
    rotated = new_key.token("amal", ["agent"])
    for _ in range(20):  # a flood of unknown key ids: no fetch within the cooldown
        assert await refusal(verifier, rotated) == "unknown_key"
    assert len(reads) == 1

    eager = OidcVerifier(settings(provider.jwks_path, jwks_cooldown_seconds=0))
    await eager.verify(provider.token("amal", ["agent"]))
    provider.publish(extra_keys=[new_key.public_jwk()])  # the provider rotates
    assert (await eager.verify(rotated)).id == "amal"


async def test_claims_may_be_nested_and_scopes_come_from_the_token(
    provider: LocalIdentity,
) -> None:
    keycloak = OidcVerifier(
        settings(provider.jwks_path, roles_claim="realm_access.roles", agent_claim="email")
    )
    token = provider.token(
        "f3b1", [], email="amal@example.com", realm_access={"roles": ["agent", "offline"]}
    )
    principal = await keycloak.verify(token)
    assert (principal.id, principal.role) == ("amal@example.com", "agent")
    service = await keycloak.verify(
        provider.token(
            "bi",
            [],
            email="bi@example.com",
            realm_access={"roles": ["service"]},
            scope="cases:read openid",
        )
    )
    assert (service.role, service.scopes) == ("service", frozenset({Scope.CASES_READ}))
    auth0 = OidcVerifier(settings(provider.jwks_path, roles_claim="https://casewire.example/roles"))
    namespaced = provider.token("lee", [], **{"https://casewire.example/roles": ["lead"]})
    assert (await auth0.verify(namespaced)).role == "lead"


async def test_service_tokens_are_known_by_digest_and_named() -> None:
    raw = json.dumps(
        [
            {
                "name": "crm",
                "token_sha256": hashlib.sha256(b"s3cret-crm").hexdigest().upper(),
                "scopes": ["cases:read", "cases:write"],
            }
        ]
    )
    authenticator = Authenticator(None, ServiceTokens(parse_service_tokens(raw)))
    crm = await authenticator.authenticate("s3cret-crm")
    assert (crm.id, crm.role, crm.scopes) == (
        "crm",
        "service",
        frozenset({Scope.CASES_READ, Scope.CASES_WRITE}),
    )
    with pytest.raises(InvalidToken):
        await authenticator.authenticate("s3cret-crm ")
    entries = json.loads(raw)
    with pytest.raises(ValueError, match="unique"):
        parse_service_tokens(json.dumps(entries + entries))
    with pytest.raises(ValidationError):
        parse_service_tokens(raw.replace("cases:write", "everything"))
    assert not Authenticator(None, ServiceTokens([])).enabled


@pytest.fixture(scope="module")
def hostile_target(tmp_path_factory: pytest.TempPathFactory) -> OidcVerifier:
    provider = LocalIdentity(tmp_path_factory.mktemp("jwks") / "jwks.json")
    return OidcVerifier(settings(provider.jwks_path))


@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "crit"]), st.text() | st.integers()
    ),
    body=st.binary(max_size=200),
    signature=st.binary(max_size=100),
    raw=st.text(max_size=300),
)
@hyp_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_token_however_hostile_raises_anything_but_a_refusal(
    header: dict[str, Any], body: bytes, signature: bytes, raw: str, hostile_target: OidcVerifier
) -> None:
    verifier = hostile_target

    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    crafted = ".".join((part(json.dumps(header).encode()), part(body), part(signature)))
    for token in (crafted, raw, f"{raw}.{raw}.{raw}"):
        try:
            asyncio.run(verifier.verify(token))
        except InvalidToken:
            continue
