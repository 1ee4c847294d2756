"""The catalog file's checks, on scrapes built with prometheus_client (the services' library):
what the integration test reports when a service and the catalog disagree."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.unit.ops.catalog import CatalogError, load_catalog, scrape_differences


def router_like_scrape() -> str:
    """A scrape shaped like the router's, with three mistakes in it."""
    registry = CollectorRegistry()
    Counter("casewire_router_messages_total", "", ["direction"], registry=registry).labels(
        "sideways"
    ).inc()
    Gauge("casewire_router_rogue", "", registry=registry).set(1)
    Histogram("casewire_router_batch_seconds", "", ["team"], registry=registry).labels(
        "care"
    ).observe(0.1)
    return generate_latest(registry).decode()


def test_a_scrape_that_disagrees_with_the_catalog_is_reported_difference_by_difference() -> None:
    problems = scrape_differences(load_catalog(), "router", router_like_scrape())
    assert "exported but not catalogued: casewire_router_rogue (gauge, labels [])" in problems
    assert (
        "casewire_router_messages_total{direction}: values ['sideways'] not catalogued" in problems
    )
    assert "casewire_router_batch_seconds: exported labels ['team'], catalogued []" in problems
    assert "catalogued but not exported: casewire_router_duplicates_total (counter)" in problems
    # prometheus_client's `_created` companions belong to their counter or histogram.
    companions = ("casewire_router_messages_created", "casewire_router_batch_seconds_created")
    assert not any(name in problem for problem in problems for name in companions)


def test_a_family_without_samples_is_checked_for_presence_and_type_only() -> None:
    registry = CollectorRegistry()
    Counter("casewire_dead_letters_total", "", ["component", "topic", "reason"], registry=registry)
    problems = scrape_differences(load_catalog(), "sla", generate_latest(registry).decode())
    assert not any("casewire_dead_letters_total" in problem for problem in problems)


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("{name: casewire_x, type: counter, labels: {}, meaning: m}", "must be named as queried"),
        ("{name: casewire_x, type: summary, labels: {}, meaning: m}", "needs name, type"),
        ("{name: casewire_x, type: gauge, meaning: m}", "needs labels"),
        ("{name: casewire_x, type: gauge, labels: {team: []}, meaning: m}", "{team} needs a list"),
        (
            "{name: casewire_x_total, type: counter, labels: {team: [a]}, meaning: m}",
            "needs precreated",
        ),
        (
            "{name: casewire_x, type: gauge, labels: {team: [a]}, precreated: all, meaning: m}",
            "nothing to pre-create",
        ),
    ],
)
def test_a_malformed_catalog_entry_is_refused_with_its_place(
    tmp_path: Path, entry: str, error: str
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(f"target_labels: [job]\nscrape_metrics: []\nmetrics:\n  - {entry}\n", "utf-8")
    with pytest.raises(CatalogError, match=r"catalog\.yaml metrics\[0\]") as raised:
        load_catalog(path)
    assert error in str(raised.value)


def test_a_metric_listed_twice_is_refused(tmp_path: Path) -> None:
    entry = "{name: casewire_x, type: gauge, labels: {}, meaning: m}"
    path = tmp_path / "catalog.yaml"
    path.write_text(
        f"target_labels: [job]\nscrape_metrics: []\nmetrics:\n  - {entry}\n  - {entry}\n", "utf-8"
    )
    with pytest.raises(CatalogError, match="listed twice"):
        load_catalog(path)


def test_no_metric_label_has_the_name_of_a_target_label() -> None:
    """Prometheus would overwrite it with the target's (and rename ours `exported_<name>`): the
    pipeline dashboard once showed every refusal as coming from the endpoint `http`."""
    catalog = load_catalog()
    assert {"job", "instance", "namespace", "pod", "container", "service", "endpoint"} <= (
        catalog.target_labels
    )
    colliding = {
        f"{metric.name}{{{label}}}"
        for metric in (*catalog.metrics.values(), *catalog.scrape_metrics.values())
        for label in metric.labels
        if label in catalog.target_labels
    }
    assert not colliding, f"labels named like a target label: {sorted(colliding)}"
