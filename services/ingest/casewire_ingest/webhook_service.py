"""Ingest's use case: one verified request body in; the body on `casewire.raw.v1` (and on its
dead-letter topic when some of its items could not be read), then each of its messages on
`casewire.messages.v1` exactly once; an answer only once all is written."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import structlog
from casewire_common import topics
from casewire_common.messages import CanonicalMessage
from casewire_common.thread_control import ThreadControl

from casewire_ingest.adapters.publisher import IngestMetrics
from casewire_ingest.domain.event_time import settle_event_times
from casewire_ingest.domain.json_body import parse_json
from casewire_ingest.domain.normalized import ItemRejection, NormalizationError, Normalized
from casewire_ingest.domain.sources import CALLER_CLOCK_SOURCES, Normalizer, ReadingRules

log = structlog.get_logger(__name__)
# structlog runs every processor before the standard library drops a debug line: this says
# beforehand whether one would be written.
_stdlib_log = logging.getLogger(__name__)

LanguageDetector = Callable[[str], str | None]

# Refusals of a body that is not JSON we read (400); the others are 422.
MALFORMED = frozenset({"malformed_json", "too_deep", "too_many_values"})
# The dead-letter reason of a body published in part: some of its items could not be read.
INVALID_ITEM = "invalid_item"
# The bad items a dead-letter detail names: the place of the first few is enough to find the
# fault, and the detail stays short whatever the body holds.
_LISTED_ITEMS = 20


class IngestPublisher(Protocol):
    """Where accepted bodies and their messages are written (`KafkaIngestPublisher`)."""

    async def publish_raw(self, raw_body: bytes, key: str, headers: dict[str, str]) -> None:
        """Return once Kafka acknowledged the body on `casewire.raw.v1`."""

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
        """Return once Kafka acknowledged every message and thread-control record on
        `casewire.messages.v1`, each message with the header `casewire-integration` when an
        integration sent it, `casewire-time-adjusted: true` when its delivery key is in
        `time_adjusted`, `casewire-standby: true` when in `standby` and `casewire-app-id`
        when in `sending_apps`; each thread-control record with `casewire-record:
        thread_control` (and `casewire-time-adjusted` too, when in `time_adjusted`)."""

    async def dead_letter_raw(
        self, raw_body: bytes, key: str, headers: dict[str, str], reason: str, error: str
    ) -> None:
        """Keep a verified body that could not be normalized on `casewire.raw.v1.dlq`."""


class DedupStore(Protocol):
    """The memory of published messages (`PostgresDedupStore`; `InMemoryDedupStore` in unit
    tests)."""

    def claim(self, keys: Sequence[str]) -> Awaitable[set[str]]:
        """The keys the caller now owns; may start before it is awaited."""
        ...

    def mark_published(self, keys: Sequence[str]) -> None:
        """Queue the keys' mark; it is written in the background."""
        ...

    async def release(self, keys: Sequence[str]) -> None: ...

    def in_flight(self, keys: Sequence[str]) -> Awaitable[set[str]]:
        """Of keys the caller could not claim, those claimed by another request and not yet
        marked published: that request may not have written them, or may have died first."""
        ...

    def abandoned(self, keys: Sequence[str]) -> Awaitable[set[str]]:
        """Keys claimed long ago and never marked published (replay reports them)."""
        ...


class Rejected(Exception):
    """A body refused with a 4xx: `status`, a short `reason` code and a `detail` for the caller."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail


class Unavailable(Exception):
    """The body's messages are not all written: answer 503 so that the platform retries.
    `reason` says why: Kafka or PostgreSQL could not take them (`unavailable`), or another
    request holds some of them and has not written them yet (`in_flight`)."""

    def __init__(
        self, reason: str = "unavailable", detail: str = "message store unavailable, retry later"
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


IN_FLIGHT = "in_flight"


@dataclass(frozen=True)
class Accepted:
    published: list[str]  # the ids of the messages published
    duplicates: int  # messages and thread-control events published before
    ignored: dict[str, int]
    rejected: list[ItemRejection]
    # Replay: of `published`, the messages an ingest that died may have published already.
    unconfirmed: int = 0
    # The ids of the thread-control records published (Meta's handover protocol).
    thread_controls: list[str] = field(default_factory=list)


class WebhookService:
    """Webhook bodies in (`accept`), and kept bodies again (`replay`): their messages out once."""

    def __init__(
        self,
        publisher: IngestPublisher,
        dedup: DedupStore,
        detect_language: LanguageDetector,
        metrics: IngestMetrics,
        *,
        timeout_seconds: float,
        reading: ReadingRules | None = None,
        log_content: bool = False,
    ) -> None:
        self._publisher = publisher
        self._reading = reading or ReadingRules()
        self._dedup = dedup
        self._detect_language = detect_language
        self._metrics = metrics
        self._timeout = timeout_seconds
        self._log_content = log_content

    async def accept(
        self,
        *,
        source: str,
        raw: bytes,
        received_at: datetime,
        normalize: Normalizer,
        accounts: Collection[str] | None = None,
        integration: str | None = None,
    ) -> Accepted:
        """Normalize, check the accounts, then write raw body and new messages to Kafka.

        Items of the body that cannot be read do not cost the others: the body is accepted,
        and also kept on the raw DLQ (reason `invalid_item`) so that a fix can replay it (dedup
        drops what was already published). Only a body with nothing usable is refused.

        `accounts`: the accounts the verifying secret may speak for (None: any).
        `integration`: the generic channel's caller, kept with the body and its messages.
        A body that cannot be normalized is kept on the raw DLQ: it was signed, so it is
        genuine traffic that a fix should be able to replay.
        """
        headers = {
            "content-type": "application/json",
            "casewire-source": source,
            "casewire-received-at": received_at.isoformat(),
        }
        if integration is not None:
            headers[topics.INTEGRATION_HEADER] = integration
        try:
            normalized = read_body(raw, received_at, source, normalize, self._reading)
        except NormalizationError as error:
            self._metrics.rejections.labels(source, error.reason).inc()
            await self._dead_letter(raw, source, headers, error)
            status = 400 if error.reason in MALFORMED else 422
            raise Rejected(status, error.reason, error.detail) from error
        try:
            check_accounts(normalized, accounts)
        except Rejected:
            self._metrics.rejections.labels(source, "unknown_account").inc()
            raise
        for kind, count in normalized.ignored.items():
            self._metrics.ignored.labels(source, kind).inc(count)
        if normalized.time_adjusted:
            self._metrics.time_adjusted.labels(source).inc(len(normalized.time_adjusted))
        messages = normalized.messages
        raw_key = f"{source}:{messages[0].account_id}" if messages else source
        unique = normalized.deliveries(self._detect_language)
        controls = normalized.distinct_thread_controls()
        # The claim goes out while the body is being written: the two round trips overlap.
        # No message is published before both are done.
        claiming = asyncio.ensure_future(self._dedup.claim([*unique, *controls]))
        fresh: list[CanonicalMessage] = []
        fresh_controls: list[ThreadControl] = []
        claimed: set[str] = set()
        body_written = False
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                await self._publisher.publish_raw(raw, raw_key, headers)
                if normalized.rejected:
                    await self._publisher.dead_letter_raw(
                        raw,
                        source,
                        headers,
                        INVALID_ITEM,
                        _invalid_item_detail(normalized.rejected),
                    )
                # Shielded: a timeout must not cancel a claim that may already hold keys.
                claimed = await asyncio.shield(claiming)
                body_written = True
                fresh = [message for key, message in unique.items() if key in claimed]
                fresh_controls = [c for key, c in controls.items() if key in claimed]
                await self._publisher.publish_messages(
                    fresh,
                    integration=integration,
                    time_adjusted=normalized.time_adjusted,
                    standby=normalized.standby,
                    sending_apps=normalized.sending_apps,
                    thread_controls=fresh_controls,
                )
                self._metrics.publish_seconds.observe(time.perf_counter() - started)
                self._dedup.mark_published(_keys(fresh, fresh_controls))
        except Exception as error:
            if body_written:
                log.warning("message write failed", source=source, error=type(error).__name__)
                await self._release(_keys(fresh, fresh_controls), source)
            else:
                log.warning("raw write failed", source=source, error=type(error).__name__)
                await self._give_up(claiming, source)
            raise Unavailable from error
        # Answered 200, a body whose messages another request claimed but has not written
        # would be retried no more, and if that request died first (its ingest killed between
        # claim and write) they would be lost until a replay: the platform retries instead,
        # and its retry finds them published, or their claim expired and publishes them.
        taken = [key for key in (*unique, *controls) if key not in claimed]
        if taken and await self._in_flight(taken, source):
            raise Unavailable(
                IN_FLIGHT, "some messages of this body are still being written; retry later"
            )
        if integration is not None:
            self._metrics.integration_messages.labels(integration).inc(len(fresh))
        duplicates = len(messages) + len(normalized.thread_controls)
        duplicates -= len(fresh) + len(fresh_controls)
        if duplicates:
            self._metrics.duplicates.labels(source).inc(duplicates)
        if normalized.rejected:
            self._metrics.rejections.labels(source, INVALID_ITEM).inc()
        if _stdlib_log.isEnabledFor(logging.DEBUG):
            # Message text and names are personal data: logged only when debugging is on.
            content = (
                {"messages": [m.model_dump(mode="json") for m in fresh]}
                if self._log_content
                else {}
            )
            log.debug(
                "body accepted",
                source=source,
                published=len(fresh),
                duplicates=duplicates,
                ignored=sum(normalized.ignored.values()),
                rejected=len(normalized.rejected),
                **content,
            )
        return Accepted(
            [m.id for m in fresh],
            duplicates,
            dict(normalized.ignored),
            normalized.rejected,
            thread_controls=[c.id for c in fresh_controls],
        )

    async def replay(
        self,
        *,
        raw: bytes,
        received_at: datetime,
        source: str,
        normalize: Normalizer,
        accounts: Collection[str] | None = None,
        integration: str | None = None,
    ) -> Accepted:
        """Publish the messages of a body kept on the raw topics that were never published.

        The body is normalized by the current code as it was when received (`received_at`
        from its record) and nothing is written to the raw topics again: the body is already
        kept there. Raises NormalizationError or Rejected (unknown_account) for a body the
        current code still refuses, Unavailable when Kafka or PostgreSQL fails."""
        normalized = read_body(raw, received_at, source, normalize, self._reading)
        check_accounts(normalized, accounts)
        deliveries = normalized.deliveries(self._detect_language)
        controls = normalized.distinct_thread_controls()
        keys = [*deliveries, *controls]
        try:
            abandoned = await self._dedup.abandoned(keys)
            claimed = await self._dedup.claim(keys)
        except Exception as error:
            log.warning("replay claim failed", error=type(error).__name__)
            raise Unavailable from error
        fresh = [message for key, message in deliveries.items() if key in claimed]
        fresh_controls = [control for key, control in controls.items() if key in claimed]
        try:
            async with asyncio.timeout(self._timeout):
                await self._publisher.publish_messages(
                    fresh,
                    integration=integration,
                    time_adjusted=normalized.time_adjusted,
                    standby=normalized.standby,
                    sending_apps=normalized.sending_apps,
                    thread_controls=fresh_controls,
                )
        except Exception as error:
            log.warning("replay write failed", error=type(error).__name__)
            await self._release(_keys(fresh, fresh_controls), "replay")
            raise Unavailable from error
        self._dedup.mark_published(_keys(fresh, fresh_controls))
        return Accepted(
            [m.id for m in fresh],
            len(normalized.messages)
            + len(normalized.thread_controls)
            - len(fresh)
            - len(fresh_controls),
            dict(normalized.ignored),
            normalized.rejected,
            unconfirmed=len(abandoned & claimed),
            thread_controls=[c.id for c in fresh_controls],
        )

    async def _in_flight(self, keys: list[str], source: str) -> set[str]:
        try:
            return await self._dedup.in_flight(keys)
        except Exception as error:
            log.warning("in-flight check failed", source=source, error=type(error).__name__)
            raise Unavailable from error

    async def _give_up(self, claiming: asyncio.Future[set[str]], source: str) -> None:
        """Release what a claim took once it is done (the body was not written): cancelling
        it could leave keys claimed that no request will publish until the claim expires."""
        try:
            async with asyncio.timeout(self._timeout):
                claimed = await asyncio.shield(claiming)
        except Exception:
            return  # the claim failed: nothing taken (or it expires)
        await self._release(list(claimed), source)

    async def _release(self, keys: list[str], source: str) -> None:
        try:
            await self._dedup.release(keys)
        except Exception:
            log.warning("could not release claims; they expire", source=source)

    async def _dead_letter(
        self, raw: bytes, source: str, headers: dict[str, str], error: NormalizationError
    ) -> None:
        try:
            await self._publisher.dead_letter_raw(raw, source, headers, error.reason, error.detail)
        except Exception as publish_error:
            # The caller still gets its 4xx; the platform keeps the body and we logged why.
            log.error(
                "could not dead-letter a rejected body",
                source=source,
                reason=error.reason,
                error=type(publish_error).__name__,
            )


def read_body(
    raw: bytes,
    received_at: datetime,
    source: str,
    normalize: Normalizer,
    reading: ReadingRules,
) -> Normalized:
    """A body's normalized content, its times settled; NormalizationError when the body as a
    whole is refused.

    A normalizer that fails on input its author did not foresee is a bug, but the caller
    still gets a 4xx with a reason (`unreadable_body`) and, when signed, the body is kept on
    the raw DLQ to be replayed once fixed; a 5xx would have the platform resend it for hours."""
    document = parse_json(raw, reading.json)
    try:
        normalized = _usable(normalize(document, received_at))
    except NormalizationError:
        raise
    except Exception as error:
        log.exception("normalizer failed on a body", source=source)
        raise NormalizationError(
            "unreadable_body", f"the body could not be read ({type(error).__name__})"
        ) from error
    return settle_event_times(
        normalized, reading.max_clock_skew, refuse=source in CALLER_CLOCK_SOURCES
    )


def check_accounts(normalized: Normalized, accounts: Collection[str] | None) -> None:
    """Refuse (403 unknown_account) messages for accounts the verifying secret does not speak
    for (`accounts` None: any)."""
    if not accounts:
        return
    named = [m.account_id for m in normalized.messages]
    named += [c.account_id for c in normalized.thread_controls]
    foreign = sorted({account for account in named if account not in accounts})
    if foreign:
        raise Rejected(403, "unknown_account", f"no configured account {', '.join(foreign)}")


def _usable(normalized: Normalized) -> Normalized:
    """The body's outcome, unless its items were all rejected and nothing else was in it: then
    the body is refused, by its first item's reason, as a body that cannot be normalized."""
    usable = normalized.messages or normalized.thread_controls or normalized.ignored
    if normalized.rejected and not usable:
        first = normalized.rejected[0]
        raise NormalizationError(first.reason, first.detail)
    return normalized


def _keys(messages: Sequence[CanonicalMessage], controls: Sequence[ThreadControl]) -> list[str]:
    """The delivery keys of what one body publishes: its messages and thread-control events."""
    return [m.delivery_key for m in messages] + [c.delivery_key for c in controls]


def _invalid_item_detail(rejected: Sequence[ItemRejection]) -> str:
    """The dead-letter detail of a body published in part: how many items were rejected, and
    the place and reason of each (the first `_LISTED_ITEMS` of them)."""
    listed = "; ".join(f"{item.where}: {item.reason}" for item in rejected[:_LISTED_ITEMS])
    more = len(rejected) - _LISTED_ITEMS
    return f"{len(rejected)} item(s) rejected: {listed}" + (f"; {more} more" if more > 0 else "")
