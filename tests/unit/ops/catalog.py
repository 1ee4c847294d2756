"""The metrics catalog (docs/operations/metrics-catalog.yaml) and how a scrape is checked against
it: the one list dashboards, alert rules and docs are held to."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[3]
CATALOG_FILE = REPO / "docs" / "operations" / "metrics-catalog.yaml"
METRIC_TYPES = frozenset({"counter", "gauge", "histogram"})
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
# prometheus_client writes a `<family>_created` gauge beside each counter and histogram child.
CREATED_SUFFIX = "_created"


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    services: frozenset[str]
    # label -> its allowed values, or None when configuration bounds them (described in the file)
    labels: dict[str, frozenset[str] | None]
    meaning: str
    # Which label sets exist at 0 before their first event: "all", or a sentence (None: not
    # said, for gauges and unlabelled metrics).
    precreated: str | None = None

    @property
    def precreates_all(self) -> bool:
        return self.precreated == "all"

    @property
    def family(self) -> str:
        """The family name as prometheus_client's parser reports it (counters lose `_total`)."""
        if self.type == "counter":
            return self.name.removesuffix("_total")
        return self.name

    @property
    def series(self) -> frozenset[str]:
        """The series names a PromQL selector may use for this metric."""
        if self.type == "histogram":
            return frozenset(self.name + suffix for suffix in HISTOGRAM_SERIES)
        return frozenset({self.name})


@dataclass(frozen=True)
class Catalog:
    metrics: dict[str, Metric]
    scrape_metrics: dict[str, Metric]
    target_labels: frozenset[str]

    def for_service(self, service: str) -> dict[str, Metric]:
        """The service's metrics by family name."""
        return {m.family: m for m in self.metrics.values() if service in m.services}

    def metric_of_series(self, series: str) -> Metric | None:
        for metric in (*self.metrics.values(), *self.scrape_metrics.values()):
            if series in metric.series:
                return metric
        return None


class CatalogError(ValueError):
    """The catalog file is malformed."""


def _metric(entry: dict[str, object], where: str) -> Metric:
    name, kind, meaning = entry.get("name"), entry.get("type"), entry.get("meaning")
    if not isinstance(name, str) or kind not in METRIC_TYPES or not isinstance(meaning, str):
        raise CatalogError(f"{where}: needs name, type ({sorted(METRIC_TYPES)}) and meaning")
    if kind == "counter" and not name.endswith("_total"):
        raise CatalogError(f"{where}: counter {name} must be named as queried, ending in _total")
    raw_labels = entry.get("labels")
    if not isinstance(raw_labels, dict):
        raise CatalogError(f"{where}: {name} needs labels (a mapping, {{}} when none)")
    labels: dict[str, frozenset[str] | None] = {}
    for label, values in raw_labels.items():
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            labels[label] = frozenset(values)
        elif isinstance(values, str) and values.strip():
            labels[label] = None
        else:
            raise CatalogError(f"{where}: {name}{{{label}}} needs a list of values or a bound")
    services = entry.get("services", [])
    if not isinstance(services, list):
        raise CatalogError(f"{where}: {name} services must be a list")
    precreated = entry.get("precreated")
    if kind != "gauge" and labels and not (isinstance(precreated, str) and precreated.strip()):
        raise CatalogError(
            f"{where}: {name} needs precreated (`all`, or which label sets start at 0 and why"
            " not the rest)"
        )
    if kind == "gauge" and precreated is not None:
        raise CatalogError(f"{where}: {name} is a gauge: nothing to pre-create")
    return Metric(
        name,
        str(kind),
        frozenset(map(str, services)),
        labels,
        meaning,
        None if precreated is None else str(precreated),
    )


def load_catalog(path: Path = CATALOG_FILE) -> Catalog:
    document = yaml.safe_load(path.read_text("utf-8"))
    metrics = [_metric(e, f"{path.name} metrics[{i}]") for i, e in enumerate(document["metrics"])]
    scrape = [
        _metric(e, f"{path.name} scrape_metrics[{i}]")
        for i, e in enumerate(document["scrape_metrics"])
    ]
    names = [m.name for m in (*metrics, *scrape)]
    if duplicated := {n for n in names if names.count(n) > 1}:
        raise CatalogError(f"{path.name}: listed twice: {sorted(duplicated)}")
    return Catalog(
        {m.name: m for m in metrics},
        {m.name: m for m in scrape},
        frozenset(document["target_labels"]),
    )


@dataclass
class ExportedFamily:
    type: str
    sampled: bool
    # label -> values seen on the family's samples (`le` of histogram buckets left out)
    labels: dict[str, set[str]]


def exported_families(exposition: str) -> dict[str, ExportedFamily]:
    """The families of a /metrics scrape, by name, with the labels their samples carry."""
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    exported: dict[str, ExportedFamily] = {}
    for name, family in families.items():
        parent = families.get(name.removesuffix(CREATED_SUFFIX))
        if name.endswith(CREATED_SUFFIX) and parent is not None and parent.type != "gauge":
            continue
        labels: dict[str, set[str]] = {}
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label != "le":
                    labels.setdefault(label, set()).add(value)
        exported[name] = ExportedFamily(family.type, bool(family.samples), labels)
    return exported


def scrape_differences(catalog: Catalog, service: str, exposition: str) -> list[str]:
    """How one service's scrape and the catalog disagree; empty when they agree."""
    expected = catalog.for_service(service)
    exported = exported_families(exposition)
    problems = [
        f"exported but not catalogued: {name}{'_total' if family.type == 'counter' else ''}"
        f" ({family.type}, labels {sorted(family.labels)})"
        for name, family in sorted(exported.items())
        if name not in expected
    ]
    for family_name, metric in sorted(expected.items()):
        family = exported.get(family_name)
        if family is None:
            problems.append(f"catalogued but not exported: {metric.name} ({metric.type})")
            continue
        if family.type != metric.type:
            problems.append(f"{metric.name}: exported as {family.type}, catalogued {metric.type}")
        if family.sampled and set(family.labels) != set(metric.labels):
            problems.append(
                f"{metric.name}: exported labels {sorted(family.labels)},"
                f" catalogued {sorted(metric.labels)}"
            )
        for label, seen in sorted(family.labels.items()):
            allowed = metric.labels.get(label)
            if allowed is not None and (unknown := seen - allowed):
                problems.append(
                    f"{metric.name}{{{label}}}: values {sorted(unknown)} not catalogued"
                )
    return problems


def missing_precreated(
    catalog: Catalog, service: str, exposition: str, configured: dict[str, frozenset[str]]
) -> list[str]:
    """The label sets of the service's `precreated: all` metrics that a scrape lacks: every
    combination of their listed values, `configured` giving the values of labels that
    configuration bounds (teams, integrations). Empty when all are there."""
    present: dict[str, set[frozenset[tuple[str, str]]]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name.endswith(("_bucket", CREATED_SUFFIX)):
                continue
            present.setdefault(family.name, set()).add(frozenset(sample.labels.items()))
    problems = []
    for metric in catalog.for_service(service).values():
        if not metric.precreates_all:
            continue
        names = sorted(metric.labels)
        values = [sorted(metric.labels[n] or configured[n]) for n in names]
        seen = present.get(metric.family, set())
        problems += [
            f"{metric.name}{dict(zip(names, combination, strict=True))} not pre-created"
            for combination in itertools.product(*values)
            if frozenset(zip(names, combination, strict=True)) not in seen
        ]
    return problems
