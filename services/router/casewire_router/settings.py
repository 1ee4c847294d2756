from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from casewire_common.settings import ConsumerSettings
from pydantic import Field, SecretStr


class RouterSettings(ConsumerSettings):
    router_rules: Path = Path("config/rules.yaml")
    router_agents: Path | None = Path("config/agents.yaml")
    router_consumer_group: str = "casewire-router"
    # The same variable as ingest's: one list of languages for the whole pipeline.
    languages: str = Field(
        default="en,es,ar,el,th,fr,de,pt,it,tr,ru,ja,ko,zh,he,hi,id,nl",
        description="Languages ingest's detector may answer (ISO 639-1, comma-separated): the"
        " values the care metrics' `language` label may take besides other and unknown.",
    )
    router_rules_reload_seconds: float = Field(
        default=5.0, gt=0, description="How often the rules file is checked for changes."
    )
    router_api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the case and agent API (a secret); unset: the API is off.",
    )
    router_reopen_window: timedelta = Field(
        default=timedelta(days=7),
        description="A customer message this soon after resolution reopens the case.",
    )
    router_merge_window: timedelta = Field(
        default=timedelta(hours=24),
        description="A customer's public post and DM on one platform this close are one case.",
    )
    router_repeat_contact_window: timedelta = Field(
        default=timedelta(hours=24),
        description="The customer's messages sent this long before a message count as repeat"
        " contact (an urgency signal).",
    )
    router_incident_window: timedelta = Field(
        default=timedelta(minutes=15),
        description="Urgent messages on one crisis topic this close together form an incident.",
    )
    router_queue_metrics_seconds: float = Field(
        default=15.0, gt=0, description="How often queue depth and agent load are read."
    )
    router_watermark_interval_seconds: float = Field(
        default=0.25,
        gt=0,
        description="How often the router publishes its low watermark (how far in time it has"
        " processed each messages partition) for the SLA service to hold breaches on.",
    )
    router_incident_check_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often incidents quiet for a whole incident window are closed.",
    )
    router_incident_threshold: int = Field(
        default=5, ge=2, description="How many cases on one crisis topic open an incident."
    )
    router_topic_trend_window: timedelta = Field(
        default=timedelta(hours=1),
        gt=timedelta(0),
        description="The recent period of the topic trend: cases opened with a tag in it are"
        " compared with the tag's baseline.",
    )
    router_topic_trend_baseline: timedelta = Field(
        default=timedelta(hours=24),
        gt=timedelta(0),
        description="The period before the trend window whose rate of cases per tag is the"
        " baseline.",
    )
    router_topic_trend_threshold: float = Field(
        default=3.0,
        gt=0,
        description="A tag trends when its cases in the window are at least this many times"
        " what its baseline rate predicts.",
    )
    router_topic_trend_min_cases: int = Field(
        default=5,
        ge=1,
        description="A tag trends only with at least this many cases in the window.",
    )
