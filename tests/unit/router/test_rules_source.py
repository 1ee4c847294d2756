"""The rules watcher: new rules from a changed file, the old ones kept for a broken one."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from casewire_router.adapters.rules_source import RulesMetrics, RulesWatcher
from casewire_router.domain.rules import RuleSet, load_rules
from prometheus_client import CollectorRegistry, generate_latest

from tests.unit.router.factories import message

RULES = """version: {version}
default_team: care
teams: [care, shipping, billing]
rules:
  - id: parcel
    when: {{any: [parcel]}}
    then: {{team: {team}}}
"""


class Watched:
    def __init__(self, path: Path, interval: float = 3600) -> None:
        self.registry = CollectorRegistry()
        self.in_force = load_rules(str(path))
        self.changes: list[RuleSet] = []
        self.watcher = RulesWatcher(
            path, self.in_force, self.use, RulesMetrics(self.registry), interval
        )

    def use(self, rules: RuleSet) -> None:
        self.changes.append(rules)
        self.in_force = rules

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


async def test_a_changed_file_is_put_in_force_and_a_broken_one_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(version=1, team="shipping"), "utf-8")
    watched = Watched(path)
    first = watched.in_force.version
    assert watched.metric("casewire_router_rules_info", version=first) == 1

    assert await watched.watcher.check() is None  # unchanged: nothing to do
    path.write_text(RULES.format(version=2, team="billing"), "utf-8")
    new = await watched.watcher.check()
    assert new is not None
    assert watched.changes == [new]
    assert watched.in_force.evaluate(message("my parcel")).team == "billing"
    assert watched.metric("casewire_router_rules_info", version=first) is None  # one series
    assert watched.metric("casewire_router_rules_info", version=new.version) == 1
    assert watched.metric("casewire_router_rules_reloads_total") == 1

    path.write_text(RULES.format(version=3, team="nowhere"), "utf-8")
    assert await watched.watcher.check() is None
    assert await watched.watcher.check() is None  # the same broken file: reported once
    assert watched.changes == [new]
    assert watched.metric("casewire_router_rules_reload_failures_total") == 1
    assert watched.metric("casewire_router_rules_info", version=new.version) == 1

    path.unlink()
    assert await watched.watcher.check() is None
    assert await watched.watcher.check() is None
    assert watched.metric("casewire_router_rules_reload_failures_total") == 2
    path.write_text(RULES.format(version=2, team="billing"), "utf-8")  # back as it was
    assert await watched.watcher.check() is not None
    assert watched.in_force.version == new.version


async def test_a_configmap_symlink_swap_is_seen(tmp_path: Path) -> None:
    """Kubernetes mounts `rules.yaml -> ..data/rules.yaml`, `..data -> ..<timestamp>`, and
    updates by pointing `..data` at a new directory (renamed over, atomically)."""
    old_dir, new_dir = tmp_path / "..2026_11_28_1", tmp_path / "..2026_11_28_2"
    for directory, team in ((old_dir, "shipping"), (new_dir, "billing")):
        directory.mkdir()
        (directory / "rules.yaml").write_text(RULES.format(version=1, team=team), "utf-8")
    same_mtime = os.stat(old_dir / "rules.yaml").st_mtime_ns  # only the content tells
    os.utime(new_dir / "rules.yaml", ns=(same_mtime, same_mtime))
    (tmp_path / "..data").symlink_to(old_dir.name)
    (tmp_path / "rules.yaml").symlink_to("..data/rules.yaml")
    watched = Watched(tmp_path / "rules.yaml", interval=0.01)
    watched.watcher.start()
    try:
        (tmp_path / "..data_tmp").symlink_to(new_dir.name)
        (tmp_path / "..data_tmp").replace(tmp_path / "..data")
        for _ in range(500):
            if watched.changes:
                break
            await asyncio.sleep(0.01)
    finally:
        await watched.watcher.stop()
    assert watched.in_force.evaluate(message("my parcel")).team == "billing"
    assert b"casewire_router_rules_info" in generate_latest(watched.registry)
