"""The ingest app: platform webhooks in (verified, normalized, deduplicated), Kafka out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from casewire_common.gc_tuning import GcTuning
from casewire_common.http import kafka_check, mount_operations, postgres_check
from casewire_common.kafka import OrderedPublisher, build_broker, stop_broker
from casewire_common.logging import configure_logging
from casewire_common.metrics import new_registry
from casewire_common.pg import Database
from casewire_common.unit_of_work import RetentionPruner
from fastapi import FastAPI

from casewire_ingest.adapters.dedup import (
    SEEN_MESSAGES,
    NotMigrated,
    PostgresDedupStore,
    require_migrated,
)
from casewire_ingest.adapters.publisher import IngestMetrics, KafkaIngestPublisher
from casewire_ingest.domain.json_body import JsonLimits
from casewire_ingest.domain.language import LanguageDetector
from casewire_ingest.domain.sources import ReadingRules, Source
from casewire_ingest.entrypoints.http import IngestApp
from casewire_ingest.settings import IngestSettings
from casewire_ingest.webhook_service import WebhookService


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    """The wiring: adapters (Kafka producer, PostgreSQL dedup memory, metrics), the webhook
    service, its HTTP entrypoints; the lifespan only starts and stops them."""
    settings = settings or IngestSettings()
    configure_logging(settings.log_level)
    registry = new_registry()
    broker = build_broker(settings.kafka_bootstrap_servers, registry, "ingest")
    # Bodies and messages go out through a plain producer of their own, grouped across
    # concurrent requests; the broker serves the readiness check and the contract.
    records = OrderedPublisher(settings.kafka_bootstrap_servers, "ingest")
    metrics = IngestMetrics(registry, [i.name for i in settings.integrations])
    database = Database(settings.database_url.get_secret_value(), min_size=1, max_size=10)
    dedup = PostgresDedupStore(database, timedelta(seconds=settings.dedup_claim_timeout_seconds))
    # The memory of published keys outlasts platforms' redeliveries (hours) and the raw
    # topic's retention, and no more: it stays bounded.
    pruner = RetentionPruner(
        settings.database_url.get_secret_value(),
        [SEEN_MESSAGES],
        timedelta(days=settings.dedup_retention_days),
    )
    detector = LanguageDetector(settings.languages.split(","))
    gc_tuning = GcTuning()
    ingest = WebhookService(
        KafkaIngestPublisher(records, metrics),
        dedup,
        detector.detect,
        metrics,
        timeout_seconds=settings.publish_timeout_seconds,
        reading=reading_rules(settings),
        log_content=settings.debug_content,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await database.open()
        try:
            await require_migrated(database)
        except NotMigrated:
            await database.close()
            raise
        await broker.start()
        await records.start()
        gc_tuning.start()  # once connected: what start-up built is frozen
        pruner.task.start()
        try:
            yield
        finally:
            await pruner.task.stop()
            await dedup.flush()  # the requests answered last: their marks must not be lost
            await records.stop(settings.shutdown_timeout_seconds)
            await stop_broker(broker, settings.shutdown_timeout_seconds)
            await database.close()

    app = IngestApp(ingest, metrics, settings, title="Casewire ingest", lifespan=lifespan)
    app.state.broker = broker  # its channels are the published contract (casewire-dev contracts)
    mount_operations(
        app,
        registry,
        {
            "kafka": kafka_check(broker),
            "postgres": postgres_check(lambda: database.pool if database.is_open else None),
        },
    )
    return app


@asynccontextmanager
async def replay_ingest(settings: IngestSettings) -> AsyncIterator[WebhookService]:
    """Ingest's use case wired for `casewire-ingest replay`: the service's Kafka producer and
    deduplication memory, without the HTTP app. Writes the pending dedup marks on the way out."""
    database = Database(settings.database_url.get_secret_value(), min_size=1, max_size=2)
    await database.open()
    try:
        await require_migrated(database)
        records = OrderedPublisher(settings.kafka_bootstrap_servers, "ingest-replay")
        await records.start()
        metrics = IngestMetrics(new_registry())
        dedup = PostgresDedupStore(
            database, timedelta(seconds=settings.dedup_claim_timeout_seconds)
        )
        try:
            yield WebhookService(
                KafkaIngestPublisher(records, metrics),
                dedup,
                LanguageDetector(settings.languages.split(",")).detect,
                metrics,
                timeout_seconds=settings.publish_timeout_seconds,
                reading=reading_rules(settings),
            )
        finally:
            await dedup.flush()
            await records.stop(settings.shutdown_timeout_seconds)
    finally:
        await database.close()


def reading_rules(settings: IngestSettings) -> ReadingRules:
    return ReadingRules(
        JsonLimits(settings.max_json_depth, settings.max_json_values),
        timedelta(seconds=settings.max_clock_skew_seconds),
    )


def oldest_remembered(settings: IngestSettings, now: datetime | None = None) -> datetime:
    """The earliest receipt time whose messages the dedup memory still holds, with an hour to
    spare for the trim that runs meanwhile."""
    now = now or datetime.now(UTC)
    return now - timedelta(days=settings.dedup_retention_days) + timedelta(hours=1)


def replay_accounts(settings: IngestSettings) -> dict[Source, frozenset[str] | None]:
    """Per source, the accounts its bodies may speak for: a kept body does not say which
    secret verified it, so it is any configured app's (None: an app that lists none takes
    any account)."""

    def union(lists: list[list[str]]) -> frozenset[str] | None:
        if not lists or not all(lists):
            return None
        return frozenset(account for accounts in lists for account in accounts)

    meta = union([app.accounts for app in settings.meta_apps])
    return {"meta": meta, "whatsapp": meta, "x": union([app.accounts for app in settings.x_apps])}
