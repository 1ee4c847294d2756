"""PromQL as dashboards and alert rules write it, checked against the metrics catalog with a real
parser (promql-parser, the Rust parser's Python binding)."""

from __future__ import annotations

import re

import promql_parser

from tests.unit.ops.catalog import Catalog

# Grafana's interval variables stand where PromQL wants a duration; any duration parses the same.
GRAFANA_DURATION = re.compile(r"\$(?:__rate_interval|__interval|__range)\b|\$\{(?:__rate_interval|__interval|__range)\}")


def as_promql(expression: str) -> str:
    """A dashboard expression with Grafana's duration variables replaced by a duration.

    Other variables (`$team`) may only appear inside label-matcher strings, where they parse.
    """
    return GRAFANA_DURATION.sub("5m", expression)


def selectors(expression: str) -> list[promql_parser.VectorSelector]:
    """Every vector selector of an expression; a syntax error raises ValueError."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(as_promql(expression)), visit)
    return found


def catalog_problems(catalog: Catalog, expression: str) -> list[str]:
    """What an expression uses that the catalog does not have: unknown series, unknown labels."""
    try:
        used = selectors(expression)
    except ValueError as error:
        return [f"not valid PromQL ({error}): {expression}"]
    problems = []
    for selector in used:
        if selector.name is None:
            problems.append(f"a selector without a metric name: {expression}")
            continue
        metric = catalog.metric_of_series(selector.name)
        if metric is None:
            problems.append(f"{selector.name} is not in the metrics catalog")
            continue
        allowed = set(metric.labels) | catalog.target_labels
        if metric.type == "histogram" and selector.name.endswith("_bucket"):
            allowed.add("le")
        problems.extend(
            f"{selector.name} has no label {matcher.name}"
            for matcher in selector.matchers.matchers
            if matcher.name not in allowed
        )
    return problems
