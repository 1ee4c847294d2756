"""The rules file on disk, watched (`adapters.watched_file`): a changed file is parsed and put
in force without a restart; one that does not parse, or does not fit the saved replies in
force, is logged and counted, and the rules in force stay.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from casewire_router.adapters.watched_file import WatchedFile
from casewire_router.domain.rules import RuleSet, parse_rules

log = structlog.get_logger(__name__)


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
            "Changed rules files that could not be read, parsed or used with the saved replies in"
            " force (the old rules stay).",
            registry=registry,
        )

    def in_force(self, rules: RuleSet) -> None:
        """One series only: the version in force."""
        self.info.clear()
        self.info.labels(version=rules.version).set(1)


class RulesWatcher(WatchedFile[RuleSet]):
    """The rules file, checked every `interval` seconds; `on_change` gets new rules that
    parse and fit the rest of the configuration (`fits(rules, text)`: the problems keeping
    them out, e.g. a `reply_template` naming no saved reply)."""

    def __init__(
        self,
        path: Path,
        current: RuleSet,
        on_change: Callable[[RuleSet], None],
        metrics: RulesMetrics,
        interval: float,
        fits: Callable[[RuleSet, str], list[str]] | None = None,
    ) -> None:
        self._metrics = metrics
        metrics.in_force(current)
        super().__init__(
            what="rules",
            path=path,
            digest=current.source_digest,
            parse=parse_rules,
            fits=fits or (lambda _rules, _text: []),
            on_change=on_change,
            reloads=metrics.reloads,
            failures=metrics.reload_failures,
            interval=interval,
            hint="casewire-router check-rules lists them",
        )

    def _announce(self, parsed: RuleSet) -> None:
        self._metrics.in_force(parsed)
        log.info("rules reloaded", path=str(self.path), rules_version=parsed.version)
