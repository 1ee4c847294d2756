"""The router app: canonical messages in; cases in PostgreSQL and case events out.

`create_app` is the one place the router is wired: adapters, then the service layer
(`message_service`, `case_service`), then the entrypoints (Kafka subscribers, HTTP API). The
lifespan only starts the components in order and stops them in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from casewire_common.gc_tuning import GcTuning
from casewire_common.http import kafka_check, mount_operations, postgres_check
from casewire_common.kafka import DeadLetters, OrderedPublisher, build_broker, stop_broker
from casewire_common.lag import ConsumerLag
from casewire_common.logging import configure_logging
from casewire_common.metrics import new_registry
from casewire_common.outbox import OutboxMetrics, OutboxRelay
from casewire_common.periodic import Periodic
from casewire_common.pg import Database
from casewire_common.unit_of_work import AgedTable, RetentionPruner, processed_inputs
from fastapi import FastAPI
from faststream.kafka.subscriber.usecase import BatchSubscriber

from casewire_router.adapters import repository
from casewire_router.adapters.agents_source import AgentsSync
from casewire_router.adapters.case_feed import FeedHub
from casewire_router.adapters.case_store import PostgresCaseStore
from casewire_router.adapters.customer_store import PostgresCustomerStore
from casewire_router.adapters.desk_store import PostgresDeskStore, PostgresLeaseStore
from casewire_router.adapters.identity import (
    Authenticator,
    OidcSettings,
    OidcVerifier,
    ServiceTokens,
    parse_service_tokens,
)
from casewire_router.adapters.message_store import PostgresMessageStore
from casewire_router.adapters.queue_metrics import QueueMetrics, QueueMetricsRefresher
from casewire_router.adapters.rules_source import RulesMetrics, RulesWatcher
from casewire_router.adapters.saved_replies_source import (
    SavedRepliesMetrics,
    SavedRepliesWatcher,
    read_saved_replies,
)
from casewire_router.adapters.saved_reply_store import PostgresSavedReplyStore
from casewire_router.adapters.watermarks import WatermarkHeartbeat
from casewire_router.case_service import CaseService
from casewire_router.customer_service import CustomerService
from casewire_router.desk_service import DeskService, ReplyLeaseService
from casewire_router.domain.care import TrendSettings
from casewire_router.domain.case import CaseWindows
from casewire_router.domain.handover import HandoverPolicy
from casewire_router.domain.routing import case_router_for
from casewire_router.domain.rules import RuleSet, parse_rules
from casewire_router.domain.saved_replies import (
    SavedRepliesError,
    SavedRepliesFile,
    rules_fit_replies,
    unknown_team_warnings,
)
from casewire_router.domain.yaml_files import dotted
from casewire_router.entrypoints.auth import actor_dependency, install_error_handlers
from casewire_router.entrypoints.http import case_api
from casewire_router.entrypoints.http_customers import customers_api
from casewire_router.entrypoints.http_desk import desk_api
from casewire_router.entrypoints.http_saved_replies import saved_replies_api
from casewire_router.entrypoints.kafka import subscriptions
from casewire_router.message_service import DEAD_LETTER_REASONS, MessageService, RouterMetrics
from casewire_router.saved_replies_service import SavedRepliesService
from casewire_router.settings import RouterSettings

# Plans made for each statement's own values. With PostgreSQL's default, a plan cached while
# the case tables were small (a new deployment, before autovacuum's next analyze) went on
# scanning them whole as they grew: measured in the e2e benchmark, the lookup of a customer's
# open cases went from 0.05 to 11 ms per batch within 5,000 cases.
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}

log = structlog.get_logger(__name__)


def create_app(settings: RouterSettings | None = None) -> FastAPI:
    """The router, wired: adapters, service layer, entrypoints."""
    settings = settings or RouterSettings()
    configure_logging(settings.log_level)
    dsn = settings.database_url.get_secret_value()
    registry = new_registry()
    windows = CaseWindows(
        reopen=settings.router_reopen_window,
        merge=settings.router_merge_window,
        repeat_contact=settings.router_repeat_contact_window,
        incident=settings.router_incident_window,
        incident_threshold=settings.router_incident_threshold,
    )
    handover = HandoverPolicy(
        casewire_app_ids=frozenset(settings.router_handover_app_ids),
        page_inbox_is_human=settings.router_handover_page_inbox_is_human,
        bot_accounts=settings.handover_bot_accounts,
    )
    rules_path = settings.router_rules
    # Read once as bytes (no newline translation): the version hashes what the watcher sees.
    rules_text = rules_path.read_bytes().decode("utf-8")
    case_router = case_router_for(parse_rules(rules_text, str(rules_path)), windows, handover)
    replies = saved_replies_at_start(settings, case_router.rules, rules_text)

    # Adapters.
    broker = build_broker(settings.kafka_bootstrap_servers, registry, "router")
    database = Database(dsn, min_size=1, max_size=5, server_settings=CUSTOM_PLANS)
    publisher = OrderedPublisher(settings.kafka_bootstrap_servers, "router")
    relay = OutboxRelay(dsn, repository.SCHEMA, publisher, OutboxMetrics(registry, "router"))
    metrics = RouterMetrics(registry)
    metrics.care.use_tags(case_router.rules.tags)
    metrics.care.use_languages(code.strip() for code in settings.languages.split(","))
    metrics.precreate_teams(case_router.rules.teams)
    store = PostgresMessageStore(database, relay)

    # Service layer.
    cases = CaseService(PostgresCaseStore(database, relay), metrics)
    saved_replies = SavedRepliesService(
        PostgresSavedReplyStore(database, relay),
        replies.file,
        lambda: service.case_router.rules.teams,
        metrics.care,
    )
    customers = CustomerService(PostgresCustomerStore(database), windows.repeat_contact)
    service = MessageService(
        store,
        case_router,
        DeadLetters(broker, registry, "router", DEAD_LETTER_REASONS),
        metrics,
        echo_window=settings.router_echo_window,
    )
    feed_hub = FeedHub(dsn, database, poll_seconds=settings.router_stream_poll_seconds)
    desk = DeskService(
        PostgresDeskStore(database),
        feed_hub,
        keepalive_seconds=settings.router_stream_keepalive_seconds,
        stream_seconds=settings.router_stream_max_seconds,
    )
    reply_leases = ReplyLeaseService(
        PostgresLeaseStore(database), lease_ttl=settings.router_reply_lease_ttl
    )

    # Background duties.
    agents_sync = AgentsSync(
        settings.router_agents, lambda: service.case_router.rules.teams, database, metrics.care
    )

    def use_rules(rules: RuleSet) -> None:
        service.case_router = case_router_for(rules, windows, handover)  # from the next batch
        metrics.care.use_tags(rules.tags)
        metrics.precreate_teams(rules.teams)
        saved_replies.use_teams()
        if replies_watcher is not None:
            replies_watcher.retry()  # a file refused for want of these rules may fit now

    def use_replies(replies: SavedRepliesFile) -> None:
        saved_replies.use_file(replies)
        rules_watcher.retry()  # rules refused for want of these replies may fit now

    rules_watcher = RulesWatcher(
        rules_path,
        case_router.rules,
        use_rules,
        RulesMetrics(registry),
        settings.router_rules_reload_seconds,
        fits=lambda rules, text: replies.fit(rules, saved_replies.file, text),
    )
    replies_watcher = (
        None
        if replies.path is None
        else SavedRepliesWatcher(
            replies.path,
            replies.digest,
            use_replies,
            lambda new: replies.fit(service.case_router.rules, new, None),
            SavedRepliesMetrics(registry),
            settings.router_rules_reload_seconds,
        )
    )
    queue_metrics = QueueMetricsRefresher(
        database,
        QueueMetrics(registry),
        settings.router_queue_metrics_seconds,
        TrendSettings(
            window=settings.router_topic_trend_window,
            baseline=settings.router_topic_trend_baseline,
            threshold=settings.router_topic_trend_threshold,
            min_cases=settings.router_topic_trend_min_cases,
        ),
        metrics.care.bounds,
    )
    incident_closer = Periodic(
        "incident-closer",
        settings.router_incident_check_seconds,
        service.close_quiet_incidents,
        wait_first=True,
    )
    pruner = RetentionPruner(
        dsn,
        [processed_inputs(repository.SCHEMA), *repository.PRUNED_WITH_MARKERS],
        settings.processed_retention,
    )
    # The desks' duties, in every replica (each takes what no other holds).
    grace = settings.router_offline_grace
    desk_duties = [
        Periodic(
            "echo-decisions",
            settings.router_desk_check_seconds,
            cases.decide_echoes,
            wait_first=True,
        )
    ]
    if grace is not None:
        desk_duties.append(
            Periodic(
                "offline-returns",
                settings.router_desk_check_seconds,
                lambda: cases.return_offline_cases(grace),
                wait_first=True,
            )
        )
    desk_pruner = RetentionPruner(
        dsn,
        [
            AgedTable(repository.SCHEMA, "case_feed", "recorded_at"),
            AgedTable(repository.SCHEMA, "reply_leases", "expires_at"),
            AgedTable(repository.SCHEMA, "lease_echoes", "decide_at"),
        ],
        settings.router_stream_retention,
    )
    gc_tuning = GcTuning()

    # Entrypoints.
    def heartbeat(subscriber: BatchSubscriber) -> WatermarkHeartbeat:
        return WatermarkHeartbeat(
            database,
            relay,
            publisher,
            subscriber,
            repository.SCHEMA,
            settings.router_watermark_interval_seconds,
        )

    kafka_routes, subscribers, watermarks = subscriptions(service, settings, heartbeat)
    broker.include_router(kafka_routes)
    lag = ConsumerLag(registry, list(subscribers.items()))
    authenticator = authenticator_for(settings)
    current_actor = actor_dependency(authenticator, cases.roster_teams)
    api_routes = [
        case_api(cases, current_actor, saved_replies, customers),
        saved_replies_api(saved_replies, current_actor),
        customers_api(customers, current_actor),
        desk_api(desk, reply_leases, current_actor),
    ]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await database.open()
        await repository.require_migrated(database)
        await agents_sync.start()
        await saved_replies.start()
        await publisher.start()
        await relay.start()
        await feed_hub.start()  # before the API serves: streams start from its position
        await cases.drain_all()  # the agents file may have freed capacity while we were away
        # Joins the consumer groups last: a long drain (thousands of queued cases) inside a
        # new member's first session got it dropped from the group, and the others waited.
        await broker.start()
        rules_watcher.start()
        if replies_watcher is not None:
            replies_watcher.start()
        queue_metrics.task.start()
        lag.task.start()
        watermarks.task.start()
        pruner.task.start()
        desk_pruner.task.start()
        incident_closer.start()
        for duty in desk_duties:
            duty.start()
        gc_tuning.start()
        log.info("router started", rules_version=service.case_router.rules.version)
        handoff = service.case_router.rules.handoff
        if handover.bot_accounts and not (handoff.customer_says or handoff.bot_says):
            log.warning(
                "bot accounts set but the rules file has no handoff: their conversations never"
                " reach a human (docs/handover.md)"
            )
        if not authenticator.enabled:
            log.warning(
                "case and agent API off: set CASEWIRE_ROUTER_OIDC_ISSUER or"
                " CASEWIRE_ROUTER_SERVICE_TOKENS to turn it on"
            )
        try:
            yield
        finally:
            await rules_watcher.stop()
            if replies_watcher is not None:
                await replies_watcher.stop()
            await queue_metrics.task.stop()
            await lag.task.stop()
            await watermarks.task.stop()
            await pruner.task.stop()
            await desk_pruner.task.stop()
            await incident_closer.stop()
            for duty in desk_duties:
                await duty.stop()
            await feed_hub.stop()
            for subscriber in subscribers.values():
                await subscriber.stop()  # finish the batch in hand, take no more
            await relay.stop()  # rows not yet relayed stay in the outbox for the next start
            await publisher.stop(settings.shutdown_timeout_seconds)
            await stop_broker(broker, settings.shutdown_timeout_seconds)
            await database.close()

    app = FastAPI(title="Casewire router", lifespan=lifespan)
    app.state.broker = broker  # its channels are the published contract (casewire-dev contracts)
    app.state.feed_hub = feed_hub  # the streams this replica serves (its subscriptions)
    for routes in api_routes:
        app.include_router(routes)
    install_error_handlers(app)
    mount_operations(
        app,
        registry,
        {
            "kafka": kafka_check(broker),
            "postgres": postgres_check(lambda: database.pool if database.is_open else None),
        },
    )
    return app


@dataclass(frozen=True)
class SavedRepliesAtStart:
    """The saved-replies file in force at start (`path` None: none), and how it and the rules
    file are checked against each other from then on."""

    path: Path | None
    file: SavedRepliesFile
    digest: str
    rules_source: str

    def fit(self, rules: RuleSet, replies: SavedRepliesFile, rules_text: str | None) -> list[str]:
        """The rules' reply_templates the replies lack, in words (with lines given the text)."""
        return rules_fit_replies(
            rules.spec,
            replies,
            rules_source=self.rules_source,
            replies_source=str(
                self.path or "no saved-replies file (CASEWIRE_ROUTER_SAVED_REPLIES)"
            ),
            rules_text=rules_text,
        )


def saved_replies_at_start(
    settings: RouterSettings, rules: RuleSet, rules_text: str
) -> SavedRepliesAtStart:
    """Read the saved-replies file (the default one may be absent, a configured one must be
    there) and refuse to start (SavedRepliesError) when a rule names a reply it lacks; replies
    for teams the rules do not declare are logged."""
    path = settings.router_saved_replies
    if (
        path is not None
        and "router_saved_replies" not in settings.model_fields_set
        and not path.exists()
    ):
        path = None
    file, digest = read_saved_replies(path) if path is not None else (SavedRepliesFile(), "")
    replies = SavedRepliesAtStart(path, file, digest, str(settings.router_rules))
    problems = replies.fit(rules, file, rules_text)
    if problems:
        raise SavedRepliesError(problems)
    warnings = unknown_team_warnings(file, rules.teams)
    if warnings:
        log.warning(
            "saved replies name teams the rules do not declare: never offered there",
            file=str(path),
            problems=[f"{dotted(location)}: {warning}" for location, warning in warnings],
        )
    return replies


def authenticator_for(settings: RouterSettings) -> Authenticator:
    """Who may call the API: the identity provider's tokens (if an issuer is set) and the
    named service tokens."""
    oidc = None
    if settings.router_oidc_issuer:
        oidc = OidcVerifier(
            OidcSettings(
                issuer=settings.router_oidc_issuer,
                audience=settings.router_oidc_audience,
                jwks_url=settings.router_oidc_jwks_url,
                algorithms=[
                    name.strip() for name in settings.router_oidc_algorithms.split(",") if name
                ],
                leeway_seconds=settings.router_oidc_leeway_seconds,
                agent_claim=settings.router_oidc_agent_claim,
                roles_claim=settings.router_oidc_roles_claim,
                teams_claim=settings.router_oidc_teams_claim,
                scopes_claim=settings.router_oidc_scopes_claim,
                jwks_cooldown_seconds=settings.router_oidc_jwks_cooldown_seconds,
                jwks_max_age_seconds=settings.router_oidc_jwks_max_age_seconds,
            )
        )
    raw_tokens = settings.router_service_tokens
    tokens = parse_service_tokens(raw_tokens.get_secret_value() if raw_tokens else "")
    return Authenticator(oidc, ServiceTokens(tokens))
