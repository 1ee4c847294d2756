"""The operating rules every rendered overlay must keep: probes, limits, hardened pods, PDBs,
secrets as mounted files, config from config/, network policies, and prod's scaling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from casewire_common import topics
from casewire_router.settings import RouterSettings
from casewire_sla.settings import SlaSettings

from tests.unit.deploy.rendering import (
    OVERLAYS,
    REPO,
    Manifest,
    containers,
    named,
    of_kind,
    pod_specs,
    render,
    selects,
)

SERVICES = ("ingest", "router", "sla")
SECRETS_DIR = "/run/secrets/casewire"
TMP_DIR = "/tmp"  # noqa: S108 - the path checked in the manifests, not a file opened here
# Partitions of casewire.messages.v1 and casewire.case-events.v1 (docs/operations/scaling.md).
TOPIC_PARTITIONS = 12


def _deployments(overlay: str) -> list[Manifest]:
    deployments = of_kind(render(overlay), "Deployment")
    assert sorted(item["metadata"]["name"] for item in deployments) == [
        f"casewire-{service}" for service in SERVICES
    ]
    return deployments


def _volume(pod_spec: Manifest, name: str) -> Manifest:
    return next(volume for volume in pod_spec["volumes"] if volume["name"] == name)


def _mounted_volume(pod_spec: Manifest, container: Manifest, path: str) -> Manifest:
    mounts = [mount for mount in container.get("volumeMounts", []) if mount["mountPath"] == path]
    assert len(mounts) == 1, f"{container['name']}: nothing mounted at {path}"
    return _volume(pod_spec, mounts[0]["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_probes_liveness_without_dependencies_and_readiness_with(
    overlay: str,
) -> None:
    for deployment in _deployments(overlay):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(overlay: str) -> None:
    for workload, pod_spec in pod_specs(render(overlay)):
        for container in containers(pod_spec):
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert set(resources[kind]) == {"cpu", "memory"}, f"{workload}/{container['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_non_root_read_only_without_capabilities(overlay: str) -> None:
    for workload, pod_spec in pod_specs(render(overlay)):
        pod_security = pod_spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, workload
        assert pod_security["runAsUser"] > 0, workload
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, workload
        assert pod_spec["automountServiceAccountToken"] is False, workload
        for container in containers(pod_spec):
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, f"{workload}/{container['name']}"
            assert "emptyDir" in _mounted_volume(pod_spec, container, TMP_DIR)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_carries_the_recommended_labels(overlay: str) -> None:
    for item in render(overlay):
        if item["kind"] in ("Deployment", "Job"):
            name = item["metadata"]["name"]
            expected = {
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/part-of": "casewire",
                "app.kubernetes.io/component": name.removeprefix("casewire-"),
            }
            for labels in (
                item["metadata"]["labels"],
                item["spec"]["template"]["metadata"]["labels"],
            ):
                assert expected.items() <= labels.items(), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_disruption_budget_selecting_its_pods(overlay: str) -> None:
    budgets = of_kind(render(overlay), "PodDisruptionBudget")
    for deployment in _deployments(overlay):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [budget for budget in budgets if selects(budget["spec"]["selector"], labels)]
        assert len(matching) == 1, deployment["metadata"]["name"]
        assert matching[0]["spec"] == {**matching[0]["spec"], "maxUnavailable": 1}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webhook_and_api_services_reach_their_pods_on_the_http_port(overlay: str) -> None:
    manifests = render(overlay)
    assert sorted(item["metadata"]["name"] for item in of_kind(manifests, "Service")) == [
        "casewire-ingest",
        "casewire-router",
    ]
    for service in of_kind(manifests, "Service"):
        deployment = named(manifests, "Deployment", service["metadata"]["name"])
        assert selects(
            {"matchLabels": service["spec"]["selector"]},
            deployment["spec"]["template"]["metadata"]["labels"],
        )
        assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_and_mounted_as_files_never_shipped(overlay: str) -> None:
    manifests = render(overlay)
    assert of_kind(manifests, "Secret") == []
    expected = {
        "casewire-ingest": {"casewire-database", "casewire-webhooks"},
        "casewire-router": {"casewire-database", "casewire-router-api"},
        "casewire-sla": {"casewire-database"},
        "casewire-migrations": {"casewire-database"},
    }
    for workload, pod_spec in pod_specs(manifests):
        for container in containers(pod_spec):
            volume = _mounted_volume(pod_spec, container, SECRETS_DIR)
            sources = volume["projected"]["sources"]
            assert {source["secret"]["name"] for source in sources} == expected[workload]
            database = next(
                s["secret"] for s in sources if s["secret"]["name"] == "casewire-database"
            )
            assert database["items"] == [
                {"key": "casewire_database_url", "path": "casewire_database_url"}
            ]
            assert not any(source["secret"].get("optional") for source in sources), workload


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_files_come_from_config_folder_and_every_reference_resolves(overlay: str) -> None:
    manifests = render(overlay)
    config_maps = {item["metadata"]["name"]: item for item in of_kind(manifests, "ConfigMap")}
    for workload, pod_spec in pod_specs(manifests):
        for container in containers(pod_spec):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, workload
            for variable in container.get("env", []):
                path = Path(variable["value"])
                volume = _mounted_volume(pod_spec, container, str(path.parent))
                data = config_maps[volume["configMap"]["name"]]["data"]
                # The ConfigMap holds the very file from config/: no copy to drift.
                assert data[path.name] == (REPO / "config" / path.name).read_text(), path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_job_migrates_every_service(overlay: str) -> None:
    job = named(render(overlay), "Job", "casewire-migrations")
    commands = [container["command"] for container in containers(job["spec"]["template"]["spec"])]
    assert commands == [[f"casewire-{service}", "migrate"] for service in SERVICES]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_open_only_what_is_needed(overlay: str) -> None:
    policies = {
        item["metadata"]["name"]: item["spec"] for item in of_kind(render(overlay), "NetworkPolicy")
    }
    casewire_pod = {"app.kubernetes.io/part-of": "casewire"}
    deny = policies["casewire-default-deny"]
    assert selects(deny["podSelector"], casewire_pod)
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny
    assert "egress" not in deny
    egress_ports = {
        (port["port"], port["protocol"])
        for rule in policies["casewire-egress-dependencies"]["egress"]
        for port in rule["ports"]
    }
    assert {(53, "UDP"), (53, "TCP"), (9092, "TCP"), (5432, "TCP")} <= egress_ports
    scraping = policies["casewire-metrics-scraping"]["ingress"]
    assert scraping == [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        }
    ]
    open_to = {
        name: spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for name, spec in policies.items()
        if name in ("casewire-ingest-webhooks", "casewire-router-api")
    }
    assert open_to == {
        "casewire-ingest-webhooks": "casewire-ingest",
        "casewire-router-api": "casewire-router",
    }


def test_dev_runs_one_replica_of_each_without_keda_or_monitoring() -> None:
    manifests = render("dev")
    assert [item["spec"]["replicas"] for item in _deployments("dev")] == [1, 1, 1]
    kinds = {item["kind"] for item in manifests}
    assert kinds.isdisjoint({"ScaledObject", "PodMonitor", "ServiceMonitor", "PrometheusRule"})


def test_prod_includes_the_keda_and_monitoring_components() -> None:
    kinds = {item["kind"] for item in render("prod")}
    assert {"ScaledObject", "PodMonitor", "PrometheusRule"} <= kinds


def test_prod_runs_at_least_two_replicas_and_leaves_consumers_to_keda() -> None:
    manifests = render("prod")
    scaled = {
        item["spec"]["scaleTargetRef"]["name"]: item["spec"]
        for item in of_kind(manifests, "ScaledObject")
    }
    assert sorted(scaled) == ["casewire-router", "casewire-sla"]
    for deployment in _deployments("prod"):
        name = deployment["metadata"]["name"]
        if name in scaled:
            # A fixed count would be reset on every apply, fighting the HPA KEDA runs.
            assert "replicas" not in deployment["spec"], name
            assert 2 <= scaled[name]["minReplicaCount"] <= scaled[name]["maxReplicaCount"]
            assert scaled[name]["maxReplicaCount"] <= TOPIC_PARTITIONS, name
        else:
            assert deployment["spec"]["replicas"] >= 2, name


def test_keda_watches_each_consumers_own_topic_group_and_brokers() -> None:
    manifests = render("prod")
    settings = next(
        item
        for item in of_kind(manifests, "ConfigMap")
        if item["metadata"]["name"].startswith("casewire-settings")
    )
    expected = {
        "casewire-router": (topics.MESSAGES, RouterSettings().router_consumer_group),
        "casewire-sla": (topics.CASE_EVENTS, SlaSettings().sla_consumer_group),
    }
    for scaled_object in of_kind(manifests, "ScaledObject"):
        (trigger,) = scaled_object["spec"]["triggers"]
        metadata = trigger["metadata"]
        assert trigger["type"] == "kafka"
        target = scaled_object["spec"]["scaleTargetRef"]["name"]
        assert (metadata["topic"], metadata["consumerGroup"]) == expected[target]
        assert metadata["bootstrapServers"] == settings["data"]["CASEWIRE_KAFKA_BOOTSTRAP_SERVERS"]
        assert metadata["allowIdleConsumers"] == "false"
        assert int(metadata["lagThreshold"]) > 0


def test_prod_pins_the_image_and_spreads_every_service_over_zones_and_nodes() -> None:
    for _, pod_spec in pod_specs(render("prod")):
        for container in containers(pod_spec):
            image = container["image"]
            assert re.search(r"@sha256:[0-9a-f]{64}$|:v?\d+\.\d+\.\d+$", image), image
    for deployment in _deployments("prod"):
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {rule["topologyKey"] for rule in spread} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }
        assert all("app.kubernetes.io/name" in rule["matchLabelKeys"] for rule in spread)


def test_scaling_guide_states_the_partition_count_keda_is_bounded_by() -> None:
    guide = (REPO / "docs" / "operations" / "scaling.md").read_text()
    assert f"{TOPIC_PARTITIONS} partitions" in guide


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_job_needs_nothing_of_the_release_but_the_database_secret(overlay: str) -> None:
    job = named(render(overlay), "Job", "casewire-migrations")
    pod_spec = job["spec"]["template"]["spec"]
    # It runs first (alone, or as an Argo CD PreSync hook): a ConfigMap it read would not exist yet.
    assert all("envFrom" not in c and "env" not in c for c in containers(pod_spec))
    assert {volume["name"]: sorted(volume) for volume in pod_spec["volumes"]} == {
        "secrets": ["name", "projected"],
        "tmp": ["emptyDir", "name"],
    }
