"""The manifests and the Kustomize inputs pass yamllint with the committed settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.unit.deploy.rendering import DEPLOY, REPO

CONFIG = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
LINTED = sorted([*DEPLOY.rglob("*.yaml"), REPO / "config" / "kustomization.yaml"])


def _problems(path: Path) -> list[str]:
    return [
        f"{path.name}:{problem.line}: {problem.desc}"
        for problem in linter.run(path.read_text(), CONFIG, str(path))
    ]


@pytest.mark.parametrize("path", LINTED, ids=lambda path: str(path.relative_to(REPO)))
def test_manifest_passes_yamllint(path: Path) -> None:
    assert _problems(path) == []


def test_yamllint_reports_a_duplicate_key(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Service\nkind: Deployment\n")
    assert _problems(broken) == ['broken.yaml:2: duplication of key "kind" in mapping']
