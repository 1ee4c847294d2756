"""Ingest's replay: bodies kept on the raw topics normalized again by the current code, and
what was never published published now (after a fix, or to prove a run lost nothing).
Deduplication drops everything that was published before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Collection, Mapping
from datetime import datetime

import structlog

from casewire_ingest.domain.archive import (
    KeptBody,
    Replayable,
    ReplaySummary,
    TimeRange,
    Unreplayable,
    replayable,
)
from casewire_ingest.domain.normalized import NormalizationError
from casewire_ingest.domain.sources import SOURCE_NORMALIZERS, Source
from casewire_ingest.webhook_service import Rejected, WebhookService

log = structlog.get_logger(__name__)


# Bodies replayed at once: their claims share one PostgreSQL statement and their messages
# one produce request (the group commits), where one at a time would wait two round trips per
# body. Within a window, a message in two bodies goes to the first (the claim's order).
REPLAY_WINDOW = 200


async def replay_kept_bodies(
    records: AsyncIterable[KeptBody],
    ingest: WebhookService,
    summary: ReplaySummary,
    *,
    received: TimeRange,
    oldest_remembered: datetime,
    accounts: Mapping[Source, Collection[str] | None],
    window: int = REPLAY_WINDOW,
) -> ReplaySummary:
    """Replay every record received in `received`, counting into `summary`.

    `accounts`: per source, the accounts its secrets may speak for (None: any), as the
    endpoints check them. Raises Unavailable when Kafka or PostgreSQL fails: what was counted
    so far was done."""
    pending: list[tuple[KeptBody, Replayable]] = []
    async for record in records:
        summary.read += 1
        try:
            kept = replayable(record, received, oldest_remembered)
        except Unreplayable as refusal:
            log.warning("record not replayable", reason=refusal.reason, detail=refusal.detail)
            summary.count(summary.refused, refusal.reason)
            continue
        if kept is None:
            summary.outside_range += 1
            continue
        pending.append((record, kept))
        if len(pending) >= window:
            await _replay_window(pending, ingest, summary, accounts)
            pending = []
    await _replay_window(pending, ingest, summary, accounts)
    return summary


async def _replay_window(
    window: list[tuple[KeptBody, Replayable]],
    ingest: WebhookService,
    summary: ReplaySummary,
    accounts: Mapping[Source, Collection[str] | None],
) -> None:
    outcomes = await asyncio.gather(
        *(
            ingest.replay(
                raw=record.body,
                received_at=kept.received_at,
                source=kept.source,
                normalize=SOURCE_NORMALIZERS[kept.source],
                accounts=accounts.get(kept.source),
                integration=kept.integration,
            )
            for record, kept in window
        ),
        return_exceptions=True,
    )
    failure: BaseException | None = None
    for outcome in outcomes:
        if isinstance(outcome, NormalizationError | Rejected):
            summary.bodies_replayed += 1
            summary.count(summary.rejected, outcome.reason)
        elif isinstance(outcome, BaseException):
            failure = failure or outcome
        else:
            summary.bodies_replayed += 1
            summary.published += len(outcome.published)
            summary.thread_controls += len(outcome.thread_controls)
            summary.unconfirmed += outcome.unconfirmed
            summary.duplicates += outcome.duplicates
            for kind, times in outcome.ignored.items():
                summary.count(summary.ignored, kind, times)
            for item in outcome.rejected:
                summary.count(summary.rejected, item.reason)
    if failure is not None:
        raise failure
