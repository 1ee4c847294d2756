"""The saved-replies file on disk (CASEWIRE_ROUTER_SAVED_REPLIES), read at start and watched
like the rules file (`adapters.watched_file`): a changed file that parses and still has every
reply the rules in force name is put in force without a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Counter

from casewire_router.adapters.watched_file import WatchedFile, read_file
from casewire_router.domain.saved_replies import (
    SavedRepliesError,
    SavedRepliesFile,
    parse_saved_replies,
)

log = structlog.get_logger(__name__)


class SavedRepliesMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reloads = Counter(
            "casewire_router_saved_replies_reloads_total",
            "Changed saved-replies files put in force without a restart.",
            registry=registry,
        )
        self.reload_failures = Counter(
            "casewire_router_saved_replies_reload_failures_total",
            "Changed saved-replies files that could not be read or parsed, or lack a reply the"
            " rules in force name (the replies in force stay).",
            registry=registry,
        )


def read_saved_replies(path: Path) -> tuple[SavedRepliesFile, str]:
    """The file's saved replies and its content hash; SavedRepliesError lists its problems,
    OSError when it cannot be read."""
    try:
        digest, text = read_file(path)
    except UnicodeDecodeError as error:
        raise SavedRepliesError([f"{path}: not UTF-8 text: {error.reason}"]) from error
    return parse_saved_replies(text, str(path)), digest


class SavedRepliesWatcher(WatchedFile[SavedRepliesFile]):
    """The saved-replies file, checked every `interval` seconds; `fits(replies)` lists what
    keeps a new file out (a reply the rules in force name, missing), `on_change` puts it in
    force."""

    def __init__(
        self,
        path: Path,
        digest: str,
        on_change: Callable[[SavedRepliesFile], None],
        fits: Callable[[SavedRepliesFile], list[str]],
        metrics: SavedRepliesMetrics,
        interval: float,
    ) -> None:
        super().__init__(
            what="saved replies",
            path=path,
            digest=digest,
            parse=parse_saved_replies,
            fits=lambda replies, _text: fits(replies),
            on_change=on_change,
            reloads=metrics.reloads,
            failures=metrics.reload_failures,
            interval=interval,
            hint="casewire-router check-rules --saved-replies FILE lists them",
        )

    def _announce(self, parsed: SavedRepliesFile) -> None:
        log.info("saved replies reloaded", path=str(self.path), replies=len(parsed.replies))
