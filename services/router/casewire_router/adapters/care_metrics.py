"""Care figures in Prometheus: first-response and resolution times, replies and resolutions by
team and agent; cases needing a reply and cases answered (the reply rate) by team, platform and
channel, and again by team and language; cases opened by tag and team, and by language and
team; uses of saved replies by team and reply. Same definitions as `casewire-router report`
(docs/report.md, "Definitions"), counted when they happen, from the events of each committed
change (a batch of messages or a case API action).

Why the router exports the agent-level figures rather than the SLA service: the router decides
and holds what they are about (cases, replies, assignees), and it holds what bounds their labels
(the roster is its agents file, tags come from its rules file). The SLA service would need the
roster as a second copy to keep in step, and every case event to carry it. Times here are
calendar (wall, event) time, as in the report; business time, which needs the SLA calendars, is
the SLA service's `casewire_sla_agent_response_seconds`, by team and agent (same roster).

Language gets counters of its own rather than a label on the reply-rate counters: teams ×
platforms (5) × channels (4) × languages (CASEWIRE_LANGUAGES, 18 by default, + other + unknown)
would be 400 series per team and counter; by team and language alone, 20.

Counters and histograms are per replica (sum them over pods); each change is counted once, by
the replica that committed it.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable
from typing import get_args

from casewire_common import events as ev
from casewire_common.messages import Channel, Platform
from casewire_common.metrics import RESPONSE_TIME_BUCKETS, precreate
from prometheus_client import CollectorRegistry, Counter, Histogram

from casewire_router.domain.agents_file import AgentSpec
from casewire_router.domain.care import OTHER, UNKNOWN_LANGUAGE, CareBounds
from casewire_router.domain.outcome import RoutingOutcome


class CareMetrics:
    def __init__(self, registry: CollectorRegistry, bounds: CareBounds | None = None) -> None:
        self.bounds = bounds or CareBounds()
        self.first_response = Histogram(
            "casewire_router_first_response_seconds",
            "Time from a case's opening to its first brand reply (event time), observed when"
            " the case is first answered, by the case's team and assignee (roster agents, else"
            " other; unassigned).",
            ["team", "agent"],
            buckets=RESPONSE_TIME_BUCKETS,
            registry=registry,
        )
        self.resolution = Histogram(
            "casewire_router_resolution_seconds",
            "Time from a case's opening to its resolution, observed when it is resolved, by"
            " team and assignee.",
            ["team", "agent"],
            buckets=RESPONSE_TIME_BUCKETS,
            registry=registry,
        )
        self.replies = Counter(
            "casewire_router_replies_total",
            "Brand replies recorded on cases, by the case's team and assignee.",
            ["team", "agent"],
            registry=registry,
        )
        self.resolved = Counter(
            "casewire_router_cases_resolved_total",
            "Cases resolved, by team and assignee (a case resolved again after a reopening"
            " counts again).",
            ["team", "agent"],
            registry=registry,
        )
        self.needing_reply = Counter(
            "casewire_router_cases_needing_reply_total",
            "Cases opened that need a reply (all but no_action), by team, platform and channel:"
            " the denominator of the reply rate.",
            ["team", "platform", "channel"],
            registry=registry,
        )
        self.answered = Counter(
            "casewire_router_cases_answered_total",
            "Cases that got their first brand reply, by team, platform and channel: the"
            " numerator of the reply rate.",
            ["team", "platform", "channel"],
            registry=registry,
        )
        self.by_language = Counter(
            "casewire_router_cases_by_language_total",
            "Cases opened, by team and the case's language when it opened (CASEWIRE_LANGUAGES,"
            " else other; unknown: none yet).",
            ["team", "language"],
            registry=registry,
        )
        self.needing_reply_by_language = Counter(
            "casewire_router_cases_needing_reply_by_language_total",
            "Cases opened that need a reply (all but no_action), by team and language: the"
            " denominator of the reply rate by language.",
            ["team", "language"],
            registry=registry,
        )
        self.answered_by_language = Counter(
            "casewire_router_cases_answered_by_language_total",
            "Cases that got their first brand reply, by team and the case's language then:"
            " the numerator of the reply rate by language.",
            ["team", "language"],
            registry=registry,
        )
        self.tagged = Counter(
            "casewire_router_cases_by_tag_total",
            "Cases opened, by tag (the rules file's, else other) and team; a case counts once"
            " under each of its tags, untagged ones not at all.",
            ["tag", "team"],
            registry=registry,
        )

        self.saved_reply_uses = Counter(
            "casewire_router_saved_reply_uses_total",
            "Replies recorded through the API with a saved reply, by the case's team and the"
            " saved reply's id.",
            ["team", "saved_reply"],
            registry=registry,
        )

    def use_saved_replies(self, offered: Iterable[tuple[str, str]]) -> None:
        """Start at zero the (team, saved reply) series of the replies each team is offered
        (at start, on each reload of either file, when a reply is written through the API)."""
        precreate(self.saved_reply_uses, offered)

    def use_roster(self, agents: Iterable[AgentSpec]) -> None:
        """Take the agents file as the roster, and start each agent's series at zero for each
        of their teams, so that a leaderboard shows those who did nothing yet (and `rate()`
        sees their first reply). Series already started stay."""
        roster = list(agents)
        self.bounds.agents = frozenset(agent.id for agent in roster)
        for agent in roster:
            for team in agent.teams:
                self.replies.labels(team, agent.id)
                self.resolved.labels(team, agent.id)
                self.first_response.labels(team, agent.id)
                self.resolution.labels(team, agent.id)

    def use_teams(self, teams: Iterable[str]) -> None:
        """Start the per-team series at zero for the rules file's teams (after `use_tags` and
        `use_languages`: at start and on each reload), so that `rate()` sees their first case."""
        teams = list(teams)
        platforms_and_channels = list(itertools.product(get_args(Platform), get_args(Channel)))
        for counter in (self.needing_reply, self.answered):
            precreate(counter, [(team, *pair) for team in teams for pair in platforms_and_channels])
        languages = [*sorted(self.bounds.languages), OTHER, UNKNOWN_LANGUAGE]
        for counter in (
            self.by_language,
            self.needing_reply_by_language,
            self.answered_by_language,
        ):
            precreate(counter, itertools.product(teams, languages))
        precreate(self.tagged, itertools.product([*sorted(self.bounds.tags), OTHER], teams))

    def use_languages(self, languages: Iterable[str]) -> None:
        """The languages the `language` label keeps (CASEWIRE_LANGUAGES); others are `other`."""
        self.bounds.languages = frozenset(languages)

    def use_tags(self, tags: Iterable[str]) -> None:
        """The tags of the rules file in force (on every reload)."""
        self.bounds.tags = frozenset(tags)

    def record(self, outcome: RoutingOutcome) -> None:
        """Count what a committed change did. One increment per label set per change: the
        per-event cost adds up on large batches."""
        bounds = self.bounds
        replies: collections.Counter[tuple[str, str]] = collections.Counter()
        resolved: collections.Counter[tuple[str, str]] = collections.Counter()
        needing: collections.Counter[tuple[str, str, str]] = collections.Counter()
        answered: collections.Counter[tuple[str, str, str]] = collections.Counter()
        tagged: collections.Counter[tuple[str, str]] = collections.Counter()
        # (counter, team, language): the three counters by language, in one pass.
        by_language: collections.Counter[tuple[Counter, str, str]] = collections.Counter()
        first_answered: set[str] = set()
        saved_replies: collections.Counter[tuple[str, str]] = collections.Counter()
        for event in outcome.events:
            case = event.data.case
            if event.type == ev.CASE_CREATED:
                language = bounds.language(case.language)
                by_language[(self.by_language, case.team, language)] += 1
                if case.status != "no_action":
                    needing[(case.team, case.platform, case.channel)] += 1
                    by_language[(self.needing_reply_by_language, case.team, language)] += 1
                for tag in bounds.case_tags(case.tags):
                    tagged[(tag, case.team)] += 1
            elif event.type == ev.CASE_RESPONDED:
                agent = bounds.agent(case.assignee)
                replies[(case.team, agent)] += 1
                if event.data.saved_reply_id is not None:  # checked to exist when recorded
                    saved_replies[(case.team, event.data.saved_reply_id)] += 1
                if (
                    case.id in outcome.first_answers
                    and case.id not in first_answered
                    and case.first_response_at is not None
                ):
                    first_answered.add(case.id)
                    answered[(case.team, case.platform, case.channel)] += 1
                    language = bounds.language(case.language)
                    by_language[(self.answered_by_language, case.team, language)] += 1
                    seconds = (case.first_response_at - case.opened_at).total_seconds()
                    self.first_response.labels(case.team, agent).observe(max(0.0, seconds))
            elif (
                event.type == ev.CASE_STATUS_CHANGED
                and case.status == "resolved"
                and event.data.previous_status != "resolved"
                and case.resolved_at is not None
            ):
                agent = bounds.agent(case.assignee)
                resolved[(case.team, agent)] += 1
                seconds = (case.resolved_at - case.opened_at).total_seconds()
                self.resolution.labels(case.team, agent).observe(max(0.0, seconds))
        for (team, agent), count in replies.items():
            self.replies.labels(team, agent).inc(count)
        for (team, agent), count in resolved.items():
            self.resolved.labels(team, agent).inc(count)
        for labels, count in needing.items():
            self.needing_reply.labels(*labels).inc(count)
        for labels, count in answered.items():
            self.answered.labels(*labels).inc(count)
        for (tag, team), count in tagged.items():
            self.tagged.labels(tag, team).inc(count)
        for (team, reply), count in saved_replies.items():
            self.saved_reply_uses.labels(team, reply).inc(count)
        for (counter, team, language), count in by_language.items():
            counter.labels(team, language).inc(count)
