from __future__ import annotations

from casewire_common.settings import ServiceSettings
from pydantic import BaseModel, Field, SecretStr


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


class IngestSettings(ServiceSettings):
    max_body_bytes: int = 1_048_576
    publish_timeout_seconds: float = 10.0
    meta_apps: list[MetaApp] = Field(
        default_factory=list, description="JSON list (a secret: may come from a mounted file)."
    )
    x_apps: list[XApp] = Field(
        default_factory=list, description="JSON list (a secret: may come from a mounted file)."
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
