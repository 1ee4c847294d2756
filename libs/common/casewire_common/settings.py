"""Configuration shared by every service: environment variables `CASEWIRE_*`, secrets from files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
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
    # Failover (docs/operations/scaling.md, "Failover"): a replica killed is noticed after the
    # session timeout; members learn of a rebalance at their next heartbeat.
    consumer_session_timeout_ms: int = Field(
        default=6_000,
        gt=0,
        description="How long the group waits for a silent consumer before it hands the"
        " consumer's partitions to another replica.",
    )
    consumer_heartbeat_interval_ms: int = Field(
        default=500,
        gt=0,
        description="How often a consumer tells the group it is alive, and so how soon it"
        " learns that a replica joined or left; below a third of the session timeout.",
    )
    consumer_max_poll_interval_ms: int = Field(
        default=300_000,
        gt=0,
        description="Longest a consumer may spend on one batch before it leaves its group.",
    )
    consumer_rebalance_timeout_ms: int = Field(
        default=10_000,
        gt=0,
        description="How long a rebalance waits for every member to rejoin before it goes on"
        " without the missing ones: the longest one stuck replica can hold up the others.",
    )
    consumer_group_instance_id: str | None = Field(
        default=None,
        description="Static group membership (KIP-345): a stable name per replica, such as a"
        " StatefulSet pod name; a replica that restarts within the session timeout gets its"
        " partitions back without a rebalance. Unset: dynamic membership.",
    )

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> ServiceSettings:
        # A heartbeat slower than a third of the session lets one late heartbeat cost a member
        # its partitions (and every other member a rebalance).
        if self.consumer_heartbeat_interval_ms * 3 > self.consumer_session_timeout_ms:
            raise ValueError(
                "CASEWIRE_CONSUMER_HEARTBEAT_INTERVAL_MS must be at most a third of"
                " CASEWIRE_CONSUMER_SESSION_TIMEOUT_MS"
            )
        return self

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
        " than the broker's retention (Kafka's default: 7 days). The router prunes its"
        " escalations and superseded bot handovers by it too.",
    )
