"""The Grafana dashboards: current schema, one `datasource` variable every panel queries, and
PromQL (theirs and the alert rules') that parses and uses only catalogued metrics and labels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from casewire_sla.domain.policies import CLOCKS, load_policy_file

from tests.unit.ops.catalog import REPO, load_catalog
from tests.unit.ops.promql import catalog_problems
from tests.unit.ops.promtool import alert_rules

DASHBOARDS = sorted((REPO / "deploy" / "components" / "monitoring" / "dashboards").glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

Dashboard = dict[str, Any]


def load(path: Path) -> Dashboard:
    dashboard: Dashboard = json.loads(path.read_text("utf-8"))
    return dashboard


def panels(dashboard: Dashboard) -> Iterator[dict[str, Any]]:
    """Every panel that queries, rows' nested (collapsed) panels included."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def test_there_are_dashboards_with_distinct_uids_and_titles() -> None:
    assert len(DASHBOARDS) >= 3
    dashboards = [load(path) for path in DASHBOARDS]
    assert (
        len({d["uid"] for d in dashboards})
        == len({d["title"] for d in dashboards})
        == len(DASHBOARDS)
    )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_has_a_current_schema_and_a_prometheus_datasource_variable(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["schemaVersion"] >= 39
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_panel_queries_the_datasource_variable(path: Path) -> None:
    for panel in panels(load(path)):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_panels_do_not_overlap(path: Path) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in load(path)["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_queries_use_only_catalogued_metrics(path: Path) -> None:
    catalog = load_catalog()
    dashboard = load(path)
    expressions = [
        (panel["title"], target["expr"])
        for panel in panels(dashboard)
        for target in panel["targets"]
    ] + [
        (
            f"variable {variable['name']}",
            variable["definition"].removeprefix("label_values(").split(",")[0],
        )
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    problems = [
        f"{title}: {problem}"
        for title, expression in expressions
        for problem in catalog_problems(catalog, expression)
    ]
    assert not problems, "\n".join(problems)


def test_alert_rules_use_only_catalogued_metrics() -> None:
    catalog = load_catalog()
    problems = [
        f"{rule['alert']}: {problem}"
        for rule in alert_rules()
        for problem in catalog_problems(catalog, rule["expr"])
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        (
            "sum(rate(casewire_router_queue_length[$__rate_interval]))",
            "casewire_router_queue_length is not in the metrics catalog",
        ),
        (
            'sum by (team) (casewire_router_assignments_total{agent="amal"})',
            "casewire_router_assignments_total has no label agent",
        ),
        ("rate(casewire_sla_breaches_total[5m]", "not valid PromQL"),
        ('{__name__=~"casewire_.+"}', "a selector without a metric name"),
        ("casewire_ingest_publish_seconds_total", "is not in the metrics catalog"),
        (
            "sum by (teams) (rate(casewire_router_assignments_total[5m]))",
            "grouping by teams, a label none of ['casewire_router_assignments_total'] has",
        ),
        (
            "casewire_sla_open_clocks / on (team) casewire_router_agents_online",
            "grouping by team, a label none of",
        ),
    ],
)
def test_the_query_check_reports_what_the_catalog_does_not_have(
    expression: str, problem: str
) -> None:
    problems = catalog_problems(load_catalog(), expression)
    assert any(problem in found for found in problems), problems


def test_histogram_series_and_grafana_variables_are_accepted() -> None:
    expression = (
        "histogram_quantile(0.9, sum by (le) (rate(casewire_sla_response_seconds_bucket"
        '{clock="first_response", team=~"$team", job="casewire-sla"}[$__rate_interval])))'
        " / sum(increase(casewire_sla_response_seconds_count[$__range]))"
    )
    assert catalog_problems(load_catalog(), expression) == []


def test_sla_target_lines_are_the_targets_of_the_policy_file() -> None:
    """The SLA dashboard draws each clock's targets as threshold lines: they must follow
    config/sla-policies.yaml (a target changed there and not here would mislead)."""
    policies = load_policy_file(REPO / "config" / "sla-policies.yaml").policies
    dashboard = load(
        REPO / "deploy" / "components" / "monitoring" / "dashboards" / "casewire-sla.json"
    )
    drawn = 0
    for clock in CLOCKS:
        targets = sorted(
            {
                target.total_seconds()
                for policy in policies
                if (target := getattr(policy, clock)) is not None
            }
        )
        for panel in panels(dashboard):
            if (
                f'clock="{clock}"' in panel["targets"][0]["expr"]
                and "histogram_quantile" in panel["targets"][0]["expr"]
            ):
                steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
                lines = [step["value"] for step in steps if step["value"] is not None]
                assert lines == targets, (
                    f"{panel['title']}: lines {lines}, policy targets {targets}"
                )
                drawn += 1
    assert drawn == 2 * len(CLOCKS)
