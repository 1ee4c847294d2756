"""`casewire-ingest`: serve the webhooks; migrate; `normalize` webhook bodies offline; `replay`
kept bodies with the current code."""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casewire_common import topics

from casewire_ingest.domain.archive import ReplaySummary, TimeRange
from casewire_ingest.domain.normalized import NormalizationError, Normalized
from casewire_ingest.domain.platforms import WEBHOOK_PLATFORMS, WebhookPlatform, normalize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="casewire-ingest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP service (settings from CASEWIRE_* env)")
    commands.add_parser("migrate", help="apply pending database migrations")
    offline = commands.add_parser(
        "normalize", help="webhook bodies in, canonical messages out (JSON lines), no Kafka"
    )
    offline.add_argument("--platform", choices=WEBHOOK_PLATFORMS, help="default: from the body")
    offline.add_argument("files", nargs="+", type=Path, help="webhook bodies (JSON), or - (stdin)")
    replay = commands.add_parser(
        "replay",
        help=f"normalize the bodies kept on {topics.RAW} (or its DLQ) again and publish what"
        " was never published (settings from CASEWIRE_* env)",
        description=f"Normalize the bodies kept on {topics.RAW} (received in [--since,"
        f" --until)) or on {topics.dlq(topics.RAW)} again with the current code and publish"
        " the messages deduplication has not seen. Exit 0: every record replayed, nothing"
        " rejected; 1: done, but records"
        " were refused or bodies/items rejected (see the summary); 2: bad arguments;"
        " 3: stopped before the end (Kafka or PostgreSQL unavailable, topic missing,"
        " migrations pending, the broker silent for --idle-seconds).",
    )
    replay.add_argument("--dlq", action="store_true", help=f"read {topics.dlq(topics.RAW)}")
    replay.add_argument("--since", type=_instant, help="received at or after (RFC 3339)")
    replay.add_argument("--until", type=_instant, help="received before (RFC 3339)")
    replay.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    replay.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="give up when the broker sends nothing for this long (default 10)",
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        from casewire_common.http import serve

        from casewire_ingest.main import create_app
        from casewire_ingest.settings import IngestSettings

        settings = IngestSettings()
        serve(create_app(settings), settings.http_host, settings.http_port)
        return 0
    if args.command == "migrate":
        from casewire_common.pg import migrate

        from casewire_ingest.adapters.dedup import MIGRATIONS_PACKAGE, SCHEMA
        from casewire_ingest.settings import IngestSettings

        url = IngestSettings().database_url.get_secret_value()
        applied = asyncio.run(migrate(url, SCHEMA, MIGRATIONS_PACKAGE))
        print(
            f"ingest: {len(applied)} migration(s) applied"
            + (f": {', '.join(applied)}" if applied else "")
        )
        return 0
    if args.command == "replay":
        return _replay(args)
    return _normalize(args.files, args.platform)


def _instant(text: str) -> datetime:
    """An RFC 3339 instant with its offset (a local time without one is ambiguous)."""
    try:
        instant = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 instant") from error
    if instant.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset (write Z or +hh:mm)")
    return instant.astimezone(UTC)


# Exit codes of `replay`, for the programs that run it.
REPLAY_CLEAN, REPLAY_WITH_REFUSALS, REPLAY_STOPPED = 0, 1, 3


def _replay(args: argparse.Namespace) -> int:
    """Replay a raw topic and print its summary; the exit code says how it went."""
    from aiokafka.errors import KafkaError
    from asyncpg import PostgresError
    from casewire_common.logging import configure_logging

    from casewire_ingest.adapters.dedup import NotMigrated
    from casewire_ingest.adapters.raw_archive import RawTopicReader, TopicMissing
    from casewire_ingest.main import oldest_remembered, replay_accounts, replay_ingest
    from casewire_ingest.replay_service import replay_kept_bodies
    from casewire_ingest.settings import IngestSettings
    from casewire_ingest.webhook_service import Unavailable

    settings = IngestSettings()
    configure_logging(settings.log_level)
    for handler in logging.getLogger().handlers:  # stdout is the summary's
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    topic = topics.dlq(topics.RAW) if args.dlq else topics.RAW
    summary = ReplaySummary(topic)
    reader = RawTopicReader(
        settings.kafka_bootstrap_servers, topic, since=args.since, idle_seconds=args.idle_seconds
    )

    async def run() -> None:
        async with replay_ingest(settings) as ingest:
            await replay_kept_bodies(
                reader.records(),
                ingest,
                summary,
                received=TimeRange(args.since, args.until),
                oldest_remembered=oldest_remembered(settings),
                accounts=replay_accounts(settings),
            )

    stopped_by = None
    try:
        asyncio.run(run())
    except (Unavailable, TopicMissing, NotMigrated, KafkaError, OSError, PostgresError) as error:
        stopped_by = str(error) or type(error).__name__
    summary.complete = reader.complete and stopped_by is None
    if stopped_by is None and not reader.complete:
        stopped_by = f"the broker sent nothing for {args.idle_seconds:g} s before the topic's end"
    _print_summary(summary, stopped_by, as_json=args.json)
    if not summary.complete:
        return REPLAY_STOPPED
    return REPLAY_CLEAN if summary.clean else REPLAY_WITH_REFUSALS


def _print_summary(summary: ReplaySummary, stopped_by: str | None, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(dataclasses.asdict(summary) | {"stopped_by": stopped_by}))
        return
    print(
        f"{summary.topic}: {summary.read} record(s) read, {summary.outside_range} outside the"
        f" range, {summary.bodies_replayed} body(ies) replayed:"
        f" {summary.published} message(s) published, {summary.duplicates} duplicate(s)"
        + (
            f", {summary.thread_controls} thread-control record(s) published"
            if summary.thread_controls
            else ""
        )
    )
    if summary.unconfirmed:
        print(
            f"of those published, {summary.unconfirmed} had been claimed by an ingest that"
            " never marked them: it may have published them before it died"
        )
    for title, table in (
        ("acknowledged, not messages", summary.ignored),
        ("refused (cannot be replayed)", summary.refused),
        ("rejected by the current code", summary.rejected),
    ):
        if table:
            counts = ", ".join(f"{reason} ×{count}" for reason, count in sorted(table.items()))
            print(f"{title}: {counts}")
    if stopped_by is not None:
        print(f"stopped before the end: {stopped_by}")


def _normalize(files: list[Path], platform: WebhookPlatform | None) -> int:
    """Print each body's canonical messages, read as the service reads them (same limits,
    same times); report bad bodies and bad items on stderr and exit 1."""
    from casewire_ingest.domain.language import LanguageDetector
    from casewire_ingest.main import reading_rules
    from casewire_ingest.settings import IngestSettings
    from casewire_ingest.webhook_service import read_body

    settings = IngestSettings()
    detector = LanguageDetector(settings.languages.split(","))
    reading = reading_rules(settings)

    def normalize_as_sent(document: Any, received_at: datetime) -> Normalized:
        return normalize(document, received_at, platform)

    rejected = 0
    for path in files:
        name = "<stdin>" if str(path) == "-" else str(path)
        try:
            raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
            normalized = read_body(
                raw, datetime.now(UTC), platform or "webhook", normalize_as_sent, reading
            )
        except OSError as error:
            print(f"{name}: cannot read: {error.strerror}", file=sys.stderr)
            rejected += 1
            continue
        except NormalizationError as error:
            print(f"{name}: {error.reason}: {error.detail}", file=sys.stderr)
            rejected += 1
            continue
        for message in normalized.deliveries(detector.detect).values():
            sys.stdout.write(message.model_dump_json() + "\n")
        controls = normalized.distinct_thread_controls()
        if controls:
            # Not canonical messages (stdout stays one, for `casewire-router route`): said here.
            actions = collections.Counter(control.action for control in controls.values())
            listed = ", ".join(f"{action} ×{count}" for action, count in sorted(actions.items()))
            print(f"{name}: thread-control records (handover): {listed}", file=sys.stderr)
        if normalized.ignored:
            kinds = ", ".join(
                f"{kind} ×{count}" for kind, count in sorted(normalized.ignored.items())
            )
            print(f"{name}: acknowledged, not messages: {kinds}", file=sys.stderr)
        for item in normalized.rejected:
            print(f"{name}: {item.where}: {item.reason}: {item.detail}", file=sys.stderr)
        rejected += len(normalized.rejected)
    return 1 if rejected else 0
