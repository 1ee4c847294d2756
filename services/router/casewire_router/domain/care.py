"""What care leads look at, as pure rules: which label values the per-agent and per-tag figures
may take, and when a topic is trending. The definitions of the figures themselves are written
once, in docs/report.md ("Definitions"); the metrics and `casewire-router report` follow them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

# Label values besides the configured ones: an agent or tag not in the roster or rules file in
# force, and a case nobody owns. Roster ids and tags cannot take these values unnoticed: an agent
# or a tag of that name would be counted with them (docs/operations/metrics.md says so).
OTHER = "other"
UNASSIGNED = "unassigned"
# A case with no language yet (none detected, none given by the platform).
UNKNOWN_LANGUAGE = "unknown"


@dataclass
class CareBounds:
    """The label values the care metrics may use: the agents of the agents file (the roster),
    the tags of the rules file in force and the configured languages. Anything else counts as
    `other`, so a label never takes more values than the configuration has, whatever the cases
    carry (an agent created through the API, a tag of an older rules file, a language code a
    platform gave)."""

    agents: frozenset[str] = field(default_factory=frozenset)
    tags: frozenset[str] = field(default_factory=frozenset)
    # The languages ingest's detector may answer (CASEWIRE_LANGUAGES): a platform may give
    # another code, which counts as `other`.
    languages: frozenset[str] = field(default_factory=frozenset)

    def agent(self, agent_id: str | None) -> str:
        if agent_id is None:
            return UNASSIGNED
        return agent_id if agent_id in self.agents else OTHER

    def language(self, language: str | None) -> str:
        if language is None:
            return UNKNOWN_LANGUAGE
        return language if language in self.languages else OTHER

    def tag(self, tag: str) -> str:
        return tag if tag in self.tags else OTHER

    def case_tags(self, tags: Iterable[str]) -> set[str]:
        """A case's tags as label values, each once (two unknown tags make one `other`)."""
        return {self.tag(tag) for tag in tags}


@dataclass(frozen=True)
class TrendSettings:
    """A topic trends when its cases in the last `window` are at least `threshold` times what
    its rate over the `baseline` before that window predicts, and at least `min_cases`."""

    window: timedelta = timedelta(hours=1)
    baseline: timedelta = timedelta(hours=24)
    threshold: float = 3.0
    min_cases: int = 5


@dataclass(frozen=True)
class Trend:
    recent: int  # cases opened in the last window
    earlier: int  # cases opened in the baseline period before it
    ratio: float
    trending: bool


def topic_trend(recent: int, earlier: int, settings: TrendSettings) -> Trend:
    """Recent volume against the baseline's expectation for a window of the same length. The
    expectation counts as at least one case, so that a topic out of nowhere has a finite ratio
    (its recent count) rather than an infinite one."""
    expected = earlier * (settings.window / settings.baseline)
    ratio = recent / max(expected, 1.0)
    return Trend(
        recent, earlier, ratio, recent >= settings.min_cases and ratio >= settings.threshold
    )
