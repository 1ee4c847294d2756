"""The container image (deploy/Dockerfile): wheels built in a stage of their own, a slim
runtime without compilers, a numeric non-root user, the uid the manifests run as, and a build
context limited to what the image copies."""

from __future__ import annotations

import re
from typing import Any

from dockerfile_parse import DockerfileParser

from tests.unit.deploy.rendering import DEPLOY, OVERLAYS, REPO, pod_specs, render

Instruction = dict[str, Any]


def _stages() -> list[list[Instruction]]:
    parser = DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    stages: list[list[Instruction]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if instruction["instruction"] != "COMMENT":
            stages[-1].append(instruction)
    return stages


def _values(stage: list[Instruction], name: str) -> list[str]:
    return [item["value"] for item in stage if item["instruction"] == name]


def test_wheels_are_built_in_a_separate_stage_from_the_slim_runtime() -> None:
    build, runtime = _stages()
    assert re.fullmatch(r"python:3\.11-slim-\w+ AS build", _values(build, "FROM")[0])
    assert re.fullmatch(r"python:3\.11-slim-\w+ AS runtime", _values(runtime, "FROM")[0])
    assert any("pip wheel" in run for run in _values(build, "RUN"))
    installs = [run for run in _values(runtime, "RUN") if "pip install" in run]
    assert len(installs) == 1
    assert "--no-index --find-links /wheels" in installs[0]


def test_runtime_stage_installs_no_compilers_or_system_packages() -> None:
    _, runtime = _stages()
    for run in _values(runtime, "RUN"):
        assert not re.search(r"apt-get|apk |build-essential|gcc|g\+\+", run), run


def test_runtime_runs_as_the_numeric_non_root_user_the_manifests_expect() -> None:
    _, runtime = _stages()
    (user,) = _values(runtime, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert gid.isdigit()
    for overlay in OVERLAYS:
        for workload, pod_spec in pod_specs(render(overlay)):
            assert pod_spec["securityContext"]["runAsUser"] == int(uid), workload
            assert pod_spec["securityContext"]["runAsGroup"] == int(gid), workload


def test_build_context_admits_every_path_the_image_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    admitted = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore  # everything not admitted below is left out
    copied = {
        source
        for stage in _stages()
        for value in _values(stage, "COPY")
        if not value.startswith("--from")
        for source in value.split()[:-1]
    }
    assert copied == admitted
    assert all((REPO / path).exists() for path in copied)
