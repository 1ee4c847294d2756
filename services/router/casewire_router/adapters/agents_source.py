"""The agents file, synced into PostgreSQL at start (ids, teams, languages, capacity): the
agents the router may assign to, and the roster of the per-agent metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from casewire_common.pg import Database

from casewire_router.adapters import repository
from casewire_router.adapters.care_metrics import CareMetrics
from casewire_router.domain.agents_file import load_agents


class AgentsSync:
    """At start, the agents file (if one is configured) into the agents table and the care
    metrics' roster; the teams it may name are those of the rules in force."""

    def __init__(
        self,
        path: Path | None,
        teams: Callable[[], list[str]],
        database: Database,
        care: CareMetrics,
    ) -> None:
        self._path = path
        self._teams = teams
        self._database = database
        self._care = care

    async def start(self) -> None:
        if self._path is None:
            return
        agents = load_agents(self._path, teams=self._teams())
        self._care.use_roster(agents.agents)
        async with self._database.pool.acquire() as connection:
            await repository.sync_agents(
                connection, [agent.model_dump() for agent in agents.agents]
            )
