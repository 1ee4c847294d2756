"""Kafka entrypoint of the router: canonical messages in, in batches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from casewire_common import topics
from casewire_common.kafka import (
    batch_consumer_options,
    fetching_paused,
    records_of,
    wait_on_fetches,
)
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber

from casewire_router.adapters.watermarks import WatermarkHeartbeat
from casewire_router.message_service import TRANSIENT_ERRORS, MessageService
from casewire_router.settings import RouterSettings


async def _raw_bodies(message: Any) -> Any:
    """Leave decoding to the handler, so one unreadable record cannot stall its partition."""
    return [record.value for record in records_of(message.raw_message)]


def subscriptions(
    service: MessageService,
    settings: RouterSettings,
    watermarks: Callable[[BatchSubscriber], WatermarkHeartbeat],
) -> tuple[KafkaRouter, dict[str, BatchSubscriber], WatermarkHeartbeat]:
    """The Kafka routes (FastStream's `KafkaRouter`) and their subscribers, by consumer group:
    canonical messages, and SLA alerts (escalation); and the watermark heartbeat that follows
    what the message subscriber processed."""
    routes = KafkaRouter()
    subscriber = routes.subscriber(
        topics.MESSAGES,
        group_id=settings.router_consumer_group,
        decoder=_raw_bodies,
        title="router: canonical messages",
        description="Threads messages into cases, routes and assigns them.",
        batch=True,
        **batch_consumer_options(settings),
    )

    wait_on_fetches(subscriber)
    heartbeat = watermarks(subscriber)

    @subscriber
    async def on_messages(message: KafkaMessage) -> None:
        records = records_of(message.raw_message)
        try:
            with fetching_paused(subscriber.consumer, len(records), settings.consumer_max_records):
                await service.handle_records(records)
        except TRANSIENT_ERRORS:
            await asyncio.sleep(1.0)  # PostgreSQL is away: redeliver after a pause
            raise
        heartbeat.processed(records)

    alerts_group = f"{settings.router_consumer_group}-escalation"
    alerts = routes.subscriber(
        topics.SLA_ALERTS,
        group_id=alerts_group,
        decoder=_raw_bodies,
        title="router: SLA alerts",
        description="Escalates cases on SLA warnings and breaches, as the rules file says.",
        batch=True,
        **batch_consumer_options(settings),
    )

    wait_on_fetches(alerts)

    @alerts
    async def on_alerts(message: KafkaMessage) -> None:
        records = records_of(message.raw_message)
        try:
            with fetching_paused(alerts.consumer, len(records), settings.consumer_max_records):
                await service.handle_alerts(records)
        except TRANSIENT_ERRORS:
            await asyncio.sleep(1.0)
            raise

    return routes, {settings.router_consumer_group: subscriber, alerts_group: alerts}, heartbeat
