"""A local identity provider for the demo, the chaos run and the tests: a signing key of its
own, its JWKS in a file the router reads (`file://`), and tokens minted for agents, leads,
admins and machine clients. No identity server is needed on a laptop.

Production uses a real provider (docs/identity.md); this one signs exactly as one does (RS256,
a `kid`, issuer, audience, expiry), so the router's verification is the same code either way.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://identity.casewire.local/"
AUDIENCE = "casewire"
TOKEN_LIFETIME_SECONDS = 12 * 3600


@dataclass
class LocalIdentity:
    """A signing key and the JWKS file that publishes its public half."""

    jwks_path: Path
    issuer: str = ISSUER
    audience: str = AUDIENCE
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    _service_tokens: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.publish()

    def public_jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key())
        )
        return public | {"kid": self.kid, "use": "sig", "alg": "RS256"}

    def publish(self, extra_keys: Iterable[Mapping[str, Any]] = ()) -> None:
        """Write the JWKS file: this key (and any others, for rotation tests)."""
        self.jwks_path.parent.mkdir(parents=True, exist_ok=True)
        keys = [self.public_jwk(), *extra_keys]
        self.jwks_path.write_text(json.dumps({"keys": keys}), "utf-8")

    def token(
        self,
        subject: str,
        roles: Iterable[str],
        *,
        teams: Iterable[str] = (),
        lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
        **claims: Any,
    ) -> str:
        """A signed access token for `subject` with these roles (and a lead's teams)."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
            "roles": list(roles),
            "teams": list(teams),
        } | claims
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": self.kid})

    def service_token(self, name: str, scopes: Iterable[str]) -> str:
        """A new machine token; the router learns only its SHA-256 (`router_env`)."""
        token = secrets.token_urlsafe(32)
        self._service_tokens.append(
            {
                "name": name,
                "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                "scopes": list(scopes),
            }
        )
        return token

    def router_env(self) -> dict[str, str]:
        """The router's settings that trust this provider and its service tokens."""
        return {
            "CASEWIRE_ROUTER_OIDC_ISSUER": self.issuer,
            "CASEWIRE_ROUTER_OIDC_AUDIENCE": self.audience,
            "CASEWIRE_ROUTER_OIDC_JWKS_URL": self.jwks_path.resolve().as_uri(),
            "CASEWIRE_ROUTER_SERVICE_TOKENS": json.dumps(self._service_tokens),
        }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
