"""The SLA app: case events in, clocks in PostgreSQL, warnings and breaches out at their instant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from casewire_common import topics
from casewire_common.http import kafka_check, mount_operations, postgres_check
from casewire_common.kafka import DeadLetters, OrderedPublisher, build_broker, stop_broker
from casewire_common.lag import ConsumerLag
from casewire_common.logging import configure_logging
from casewire_common.metrics import new_registry
from casewire_common.outbox import OutboxMetrics, OutboxRelay
from casewire_common.unit_of_work import RetentionPruner, processed_inputs
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from prometheus_client import CollectorRegistry

from casewire_sla.adapters.metrics import SlaMetrics
from casewire_sla.adapters.store import SCHEMA, PostgresClockStore
from casewire_sla.clock_service import ClockService
from casewire_sla.domain.holding import WatermarkHold
from casewire_sla.domain.policies import PolicySet, load_policy_file
from casewire_sla.domain.roster import load_roster
from casewire_sla.entrypoints.gauges import ClockGauges
from casewire_sla.entrypoints.kafka import DEAD_LETTER_REASONS, subscriptions
from casewire_sla.entrypoints.scheduler import TimerScheduler
from casewire_sla.settings import SlaSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SlaRuntime:
    """The pieces of a running app, on `app.state.sla` (tests and tools look inside)."""

    settings: SlaSettings
    policies: PolicySet
    broker: KafkaBroker
    subscriber: BatchSubscriber
    store: PostgresClockStore
    service: ClockService
    scheduler: TimerScheduler
    relay: OutboxRelay
    metrics: SlaMetrics
    registry: CollectorRegistry

    def consumer_assigned(self) -> bool:
        """Whether the case-event consumer has joined its group and owns partitions."""
        consumer: Any = self.subscriber.consumer
        return consumer is not None and bool(consumer.assignment())


async def _drain_outbox(store: PostgresClockStore, timeout: float) -> None:
    """Give the relay a moment to publish what was just committed (the next start would)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while await store.outbox_backlog() and loop.time() < deadline:
            await asyncio.sleep(0.05)
    except Exception:  # shutting down regardless: the rows stay in the outbox
        log.warning("could not drain the outbox before stopping")


def create_app(settings: SlaSettings | None = None) -> FastAPI:
    """The wiring: policies and roster, adapters (PostgreSQL, Kafka, metrics), the clock
    service, its entrypoints (case-event subscriber, timer scheduler); the lifespan only
    starts and stops them."""
    settings = settings or SlaSettings()
    configure_logging(settings.log_level)
    # An invalid policy file stops the service here, before it touches Kafka or PostgreSQL.
    policies = load_policy_file(settings.sla_policies)
    roster = load_roster(settings.sla_agents)  # likewise an unreadable agents file
    registry = new_registry()
    broker = build_broker(settings.kafka_bootstrap_servers, registry, "sla")
    metrics = SlaMetrics(registry, roster)
    metrics.start_roster_series()
    dsn = settings.database_url.get_secret_value()
    store = PostgresClockStore(dsn, pool_size=settings.sla_pool_size)
    service = ClockService(store, policies)
    subscriber_of: list[BatchSubscriber] = []

    def watermark_hold() -> WatermarkHold | None:
        """How alerts wait for the router's watermark; the case-events topic's partitions
        come from the consumer's metadata (none yet: every alert waits)."""
        if not settings.sla_wait_for_watermark:
            return None
        consumer: Any = subscriber_of[0].consumer if subscriber_of else None
        partitions = consumer.partitions_for_topic(topics.CASE_EVENTS) if consumer else None
        return WatermarkHold(
            topic=topics.MESSAGES,
            case_partitions=len(partitions or ()),
            lease=timedelta(seconds=settings.sla_watermark_lease_seconds),
            max_hold=timedelta(seconds=settings.sla_max_hold_seconds),
        )

    scheduler = TimerScheduler(
        service,
        metrics,
        max_sleep=settings.sla_timer_max_sleep_seconds,
        batch_size=settings.sla_timer_batch_size,
        hold=watermark_hold,
    )
    gauges = ClockGauges(service, metrics, hold=watermark_hold)

    publisher = OrderedPublisher(settings.kafka_bootstrap_servers, "sla")
    relay = OutboxRelay(dsn, SCHEMA, publisher, OutboxMetrics(registry, "sla"))
    kafka_routes, subscriber = subscriptions(
        settings,
        service,
        scheduler,
        DeadLetters(broker, registry, "sla", DEAD_LETTER_REASONS),
        metrics,
        hold=watermark_hold,
    )
    subscriber_of.append(subscriber)
    broker.include_router(kafka_routes)
    lag = ConsumerLag(registry, [(settings.sla_consumer_group, subscriber)])
    pruner = RetentionPruner(dsn, [processed_inputs(SCHEMA)], settings.processed_retention)
    runtime = SlaRuntime(
        settings, policies, broker, subscriber, store, service, scheduler, relay, metrics, registry
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.open()
        try:
            await store.require_migrated()
            await broker.start()
            await publisher.start()
            try:
                await relay.start()
                await scheduler.start()
                gauges.task.start()
                lag.task.start()
                pruner.task.start()
                log.info(
                    "sla started",
                    policies=[policy.id for policy in policies.policies],
                    group=settings.sla_consumer_group,
                )
                yield
            finally:
                # Stop reading first, then stop firing timers; the relay goes last so that
                # what was committed is published while the broker is still connected.
                await lag.task.stop()
                await pruner.task.stop()
                await gauges.task.stop()
                await subscriber.stop()
                await scheduler.stop()
                await _drain_outbox(store, settings.sla_shutdown_drain_seconds)
                await relay.stop()  # rows not yet relayed stay in the outbox for the next start
                await publisher.stop(settings.shutdown_timeout_seconds)
                await stop_broker(broker, settings.shutdown_timeout_seconds)
        finally:
            await store.close()
            log.info("sla stopped")

    app = FastAPI(title="Casewire SLA", lifespan=lifespan)
    app.state.sla = runtime
    mount_operations(
        app,
        registry,
        {"kafka": kafka_check(broker), "postgres": postgres_check(lambda: store.pool)},
    )
    return app


@asynccontextmanager
async def offline_clock_service(
    settings: SlaSettings, policies: PolicySet
) -> AsyncIterator[ClockService]:
    """The clock service wired for `casewire-sla recompute`: its PostgreSQL store only, no
    Kafka (what it changes is in the database; no alert is written)."""
    store = PostgresClockStore(settings.database_url.get_secret_value(), pool_size=2)
    await store.open()
    try:
        yield ClockService(store, policies)
    finally:
        await store.close()
