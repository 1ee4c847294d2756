from __future__ import annotations

from pathlib import Path

from casewire_common.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    router_rules: Path = Path("config/rules.yaml")
    router_agents: Path | None = Path("config/agents.yaml")
    router_consumer_group: str = "casewire-router"
