"""Writes accepted bodies and their canonical messages to Kafka, and answers only once written."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import get_args

from casewire_common import topics
from casewire_common.kafka import KafkaRecord, dead_letter_counter
from casewire_common.messages import CanonicalMessage, Channel, Direction, MessageEvent, Platform
from casewire_common.metrics import precreate
from casewire_common.thread_control import THREAD_CONTROL_RECORD, ThreadControl, ThreadControlAction
from prometheus_client import CollectorRegistry, Counter, Histogram

from casewire_ingest.adapters.group_commit import GroupCommit

# Writes records and returns once Kafka acknowledged all of them, in order per key
# (`casewire_common.kafka.OrderedPublisher`).
SendRecords = Callable[[Sequence[KafkaRecord]], Awaitable[None]]

_JSON = [("content-type", b"application/json")]
_TIME_ADJUSTED = (topics.TIME_ADJUSTED_HEADER, b"true")
_STANDBY = (topics.STANDBY_HEADER, b"true")
_THREAD_CONTROL = (topics.RECORD_HEADER, THREAD_CONTROL_RECORD.encode())


# The label values ingest's counters take, created at 0 at start (casewire_common.metrics.precreate;
# docs/operations/metrics-catalog.yaml lists the same, tests/unit/ops holds them together).
SOURCES = ("x", "meta", "whatsapp", "generic")
PLATFORM_SOURCES = ("x", "meta", "whatsapp")  # the sources whose times may be adjusted
# Why a body cannot be read (NormalizationError reasons): refusals and raw dead letters.
NORMALIZATION_REASONS = (
    "malformed_json",
    "too_deep",
    "too_many_values",
    "not_an_object",
    "missing_field",
    "invalid_field",
    "invalid_id",
    "invalid_timestamp",
    "impossible_timestamp",
    "implausible_sent_at",
    "invalid_message",
    "unknown_object",
    "wrong_object",
    "unknown_platform",
    "wrong_platform",
    "no_entries",
    "unreadable_body",
    "invalid_item",
)
# Refusals before a body is read: its sender, its size, the message store.
CALLER_REASONS = (
    "unknown_account",
    "unknown_app",
    "missing_signature",
    "missing_credentials",
    "bad_authorization",
    "unknown_integration",
    "unknown_token",
    "bad_signature",
    "bad_verify_token",
    "too_large",
    "unavailable",
    "in_flight",
)
REJECTION_REASONS = NORMALIZATION_REASONS + CALLER_REASONS


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry, integrations: Collection[str] = ()) -> None:
        """`integrations`: the names of CASEWIRE_INTEGRATIONS, whose series start at 0."""
        self.messages = Counter(
            "casewire_ingest_messages_total",
            "Canonical messages published, by platform, channel, direction and event.",
            ["platform", "channel", "direction", "event"],
            registry=registry,
        )
        self.ignored = Counter(
            "casewire_ingest_ignored_events_total",
            "Webhook events acknowledged but not messages (reactions, receipts, typing...).",
            ["platform", "kind"],
            registry=registry,
        )
        self.duplicates = Counter(
            "casewire_ingest_duplicates_total",
            "Messages not published again because they were published before.",
            ["platform"],
            registry=registry,
        )
        self.rejections = Counter(
            "casewire_ingest_rejections_total",
            "Request bodies rejected, by source and reason (invalid_item: a body accepted"
            " without the items it could not read).",
            # Not `endpoint`: a target label of that name (the PodMonitor's) would overwrite it.
            ["source", "reason"],
            registry=registry,
        )
        self.time_adjusted = Counter(
            "casewire_ingest_time_adjusted_total",
            "Messages whose platform time was implausible (in the future beyond the allowed"
            " skew, or before the platform existed), published with the receipt time instead.",
            # Not `endpoint`: a target label of that name (the PodMonitor's) would overwrite it.
            ["source"],
            registry=registry,
        )
        self.thread_controls = Counter(
            "casewire_ingest_thread_controls_total",
            "Handover events (Meta's pass, take and request of thread control) published as"
            " thread-control records, by platform and action.",
            ["platform", "action"],
            registry=registry,
        )
        self.integration_messages = Counter(
            "casewire_ingest_integration_messages_total",
            "Messages published from the generic channel, by the integration that sent them.",
            ["integration"],
            registry=registry,
        )
        self.dead_letters = dead_letter_counter(registry)
        self.publish_seconds = Histogram(
            "casewire_ingest_publish_seconds",
            "Time to write one accepted body and its messages to Kafka (acknowledged).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        precreate(
            self.messages,
            itertools.product(
                get_args(Platform), get_args(Channel), get_args(Direction), get_args(MessageEvent)
            ),
        )
        precreate(
            self.thread_controls,
            itertools.product(("facebook", "instagram"), get_args(ThreadControlAction)),
        )
        precreate(self.duplicates, [(source,) for source in SOURCES])
        precreate(self.rejections, itertools.product(SOURCES, REJECTION_REASONS))
        precreate(self.time_adjusted, [(source,) for source in PLATFORM_SOURCES])
        precreate(self.integration_messages, [(name,) for name in integrations])
        precreate(
            self.dead_letters, [("ingest", topics.RAW, reason) for reason in NORMALIZATION_REASONS]
        )


class KafkaIngestPublisher:
    """Ingest's publisher (`webhook_service.IngestPublisher`) on Kafka. The records of
    concurrent requests leave together (group commit): one produce request carries one
    record batch per partition for all of them, where a send per record costs more than the
    rest of a request."""

    def __init__(self, send: SendRecords, metrics: IngestMetrics) -> None:
        self._send = send
        self._metrics = metrics
        # One produce in the air: what arrives meanwhile leaves in the next, larger one. Each
        # produce request costs ingest and the broker far more than a record in it; measured
        # (`make bench`): 2,630 req/s with two in the air, 2,890-3,010 with one, and no
        # change in the answer time at 200 req/s (few requests there find a write in the air).
        self._writes: GroupCommit[Sequence[KafkaRecord], None] = GroupCommit(
            self._write_groups, max_writes=1
        )

    async def _write_groups(self, requests: Sequence[Sequence[KafkaRecord]]) -> list[None]:
        await self._send([record for records in requests for record in records])
        return [None] * len(requests)

    async def publish_raw(self, raw_body: bytes, key: str, headers: dict[str, str]) -> None:
        await self._writes.submit(
            [KafkaRecord(topics.RAW, key.encode(), _encode(headers), raw_body)]
        )

    async def publish_messages(
        self,
        messages: Sequence[CanonicalMessage],
        *,
        integration: str | None = None,
        time_adjusted: Collection[str] = (),
        standby: Collection[str] = (),
        sending_apps: Mapping[str, str] | None = None,
        thread_controls: Sequence[ThreadControl] = (),
    ) -> None:
        if not messages and not thread_controls:
            return
        headers = _JSON
        if integration is not None:
            headers = [*_JSON, (topics.INTEGRATION_HEADER, integration.encode())]
        adjusted = [*headers, _TIME_ADJUSTED]
        apps = sending_apps or {}
        records = []
        for message in messages:
            key = message.delivery_key
            marked = adjusted if key in time_adjusted else headers
            if key in standby:
                marked = [*marked, _STANDBY]
            if key in apps:
                marked = [*marked, (topics.APP_ID_HEADER, apps[key].encode())]
            records.append(
                KafkaRecord(
                    topics.MESSAGES,
                    message.conversation_id.encode(),
                    marked,
                    message.model_dump_json().encode(),
                )
            )
        records += [
            KafkaRecord(
                topics.MESSAGES,
                control.conversation_id.encode(),
                [*_JSON, _THREAD_CONTROL]
                + ([_TIME_ADJUSTED] if control.delivery_key in time_adjusted else []),
                control.model_dump_json().encode(),
            )
            for control in thread_controls
        ]
        await self._writes.submit(records)
        for message in messages:
            self._metrics.messages.labels(
                message.platform, message.channel, message.direction, message.event
            ).inc()
        for control in thread_controls:
            self._metrics.thread_controls.labels(control.platform, control.action).inc()

    async def dead_letter_raw(
        self, raw_body: bytes, key: str, headers: dict[str, str], reason: str, error: str
    ) -> None:
        dead_letter_headers = {
            **headers,
            topics.DLQ_REASON_HEADER: reason,
            topics.DLQ_ERROR_HEADER: error[:1000],
            topics.DLQ_SOURCE_HEADER: headers.get("casewire-source", "ingest"),
        }
        await self._writes.submit(
            [
                KafkaRecord(
                    topics.dlq(topics.RAW), key.encode(), _encode(dead_letter_headers), raw_body
                )
            ]
        )
        self._metrics.dead_letters.labels("ingest", topics.RAW, reason).inc()


def _encode(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in headers.items()]
