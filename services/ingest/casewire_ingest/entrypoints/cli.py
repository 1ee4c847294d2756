"""`casewire-ingest`: serve the webhooks; migrate; `normalize` webhook bodies offline."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from casewire_ingest.domain.normalized import NormalizationError
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
    return _normalize(args.files, args.platform)


def _normalize(files: list[Path], platform: WebhookPlatform | None) -> int:
    """Print each body's canonical messages; report bad bodies and bad items on stderr and
    exit 1."""
    from casewire_ingest.domain.language import LanguageDetector
    from casewire_ingest.settings import IngestSettings

    detector = LanguageDetector(IngestSettings().languages.split(","))
    rejected = 0
    for path in files:
        name = "<stdin>" if str(path) == "-" else str(path)
        try:
            raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
            body = json.loads(raw)
            normalized = normalize(body, datetime.now(UTC), platform)
        except OSError as error:
            print(f"{name}: cannot read: {error.strerror}", file=sys.stderr)
            rejected += 1
            continue
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            print(f"{name}: malformed_json: {error}", file=sys.stderr)
            rejected += 1
            continue
        except NormalizationError as error:
            print(f"{name}: {error.reason}: {error.detail}", file=sys.stderr)
            rejected += 1
            continue
        for message in normalized.messages:
            if message.language is None and message.text:
                message = message.model_copy(update={"language": detector.detect(message.text)})
            sys.stdout.write(message.model_dump_json() + "\n")
        if normalized.ignored:
            kinds = ", ".join(
                f"{kind} ×{count}" for kind, count in sorted(normalized.ignored.items())
            )
            print(f"{name}: acknowledged, not messages: {kinds}", file=sys.stderr)
        for item in normalized.rejected:
            print(f"{name}: {item.where}: {item.reason}: {item.detail}", file=sys.stderr)
        rejected += len(normalized.rejected)
    return 1 if rejected else 0
