"""Every rendered object is valid for the Kubernetes versions Casewire supports; custom resources
(KEDA, Prometheus Operator), which kubernetes-validate has no schema for, get their required
fields checked here."""

from __future__ import annotations

from collections.abc import Callable

import kubernetes_validate
import pytest

from tests.unit.deploy.rendering import OVERLAYS, Manifest, render

# The oldest Kubernetes the manifests support (docs/operations/deploy.md) and the newest known.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def _scaled_object_problems(item: Manifest) -> list[str]:
    spec = item.get("spec", {})
    problems = [] if spec.get("scaleTargetRef", {}).get("name") else ["no scaleTargetRef.name"]
    triggers = spec.get("triggers") or []
    if not triggers:
        problems.append("no triggers")
    problems += [
        f"trigger {i} lacks type or metadata"
        for i, trigger in enumerate(triggers)
        if not trigger.get("type") or not isinstance(trigger.get("metadata"), dict)
    ]
    return problems


def _pod_monitor_problems(item: Manifest) -> list[str]:
    spec = item.get("spec", {})
    problems = [] if isinstance(spec.get("selector"), dict) else ["no selector"]
    endpoints = spec.get("podMetricsEndpoints") or []
    if not endpoints:
        problems.append("no podMetricsEndpoints")
    problems += [
        f"endpoint {i} names no port"
        for i, endpoint in enumerate(endpoints)
        if not (endpoint.get("port") or endpoint.get("portNumber"))
    ]
    return problems


def _service_monitor_problems(item: Manifest) -> list[str]:
    spec = item.get("spec", {})
    problems = [] if isinstance(spec.get("selector"), dict) else ["no selector"]
    return problems + ([] if spec.get("endpoints") else ["no endpoints"])


def _prometheus_rule_problems(item: Manifest) -> list[str]:
    groups = item.get("spec", {}).get("groups") or []
    problems = [] if groups else ["no groups"]
    for group in groups:
        if not group.get("name") or not group.get("rules"):
            problems.append(f"group {group.get('name')!r} lacks name or rules")
        for rule in group.get("rules") or []:
            if not rule.get("expr") or bool(rule.get("alert")) == bool(rule.get("record")):
                problems.append(f"rule {rule} needs expr and exactly one of alert/record")
    return problems


CUSTOM_RESOURCE_CHECKS: dict[tuple[str, str], Callable[[Manifest], list[str]]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): _scaled_object_problems,
    ("monitoring.coreos.com/v1", "PodMonitor"): _pod_monitor_problems,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _service_monitor_problems,
    ("monitoring.coreos.com/v1", "PrometheusRule"): _prometheus_rule_problems,
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_builtin_object_matches_the_kubernetes_schema(overlay: str, version: str) -> None:
    builtin = [
        item
        for item in render(overlay)
        if (item["apiVersion"], item["kind"]) not in CUSTOM_RESOURCE_CHECKS
    ]
    assert builtin
    for item in builtin:
        try:
            kubernetes_validate.validate(item, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{overlay}: {item['kind']} {item['metadata']['name']}: {error.message}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_custom_resource_has_its_required_fields(overlay: str) -> None:
    for item in render(overlay):
        check = CUSTOM_RESOURCE_CHECKS.get((item["apiVersion"], item["kind"]))
        if check is not None:
            assert item["metadata"].get("name"), item
            assert check(item) == [], f"{item['kind']} {item['metadata']['name']}"


def test_custom_resource_checks_reject_a_resource_missing_required_fields() -> None:
    assert _scaled_object_problems({"spec": {"triggers": [{"type": "kafka"}]}}) == [
        "no scaleTargetRef.name",
        "trigger 0 lacks type or metadata",
    ]
    assert _pod_monitor_problems({"spec": {"podMetricsEndpoints": [{"path": "/metrics"}]}}) == [
        "no selector",
        "endpoint 0 names no port",
    ]
    assert (
        _prometheus_rule_problems(
            {
                "spec": {
                    "groups": [{"name": "g", "rules": [{"alert": "A", "record": "r", "expr": "1"}]}]
                }
            }
        )
        != []
    )


def test_schema_validation_rejects_a_misspelled_field() -> None:
    deployment = next(item for item in render("dev") if item["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)
