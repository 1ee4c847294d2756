"""The case-event consumer: `casewire.case-events.v1` in, clock changes and alerts out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from casewire_common import topics
from casewire_common.events import ROUTER_WATERMARK, CaseEventData, WatermarkData, decode_event
from casewire_common.kafka import (
    DeadLetters,
    batch_consumer_options,
    fetching_paused,
    records_of,
    wait_on_fetches,
)
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from pydantic import ValidationError

from casewire_sla.adapters.metrics import SlaMetrics
from casewire_sla.clock_service import ClockService, CommittedChanges, IncomingCaseEvent
from casewire_sla.domain.clocks import HANDLED_TYPES
from casewire_sla.domain.holding import WatermarkHold
from casewire_sla.entrypoints.scheduler import TimerScheduler
from casewire_sla.settings import SlaSettings

log = structlog.get_logger(__name__)

Rejected = tuple[ConsumerRecord[bytes, bytes], str, str]
# The reasons case events are dead-lettered for (their series start at 0).
DEAD_LETTER_REASONS = {
    topics.CASE_EVENTS: (
        "not_a_cloudevent",
        "invalid_watermark",
        "invalid_case_event",
        "unprocessable_case_event",
    ),
}


def decode_case_event(record: ConsumerRecord[bytes, bytes]) -> IncomingCaseEvent | Rejected:
    """A case event, or the record with the reason it cannot be processed."""
    try:
        event = decode_event(record.headers, record.value or b"", record.key)
    except ValueError as error:
        return record, "not_a_cloudevent", str(error)
    if event.type == ROUTER_WATERMARK:
        try:
            mark = WatermarkData.model_validate(event.data)
        except ValidationError as error:
            return record, "invalid_watermark", str(error)
        return IncomingCaseEvent(event.id, event.type, None, event.time, mark, record.partition)
    if event.type not in HANDLED_TYPES:
        return IncomingCaseEvent(event.id, event.type, None)
    try:
        data = CaseEventData.model_validate(event.data)
    except ValidationError as error:
        return record, "invalid_case_event", str(error)
    return IncomingCaseEvent(event.id, event.type, data, event.time)


def subscriptions(
    settings: SlaSettings,
    service: ClockService,
    scheduler: TimerScheduler,
    dead_letters: DeadLetters,
    metrics: SlaMetrics,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    hold: Callable[[], WatermarkHold | None] = lambda: None,
) -> tuple[KafkaRouter, BatchSubscriber]:
    """The subscriber of case events; a failed batch is not acknowledged and is read again.
    `hold` is how alerts wait for the router's watermark (as the timer scheduler's)."""
    routes = KafkaRouter()
    subscriber = routes.subscriber(
        topics.CASE_EVENTS,
        group_id=settings.sla_consumer_group,
        batch=True,
        **(
            batch_consumer_options(settings)
            | {
                "fetch_min_bytes": settings.sla_fetch_min_bytes,
                "fetch_max_wait_ms": settings.sla_fetch_max_wait_ms,
            }
        ),
    )

    wait_on_fetches(subscriber)

    async def apply_each(
        accepted: list[tuple[ConsumerRecord[bytes, bytes], IncomingCaseEvent]],
        rejected: list[Rejected],
    ) -> None:
        """One transaction per event, so that one unstorable event cannot block the rest."""
        for record, event in accepted:
            try:
                outcome = await service.apply_case_events([event], now(), hold())
            except (asyncpg.DataError, ValueError) as error:
                rejected.append(
                    (record, "unprocessable_case_event", f"{type(error).__name__}: {error}")
                )
                continue
            applied(outcome)

    def applied(outcome: CommittedChanges) -> None:
        metrics.record_batch(outcome)
        if outcome.earliest_timer is not None:
            scheduler.timer_added(outcome.earliest_timer)
        if outcome.watermarks:
            scheduler.watermark_advanced()

    @subscriber
    async def on_case_events(message: KafkaMessage) -> None:
        records = records_of(message.raw_message)
        with fetching_paused(subscriber.consumer, len(records), settings.consumer_max_records):
            await apply_batch(records)

    async def apply_batch(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        accepted: list[tuple[ConsumerRecord[bytes, bytes], IncomingCaseEvent]] = []
        rejected: list[Rejected] = []
        for record in records:
            decoded = decode_case_event(record)
            if isinstance(decoded, IncomingCaseEvent):
                accepted.append((record, decoded))
            else:
                rejected.append(decoded)
        # Clock changes, their alerts and the processed markers commit together; a crash
        # before the offset commit redelivers the batch, which then changes nothing. Any
        # other error (PostgreSQL unreachable) fails the batch: it is read again.
        try:
            applied(await service.apply_case_events([e for _, e in accepted], now(), hold()))
        except (asyncpg.DataError, ValueError):
            # Data PostgreSQL refuses (e.g. a NUL character): find which event, keep the rest.
            await apply_each(accepted, rejected)
        if rejected:
            await dead_letters.send_many(rejected)
            metrics.case_events.labels("dead_lettered").inc(len(rejected))
        log.debug(
            "case events read",
            events=len(accepted),
            dead_lettered=len(rejected),
        )

    return routes, subscriber
