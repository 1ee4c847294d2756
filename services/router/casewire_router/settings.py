from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import get_args

from casewire_common.messages import Platform
from casewire_common.settings import ConsumerSettings
from pydantic import Field, SecretStr, field_validator

# Also where `casewire-router check-rules` looks when neither --saved-replies nor the variable says.
SAVED_REPLIES_FILE = Path("config/saved-replies.yaml")


class RouterSettings(ConsumerSettings):
    router_rules: Path = Path("config/rules.yaml")
    router_agents: Path | None = Path("config/agents.yaml")
    router_saved_replies: Path | None = Field(
        default=SAVED_REPLIES_FILE,
        description="The saved-replies file (reloaded when it changes); unset: only replies"
        " written through the API, and no rule may name a reply_template.",
    )
    router_consumer_group: str = "casewire-router"
    # The same variable as ingest's: one list of languages for the whole pipeline.
    languages: str = Field(
        default="en,es,ar,el,th,fr,de,pt,it,tr,ru,ja,ko,zh,he,hi,id,nl",
        description="Languages ingest's detector may answer (ISO 639-1, comma-separated): the"
        " values the care metrics' `language` label may take besides other and unknown.",
    )
    router_rules_reload_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the rules and saved-replies files are checked for changes.",
    )
    router_oidc_issuer: str | None = Field(
        default=None,
        description="The identity provider's issuer URL (the tokens' `iss`); unset: only"
        " service tokens are accepted.",
    )
    router_oidc_audience: str = Field(
        default="casewire", description="The `aud` the router's tokens must carry."
    )
    router_oidc_jwks_url: str | None = Field(
        default=None,
        description="Where the provider's signing keys are (https:// or file://); unset: the"
        " `jwks_uri` of the issuer's discovery document.",
    )
    router_oidc_algorithms: str = Field(
        default="RS256,ES256,PS256,EdDSA",
        description="Signature algorithms accepted (comma-separated); `none` never is.",
    )
    router_oidc_leeway_seconds: float = Field(
        default=60.0, ge=0, le=600, description="Clock skew allowed on exp, nbf and iat."
    )
    router_oidc_agent_claim: str = Field(
        default="sub", description="The claim holding the agent id (dotted path allowed)."
    )
    router_oidc_roles_claim: str = Field(
        default="roles",
        description="The claim listing the roles agent, lead, admin or service (dotted path"
        " allowed, e.g. realm_access.roles).",
    )
    router_oidc_teams_claim: str = Field(
        default="teams", description="The claim listing a lead's teams."
    )
    router_oidc_scopes_claim: str = Field(
        default="scope", description="The claim holding a service token's scopes."
    )
    router_oidc_jwks_cooldown_seconds: float = Field(
        default=30.0,
        ge=0,
        description="A token with an unknown key id fetches the keys again at most this often.",
    )
    router_oidc_jwks_max_age_seconds: float = Field(
        default=300.0, gt=0, description="How long fetched keys are used before a refresh."
    )
    router_service_tokens: SecretStr | None = Field(
        default=None,
        description="Machine clients (a secret): JSON list of {name, token_sha256, scopes}.",
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
    router_handover_app_ids: list[str] = Field(
        default_factory=list,
        description="Casewire's own Meta app id(s) (JSON list). Set: Meta's handover protocol"
        " is followed (docs/handover.md): messages on the standby channel are a chatbot's"
        " transcript, and a pass of thread control to one of these apps hands the"
        " conversation to humans. Empty: every Messenger and Instagram message is for humans.",
    )
    router_handover_page_inbox_is_human: bool = Field(
        default=True,
        description="A thread passed to the Page inbox (app 263902037430900) is with humans:"
        " its case opens, and replies from the inbox count as responses.",
    )
    router_handover_bot_accounts: list[str] = Field(
        default_factory=list,
        description="Brand accounts a chatbot answers first, as `platform:account_id` (JSON"
        " list; e.g. a WhatsApp phone_number_id, an X user id): their conversations open no"
        " case until the rules file's `handoff` hands them to humans.",
    )

    @field_validator("router_handover_bot_accounts")
    @classmethod
    def _platform_and_account(cls, accounts: list[str]) -> list[str]:
        for entry in accounts:
            platform, _, account = entry.partition(":")
            if platform not in get_args(Platform) or not account:
                raise ValueError(
                    f"{entry!r} is not `platform:account_id` (platforms:"
                    f" {', '.join(get_args(Platform))})"
                )
        return accounts

    @property
    def handover_bot_accounts(self) -> frozenset[tuple[str, str]]:
        """The bot accounts as (platform, account id)."""
        return frozenset(
            (platform, account)
            for platform, _, account in (
                e.partition(":") for e in self.router_handover_bot_accounts
            )
        )

    router_reply_lease_ttl: timedelta = Field(
        default=timedelta(seconds=30),
        gt=timedelta(0),
        le=timedelta(minutes=10),
        description="How long a reply lease lasts from its last take or renewal (a desk renews"
        " it while the agent types).",
    )
    router_echo_window: timedelta = Field(
        default=timedelta(seconds=30),
        ge=timedelta(0),
        description="A brand reply seen on a platform while someone held the case's reply"
        " lease is a collision unless the holder records it as theirs (by its"
        " platform_message_id) within this long.",
    )
    router_offline_grace: timedelta | None = Field(
        default=None,
        ge=timedelta(0),
        description="An agent offline this long gets their open cases returned to the queue"
        " (they drain to agents with room at once); back online sooner, they keep them. Unset:"
        " an offline agent's cases stay theirs.",
    )
    router_desk_check_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often each replica looks for offline agents' cases due back in the"
        " queue and for echoes due to count as collisions.",
    )
    router_stream_keepalive_seconds: float = Field(
        default=15.0,
        gt=0,
        le=15.0,
        description="A stream with nothing to send sends a keep-alive comment this often.",
    )
    router_stream_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Besides the notifications of commits, each replica reads the feed this"
        " often (a missed notification delays a change by at most this much).",
    )
    router_stream_max_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="A stream ends after this long; the client reconnects with its"
        " Last-Event-ID (and a fresh token, and the roster's teams as they are then).",
    )
    router_stream_retention: timedelta = Field(
        default=timedelta(hours=24),
        gt=timedelta(0),
        description="How long the stream's changes are kept for a client to resume after a"
        " disconnect; a client away longer is told to reload its lists (event reset).",
    )
