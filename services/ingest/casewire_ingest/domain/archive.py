"""Bodies kept on `casewire.raw.v1` and `casewire.raw.v1.dlq`, as a replay reads them.

Ingest writes a body there only after verifying its signature, with the headers
`casewire-source` (the endpoint: its normalizer and the secrets that signed it),
`casewire-received-at` (when it was accepted: the body is normalized as of then, so a replay
builds the very messages the first pass would have) and, from the generic channel,
`casewire-integration` (the integration whose key signed it). A record without them cannot be
replayed; neither can one older than ingest's deduplication memory, which could no longer say
whether its messages were published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import cast, get_args

from casewire_common.topics import INTEGRATION_HEADER

from casewire_ingest.domain.sources import Source

SOURCE_HEADER = "casewire-source"
RECEIVED_AT_HEADER = "casewire-received-at"
_SOURCES = frozenset(get_args(Source))


@dataclass(frozen=True)
class KeptBody:
    """One record of a raw topic: where it is, its headers and the body as received."""

    topic: str
    partition: int
    offset: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Replayable:
    source: Source
    received_at: datetime
    integration: str | None = None


class Unreplayable(Exception):
    """A kept record a replay must refuse; `reason` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class TimeRange:
    """The bodies a replay takes, by when ingest received them: `since` <= t < `until`."""

    since: datetime | None = None
    until: datetime | None = None

    def __contains__(self, instant: datetime) -> bool:
        return (self.since is None or instant >= self.since) and (
            self.until is None or instant < self.until
        )


def replayable(
    record: KeptBody, received: TimeRange, oldest_remembered: datetime
) -> Replayable | None:
    """What a replay needs to know of a record; None when it was received outside the range;
    Unreplayable when the record lacks it or is older than the deduplication memory
    (`oldest_remembered`)."""
    place = f"{record.topic}/{record.partition}/{record.offset}"
    source = record.headers.get(SOURCE_HEADER)
    if source is None:
        raise Unreplayable("no_source", f"{place} has no {SOURCE_HEADER} header")
    if source not in _SOURCES:
        raise Unreplayable("unknown_source", f"{place}: {SOURCE_HEADER} {source!r} is no endpoint")
    stamp = record.headers.get(RECEIVED_AT_HEADER)
    if stamp is None:
        raise Unreplayable("no_received_at", f"{place} has no {RECEIVED_AT_HEADER} header")
    try:
        received_at = datetime.fromisoformat(stamp)
    except ValueError:
        received_at = None
    if received_at is None or received_at.tzinfo is None:
        raise Unreplayable(
            "bad_received_at", f"{place}: {RECEIVED_AT_HEADER} {stamp!r} is no aware instant"
        )
    if received_at not in received:
        return None
    if received_at < oldest_remembered:
        raise Unreplayable(
            "forgotten",
            f"{place} was received at {stamp}, before the deduplication memory"
            f" ({oldest_remembered.isoformat()}): replaying it could publish messages again",
        )
    return Replayable(cast(Source, source), received_at, record.headers.get(INTEGRATION_HEADER))


@dataclass
class ReplaySummary:
    """What a replay did: records read, messages published, the rest by kind and reason."""

    topic: str
    read: int = 0
    outside_range: int = 0
    bodies_replayed: int = 0
    published: int = 0
    # Of `published`: messages whose earlier claim expired unmarked. An ingest that died
    # between publishing and marking them may have published them already (a consumer drops
    # them by id); the others were lost and are published now.
    unconfirmed: int = 0
    duplicates: int = 0
    # Thread-control records (Meta's handover events) published.
    thread_controls: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    complete: bool = True

    def count(self, table: dict[str, int], reason: str, times: int = 1) -> None:
        table[reason] = table.get(reason, 0) + times

    @property
    def clean(self) -> bool:
        """Every record read in range was replayed and nothing in it was rejected."""
        return self.complete and not self.refused and not self.rejected
