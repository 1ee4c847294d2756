"""The rules file on disk, watched: a changed file is parsed and put in force without a restart.

The file is re-read by path at every check and compared by content hash, not by inode or
modification time: a Kubernetes ConfigMap update swaps a symlink (`..data`) to a new
directory, and the file seen through the path changes while its mtime may not. A file that
does not parse is logged (where, not what) and counted; the rules in force stay.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path

import structlog
from casewire_common.periodic import Periodic
from prometheus_client import CollectorRegistry, Counter, Gauge

from casewire_router.domain.rules import RulesError, RuleSet, parse_rules

log = structlog.get_logger(__name__)

_UNREADABLE = "unreadable"  # in place of a content hash: the file could not be read


class RulesMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.info = Gauge(
            "casewire_router_rules_info",
            "The rules in force: 1 for their version (file version and content hash).",
            ["version"],
            registry=registry,
        )
        self.reloads = Counter(
            "casewire_router_rules_reloads_total",
            "Changed rules files put in force without a restart.",
            registry=registry,
        )
        self.reload_failures = Counter(
            "casewire_router_rules_reload_failures_total",
            "Changed rules files that could not be read or parsed (the old rules stay).",
            registry=registry,
        )

    def in_force(self, rules: RuleSet) -> None:
        """One series only: the version in force."""
        self.info.clear()
        self.info.labels(version=rules.version).set(1)


def _read(path: Path) -> tuple[str, str]:
    """The file's SHA-256 and its text."""
    content = path.read_bytes()
    return hashlib.sha256(content).hexdigest(), content.decode("utf-8")


class RulesWatcher:
    """Checks the rules file every `interval` seconds; calls `on_change` with new rules."""

    def __init__(
        self,
        path: Path,
        current: RuleSet,
        on_change: Callable[[RuleSet], None],
        metrics: RulesMetrics,
        interval: float,
    ) -> None:
        self._path = path
        self._on_change = on_change
        self._metrics = metrics
        # What was last seen, good or bad: a broken file is reported once, not at every check.
        self._seen_digest = current.source_digest
        metrics.in_force(current)
        self._checks = Periodic("rules-watcher", interval, self.check, wait_first=True)

    def start(self) -> None:
        self._checks.start()

    async def stop(self) -> None:
        await self._checks.stop()

    async def check(self) -> RuleSet | None:
        """Read the file once; the new rules if it changed and is valid, else None."""
        try:
            digest, text = await asyncio.to_thread(_read, self._path)
        except (OSError, UnicodeDecodeError) as error:
            if self._seen_digest != _UNREADABLE:  # reported once, not at every check
                self._seen_digest = _UNREADABLE
                log.error(
                    "rules file unreadable, the rules in force stay",
                    path=str(self._path),
                    error=type(error).__name__,
                )
                self._metrics.reload_failures.inc()
            return None
        if digest == self._seen_digest:
            return None
        self._seen_digest = digest
        try:
            # Parsing a large file takes a while: not on the event loop.
            rules = await asyncio.to_thread(parse_rules, text, str(self._path))
        except RulesError as error:
            log.error(
                "rules file invalid, the rules in force stay",
                path=str(self._path),
                digest=digest[:12],
                problems=len(error.problems),
                hint="casewire-router check-rules lists them",
            )
            self._metrics.reload_failures.inc()
            return None
        self._on_change(rules)
        self._metrics.in_force(rules)
        self._metrics.reloads.inc()
        log.info("rules reloaded", path=str(self._path), rules_version=rules.version)
        return rules
