"""Configuration shared by every service: environment variables `CASEWIRE_*`, secrets from files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRETS_DIR = Path("/run/secrets/casewire")


class ServiceSettings(BaseSettings):
    """Every service reads these; each service subclasses it for its own settings."""

    model_config = SettingsConfigDict(
        env_prefix="CASEWIRE_",
        secrets_dir=SECRETS_DIR if SECRETS_DIR.is_dir() else None,
        extra="ignore",
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
    )
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/casewire"),
        description="PostgreSQL connection URL (a secret: may come from a mounted file).",
    )
    http_host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    http_port: int = 8080
    log_level: str = "INFO"
    debug_content: bool = Field(
        default=False, description="Log message text and personal data (never in production)."
    )
    shutdown_timeout_seconds: float = Field(
        default=10.0, description="How long shutdown waits for Kafka to take pending records."
    )
    consumer_session_timeout_ms: int = 10_000
    consumer_max_records: int = 500
    consumer_fetch_max_wait_ms: int = Field(
        default=100,
        gt=0,
        description="Longest a consumer's fetch waits at the broker for records to arrive;"
        " some Kafka-protocol brokers (Tansu) answer a waiting fetch only at a fraction of"
        " it, so it bounds how late a new record is seen.",
    )


class ConsumerSettings(ServiceSettings):
    """The services that consume Kafka through the unit of work (router, sla) read these too."""

    processed_retention: timedelta = Field(
        default=timedelta(days=8),
        gt=timedelta(0),
        description="How long processed-input markers are kept to drop redeliveries; longer"
        " than the broker's retention (Kafka's default: 7 days).",
    )
