"""Where the alert-rule tests find promtool (and the real-Prometheus test prometheus), and the
rule file they check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.unit.ops.catalog import REPO

PROMETHEUS_RULE = REPO / "deploy" / "components" / "monitoring" / "prometheus-rule.yaml"
# `make tools` unpacks Debian's prometheus package here when promtool is not on PATH.
LOCAL_TOOLS = REPO / ".tools" / "usr" / "bin"
LOCAL_PROMTOOL = LOCAL_TOOLS / "promtool"


def prometheus_tool(name: str) -> str:
    """`promtool` or `prometheus`: the one on PATH, else the one `make tools` unpacked; a
    missing one is a failure, never a skip (CI must run these)."""
    local = LOCAL_TOOLS / name
    found = shutil.which(name) or (str(local) if local.is_file() else None)
    if found is None:
        raise AssertionError(
            f"{name} not found on PATH nor in .tools/: run `make tools` (or `make setup`)"
        )
    return found


def promtool() -> str:
    return prometheus_tool("promtool")


def run_promtool(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *arguments], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def prometheus_rule() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(PROMETHEUS_RULE.read_text("utf-8"))
    return document


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for group in prometheus_rule()["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def write_rule_file(directory: Path, name: str = "casewire-rules.yaml") -> Path:
    """The PrometheusRule's groups as a plain Prometheus rule file, for promtool."""
    path = directory / name
    path.write_text(yaml.safe_dump(prometheus_rule()["spec"], sort_keys=False), "utf-8")
    return path
