"""The committed contracts: generated from the code (no drift), valid documents, compatible
with the baseline of the published contract, and described in the operations docs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from casewire_common import topics
from casewire_dev.contracts import (
    BASELINE,
    PAYLOADS,
    SERVICES,
    baseline_breaks,
    stale_files,
    update_baseline,
    write,
)
from casewire_dev.paths import repo_root
from jsonschema import Draft202012Validator

ROOT = repo_root()
CONTRACTS = ROOT / "contracts"


def committed_schemas() -> dict[str, str]:
    return {
        f"schemas/{path.name}": path.read_text("utf-8")
        for path in sorted((CONTRACTS / "schemas").glob("*.json"))
    }


def test_committed_contracts_are_what_the_code_generates() -> None:
    # A separate process: generating builds the three apps, which configure logging globally.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "casewire-dev"), "contracts", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stale_files_names_changed_missing_and_leftover_files(tmp_path: Path) -> None:
    generated = {"schemas/a.json": "{}\n", "schemas/b.json": "[]\n", "asyncapi/x.yaml": "x: 1\n"}
    assert sorted(write(generated, tmp_path)) == sorted(generated)
    assert stale_files(generated, tmp_path) == []

    (tmp_path / "schemas" / "a.json").write_text('{"edited": true}\n')
    (tmp_path / "schemas" / "b.json").unlink()
    (tmp_path / "schemas" / "gone.json").write_text("{}\n")
    assert stale_files(generated, tmp_path) == [
        "schemas/a.json",
        "schemas/b.json",
        "schemas/gone.json",
    ]

    write(generated, tmp_path)
    assert stale_files(generated, tmp_path) == []
    assert not (tmp_path / "schemas" / "gone.json").exists()


def test_every_payload_has_a_valid_draft_2020_12_schema() -> None:
    schemas = committed_schemas()
    assert sorted(schemas) == sorted(f"schemas/{payload.name}.json" for payload in PAYLOADS)
    for text in [
        *schemas.values(),
        *(p.read_text() for p in (CONTRACTS / BASELINE).glob("*.json")),
    ]:
        schema = json.loads(text)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def test_every_reference_in_the_asyncapi_documents_resolves() -> None:
    for service in SERVICES:
        document = yaml.safe_load((CONTRACTS / "asyncapi" / f"{service.name}.yaml").read_text())
        assert document["asyncapi"] == "3.0.0"
        references = list(_references(document))
        assert references
        for reference in references:
            target: Any = document
            for part in unquote(reference).removeprefix("#/").split("/"):
                assert part in target, f"{service.name}: {reference} does not resolve"
                target = target[part]


def _references(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def test_the_current_payloads_do_not_break_consumers_of_the_baseline() -> None:
    baseline = sorted(path.name for path in (CONTRACTS / BASELINE).glob("*.json"))
    assert {"canonical-message.json", "case-event-data.json", "sla-alert-data.json"} <= set(
        baseline
    )
    breaks = baseline_breaks(committed_schemas(), CONTRACTS)
    assert breaks == {}, "\n".join(
        f"{name}: {item}" for name, found in breaks.items() for item in found
    )


def test_a_breaking_payload_change_is_reported_and_kept_out_of_the_baseline(tmp_path: Path) -> None:
    current = committed_schemas()
    (tmp_path / BASELINE).mkdir(parents=True)
    update_baseline(current, tmp_path)
    assert baseline_breaks(current, tmp_path) == {}

    canonical = json.loads(current["schemas/canonical-message.json"])
    del canonical["properties"]["language"]
    changed = {**current, "schemas/canonical-message.json": json.dumps(canonical)}
    del changed["schemas/sla-alert-data.json"]
    breaks = baseline_breaks(changed, tmp_path)
    assert {name: [item.kind for item in found] for name, found in breaks.items()} == {
        "canonical-message.json": ["property_removed"],
        "sla-alert-data.json": ["schema_removed"],
    }


def test_the_operations_docs_name_every_topic_and_event_type() -> None:
    docs = (ROOT / "docs" / "operations" / "contracts.md").read_text("utf-8")
    names = [*topics.ALL, *(topics.dlq(topic) for topic in topics.ALL)]
    names += [event_type for payload in PAYLOADS for event_type in payload.event_types]
    names += [f"contracts/schemas/{payload.name}.json" for payload in PAYLOADS]
    missing = [name for name in names if f"`{name}`" not in docs]
    assert missing == []
