"""Queue depth, agent capacity and load, and trending topics as Prometheus gauges, read from
PostgreSQL periodically.

Every replica reports the same figures (they come from the shared database): aggregate them
with `max by (team, ...)`, not `sum`. The topic trend is computed here for that reason: kept
in memory, each replica would see only the cases it opened.
"""

from __future__ import annotations

import collections
from datetime import UTC, datetime

import asyncpg
from casewire_common.periodic import Periodic
from casewire_common.pg import Database
from prometheus_client import CollectorRegistry, Gauge

from casewire_router.adapters.case_store import WAITING
from casewire_router.adapters.repository import SCHEMA
from casewire_router.domain.care import CareBounds, TrendSettings, topic_trend

# Cases opened since $2, by team and tag: those since $1 (the trend window) and those before
# (the baseline). The index on opened_at keeps it to the cases of the two periods.
_TOPIC_VOLUME = f"""
    SELECT team, tag, count(*) FILTER (WHERE opened_at >= $1) AS recent,
           count(*) FILTER (WHERE opened_at < $1) AS earlier
    FROM {SCHEMA}.cases, unnest(tags) AS tag
    WHERE opened_at >= $2 AND opened_at < $3
    GROUP BY team, tag
"""


class QueueMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_depth = Gauge(
            "casewire_router_queue_depth",
            "Open cases waiting in a team's queue for an agent, by team and priority.",
            ["team", "priority"],
            registry=registry,
        )
        self.oldest_waiting = Gauge(
            "casewire_router_queue_oldest_seconds",
            "How long the longest-waiting case of a team's queue has waited.",
            ["team"],
            registry=registry,
        )
        self.open_cases = Gauge(
            "casewire_router_open_cases",
            "Open cases by team and status (queued, assigned, pending, reopened).",
            ["team", "status"],
            registry=registry,
        )
        self.agents_online = Gauge(
            "casewire_router_agents_online",
            "Agents online, by team (an agent in two teams counts in both).",
            ["team"],
            registry=registry,
        )
        self.team_capacity = Gauge(
            "casewire_router_team_capacity",
            "Sum of the capacity of a team's online agents.",
            ["team"],
            registry=registry,
        )
        self.team_load = Gauge(
            "casewire_router_team_load",
            "Open cases owned by a team's online agents (their load).",
            ["team"],
            registry=registry,
        )
        self.agent_open_cases = Gauge(
            "casewire_router_agent_open_cases",
            "Open cases an agent owns (their load), by agent: roster agents by id, any other"
            " agent under `other` (the leaderboard's open load).",
            ["agent"],
            registry=registry,
        )
        self.agent_capacity = Gauge(
            "casewire_router_agent_capacity",
            "An online agent's capacity (0 when offline), by agent as"
            " casewire_router_agent_open_cases.",
            ["agent"],
            registry=registry,
        )
        self.topic_trend_ratio = Gauge(
            "casewire_router_topic_trend_ratio",
            "Cases opened with a tag in the last trend window, over what the tag's rate in the"
            " baseline before it predicts (at least one case), by tag and team.",
            ["tag", "team"],
            registry=registry,
        )
        self.topic_trending = Gauge(
            "casewire_router_topic_trending",
            "1 when a tag's trend ratio is at least the threshold with at least the minimum"
            " cases in the window, else 0, by tag and team.",
            ["tag", "team"],
            registry=registry,
        )


class QueueMetricsRefresher:
    """Reads the queue, agent and topic figures every `interval` seconds while the router runs."""

    def __init__(
        self,
        database: Database,
        metrics: QueueMetrics,
        interval: float,
        trends: TrendSettings | None = None,
        bounds: CareBounds | None = None,
    ) -> None:
        self._database = database
        self._metrics = metrics
        self._trends = trends or TrendSettings()
        self._bounds = bounds or CareBounds()
        self.task = Periodic("queue-metrics", interval, self.refresh)

    async def refresh(self) -> None:
        async with self._database.pool.acquire() as connection:
            queues = await connection.fetch(
                f"SELECT team, priority, count(*) AS cases,"
                " extract(epoch FROM now() - min(COALESCE(queued_at, opened_at))) AS oldest"
                f" FROM {SCHEMA}.cases WHERE {WAITING} GROUP BY team, priority"
            )
            statuses = await connection.fetch(
                f"SELECT team, status, count(*) AS cases FROM {SCHEMA}.cases"
                " WHERE status NOT IN ('resolved', 'no_action') GROUP BY team, status"
            )
            teams = await connection.fetch(
                "SELECT team, count(*) AS online, sum(capacity) AS capacity, sum(load) AS load"
                f" FROM {SCHEMA}.agents, unnest(teams) AS team WHERE online GROUP BY team"
            )
            agents = await connection.fetch(
                f"SELECT id, load, CASE WHEN online THEN capacity ELSE 0 END AS capacity"
                f" FROM {SCHEMA}.agents"
            )
            now = datetime.now(UTC)
            window_start = now - self._trends.window
            topics = await connection.fetch(
                _TOPIC_VOLUME, window_start, window_start - self._trends.baseline, now
            )
        metrics = self._metrics
        for gauge in (
            metrics.queue_depth,
            metrics.oldest_waiting,
            metrics.open_cases,
            metrics.agents_online,
            metrics.team_capacity,
            metrics.team_load,
            metrics.agent_open_cases,
            metrics.agent_capacity,
            metrics.topic_trend_ratio,
            metrics.topic_trending,
        ):
            gauge.clear()
        oldest: dict[str, float] = {}
        for row in queues:
            metrics.queue_depth.labels(row["team"], row["priority"]).set(row["cases"])
            oldest[row["team"]] = max(oldest.get(row["team"], 0.0), float(row["oldest"] or 0))
        for team, seconds in oldest.items():
            metrics.oldest_waiting.labels(team).set(seconds)
        for row in statuses:
            metrics.open_cases.labels(row["team"], row["status"]).set(row["cases"])
        for row in teams:
            metrics.agents_online.labels(row["team"]).set(row["online"])
            metrics.team_capacity.labels(row["team"]).set(row["capacity"])
            metrics.team_load.labels(row["team"]).set(row["load"])
        load: collections.Counter[str] = collections.Counter()
        capacity: collections.Counter[str] = collections.Counter()
        for row in agents:
            agent = self._bounds.agent(row["id"])
            load[agent] += row["load"]
            capacity[agent] += row["capacity"]
        for agent, cases in load.items():
            metrics.agent_open_cases.labels(agent).set(cases)
            metrics.agent_capacity.labels(agent).set(capacity[agent])
        self._set_trends(topics)

    def _set_trends(self, rows: list[asyncpg.Record]) -> None:
        volumes: collections.Counter[tuple[str, str, str]] = collections.Counter()
        for row in rows:  # tags of older rules files add up under `other`
            tag = self._bounds.tag(row["tag"])
            volumes[(tag, row["team"], "recent")] += row["recent"]
            volumes[(tag, row["team"], "earlier")] += row["earlier"]
        for tag, team in {(tag, team) for tag, team, _ in volumes}:
            trend = topic_trend(
                volumes[(tag, team, "recent")], volumes[(tag, team, "earlier")], self._trends
            )
            self._metrics.topic_trend_ratio.labels(tag, team).set(trend.ratio)
            self._metrics.topic_trending.labels(tag, team).set(1 if trend.trending else 0)
