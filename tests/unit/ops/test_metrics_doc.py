"""docs/operations/metrics.md lists the same metrics as the catalog, with the same types, labels
and label values: operators read the tables, tests read the YAML."""

from __future__ import annotations

import re

from tests.unit.ops.catalog import REPO, Metric, load_catalog

METRICS_DOC = REPO / "docs" / "operations" / "metrics.md"
ROW = re.compile(
    r"^\| `(?P<name>[a-z_:][a-z0-9_:]*)` \| (?P<type>\w+) \| (?P<labels>[^|]*) \|", re.M
)
LABEL = re.compile(r"`(?P<label>\w+)`: (?P<values>[^<]*)")


def documented_rows(text: str) -> dict[str, tuple[str, dict[str, str]]]:
    """name -> (type, label -> its value text) of every metric row of the doc's tables."""
    rows: dict[str, tuple[str, dict[str, str]]] = {}
    for row in ROW.finditer(text):
        labels = {m["label"]: m["values"].strip() for m in LABEL.finditer(row["labels"])}
        assert row["name"] not in rows, f"{row['name']} is documented twice"
        rows[row["name"]] = (row["type"], labels)
    return rows


def row_differences(metric: Metric, kind: str, labels: dict[str, str]) -> list[str]:
    problems = []
    if kind != metric.type:
        problems.append(f"{metric.name}: documented as {kind}, catalogued {metric.type}")
    if set(labels) != set(metric.labels):
        problems.append(
            f"{metric.name}: documented labels {sorted(labels)}, catalogued {sorted(metric.labels)}"
        )
    for label, values in metric.labels.items():
        if values is not None and label in labels:
            listed = {value.strip() for value in labels[label].split(",")}
            if listed != values:
                problems.append(f"{metric.name}{{{label}}}: documented {sorted(listed)}")
    return problems


def doc_differences(text: str) -> list[str]:
    catalog = load_catalog()
    metrics = {**catalog.metrics, **catalog.scrape_metrics}
    rows = documented_rows(text)
    problems = [f"documented, not catalogued: {name}" for name in sorted(set(rows) - set(metrics))]
    problems += [f"catalogued, not documented: {name}" for name in sorted(set(metrics) - set(rows))]
    for name in sorted(set(rows) & set(metrics)):
        problems += row_differences(metrics[name], *rows[name])
    return problems


def test_the_metrics_doc_agrees_with_the_catalog() -> None:
    problems = doc_differences(METRICS_DOC.read_text("utf-8"))
    assert not problems, "docs/operations/metrics.md disagrees with the catalog:\n" + "\n".join(
        problems
    )


def test_a_doc_row_with_another_type_or_labels_is_reported() -> None:
    text = METRICS_DOC.read_text("utf-8")
    row = re.search(r"^\| `casewire_router_cases_created_total` .*$", text, re.M)
    assert row is not None
    changed = row[0].replace("| counter |", "| gauge |").replace("P1, P2, P3, P4", "P1, P2")
    problems = doc_differences(text.replace(row[0], changed))
    assert problems == [
        "casewire_router_cases_created_total: documented as gauge, catalogued counter",
        "casewire_router_cases_created_total{priority}: documented ['P1', 'P2']",
    ]
    dropped = doc_differences(text.replace(row[0] + "\n", ""))
    assert dropped == ["catalogued, not documented: casewire_router_cases_created_total"]
