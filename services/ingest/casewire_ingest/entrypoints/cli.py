"""`casewire-ingest`: serve the webhooks."""

from __future__ import annotations

import argparse

from casewire_common.http import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="casewire-ingest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP service (settings from CASEWIRE_* env)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        from casewire_ingest.main import create_app
        from casewire_ingest.settings import IngestSettings

        settings = IngestSettings()
        serve(create_app(settings), settings.http_host, settings.http_port)
    return 0
