from __future__ import annotations

from pathlib import Path

from casewire_common.settings import ConsumerSettings
from pydantic import Field


class SlaSettings(ConsumerSettings):
    sla_policies: Path = Field(
        default=Path("config/sla-policies.yaml"),
        description="The SLA policy file (CASEWIRE_SLA_POLICIES); read once at start.",
    )
    sla_agents: Path | None = Field(
        default=None,
        description="The router's agents file (CASEWIRE_SLA_AGENTS), read once at start for"
        " its agent ids and teams: the roster the per-agent SLA figures name. Unset: no"
        " roster, every assignee counts as other.",
    )
    sla_consumer_group: str = Field(
        default="casewire-sla", description="Kafka consumer group reading case events."
    )
    sla_fetch_min_bytes: int = Field(
        default=65536,
        ge=1,
        description="How many bytes of case events a fetch waits for (at most"
        " CASEWIRE_SLA_FETCH_MAX_WAIT_MS): clocks start and stop on event time and alerts fire"
        " from timers, so the SLA service can read in fewer, larger fetches. Every router"
        " replica's watermark lands on every partition several times a second; read one by one,"
        " they made the local broker's work grow with the topic's size.",
    )
    sla_fetch_max_wait_ms: int = Field(
        default=250,
        gt=0,
        description="Longest a case-events fetch waits for CASEWIRE_SLA_FETCH_MIN_BYTES. With"
        " the router's watermark interval it must stay well under"
        " CASEWIRE_SLA_WATERMARK_LEASE_SECONDS, or alerts wait for marks while nothing lags.",
    )
    sla_timer_max_sleep_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Longest the timer scheduler sleeps, so timers of other replicas are seen.",
    )
    sla_timer_batch_size: int = Field(default=500, gt=0)
    sla_wait_for_watermark: bool = Field(
        default=True,
        description="Hold warnings and breaches until the router's low watermark has passed"
        " their instant (DESIGN.md, 'Event time and late data'); off: fire at the instant.",
    )
    sla_watermark_lease_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How far past its last watermark a router is trusted to have processed:"
        " more than its publishing interval plus the marks' way through Kafka, so alerts fire"
        " at their instant while the router keeps up.",
    )
    sla_max_hold_seconds: float = Field(
        default=120.0,
        ge=0,
        description="The longest an alert waits for the watermark; then it fires with"
        " provisional: true (a reply sent in time retracts a breach later).",
    )
    sla_pool_size: int = Field(default=10, gt=1)
    sla_shutdown_drain_seconds: float = Field(
        default=5.0, ge=0, description="How long shutdown waits for the outbox to be published."
    )
