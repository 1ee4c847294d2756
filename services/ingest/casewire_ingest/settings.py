from __future__ import annotations

import re

from casewire_common.settings import ServiceSettings
from pydantic import BaseModel, Field, SecretStr, field_validator


class MetaApp(BaseModel):
    """A Meta app (Messenger, Instagram, Page, WhatsApp webhooks share its secret)."""

    app_secret: SecretStr
    verify_token: SecretStr
    accounts: list[str] = Field(
        default_factory=list,
        description="Page, Instagram and WhatsApp phone-number ids of this app (empty: any).",
    )


class XApp(BaseModel):
    """An X app subscribed to the Account Activity API."""

    name: str = "default"
    consumer_secret: SecretStr
    accounts: list[str] = Field(
        default_factory=list, description="X user ids (`for_user_id`) of the brand (empty: any)."
    )


class Integration(BaseModel):
    """A system posting to the generic channel (`POST /v1/messages`): a web chat, a CRM.

    It proves who it is by signing the raw body with one of its `secrets` (HMAC-SHA256,
    `X-Casewire-Signature: sha256=<hex>` with `X-Casewire-Integration: <name>`; several
    secrets while rotating), or by a bearer token whose SHA-256 is in `token_sha256` (the
    token itself is never configured, only its hash)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    secrets: list[SecretStr] = Field(default_factory=list)
    token_sha256: list[str] = Field(default_factory=list)

    @field_validator("token_sha256")
    @classmethod
    def _hex_digests(cls, hashes: list[str]) -> list[str]:
        if not all(re.fullmatch(r"[0-9a-f]{64}", value) for value in hashes):
            raise ValueError("each token_sha256 is 64 lowercase hex digits (sha256sum)")
        return hashes


class IngestSettings(ServiceSettings):
    max_body_bytes: int = 1_048_576
    max_json_depth: int = Field(default=64, ge=2, description="Deepest nesting a body may have.")
    max_json_values: int = Field(
        default=250_000, ge=1, description="Most JSON values (of any kind) one body may hold."
    )
    max_clock_skew_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How far a sent_at may be ahead of its receipt: beyond, the generic channel"
        " refuses it and a platform's is replaced by the receipt time (time_adjusted).",
    )
    publish_timeout_seconds: float = 10.0
    meta_apps: list[MetaApp] = Field(
        default_factory=list, description="JSON list (a secret: may come from a mounted file)."
    )
    x_apps: list[XApp] = Field(
        default_factory=list, description="JSON list (a secret: may come from a mounted file)."
    )
    integrations: list[Integration] = Field(
        default_factory=list,
        description="JSON list of the generic channel's callers (a secret: may come from a"
        " mounted file). None configured: the generic channel refuses every request.",
    )
    dedup_claim_timeout_seconds: float = Field(
        default=60.0, description="After this, a claim of a request that never finished expires."
    )
    dedup_retention_days: float = Field(
        default=14.0, description="How long published message keys are remembered."
    )
    languages: str = Field(
        default="en,es,ar,el,th,fr,de,pt,it,tr,ru,ja,ko,zh,he,hi,id,nl",
        description="Languages the detector may answer (ISO 639-1, comma-separated).",
    )

    @field_validator("integrations")
    @classmethod
    def _distinct_integrations(cls, integrations: list[Integration]) -> list[Integration]:
        names = [integration.name for integration in integrations]
        if len(set(names)) != len(names):
            raise ValueError("integration names must be distinct")
        return integrations
