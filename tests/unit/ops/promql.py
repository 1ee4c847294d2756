"""PromQL as dashboards and alert rules write it, checked against the metrics catalog with a real
parser (promql-parser, the Rust parser's Python binding)."""

from __future__ import annotations

import re

import promql_parser

from tests.unit.ops.catalog import Catalog

# Grafana's interval variables stand where PromQL wants a duration; any duration parses the same.
GRAFANA_DURATION = re.compile(
    r"\$(?:__rate_interval|__interval|__range)\b|\$\{(?:__rate_interval|__interval|__range)\}"
)


def as_promql(expression: str) -> str:
    """A dashboard expression with Grafana's duration variables replaced by a duration.

    Other variables (`$team`) may only appear inside label-matcher strings, where they parse.
    """
    return GRAFANA_DURATION.sub("5m", expression)


def _selectors_under(node: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(child: promql_parser.Expr) -> None:
        if isinstance(child, promql_parser.VectorSelector):
            found.append(child)

    promql_parser.walk(node, visit)
    return found


def _grouping_labels(node: promql_parser.Expr) -> list[tuple[list[str], list[promql_parser.Expr]]]:
    """(labels, operands) of every `by (...)` aggregation and `on (...)` vector match."""
    groupings: list[tuple[list[str], list[promql_parser.Expr]]] = []

    def visit(child: promql_parser.Expr) -> None:
        if isinstance(child, promql_parser.AggregateExpr) and child.modifier is not None:
            if child.modifier.type == promql_parser.AggModifierType.By:
                groupings.append((list(child.modifier.labels), [child.expr]))
        elif isinstance(child, promql_parser.BinaryExpr) and child.modifier is not None:
            matching = child.modifier.matching
            if matching is not None and matching.type == promql_parser.LabelModifierType.Include:
                # Both sides are matched on the labels: each must carry them.
                groupings.append((list(matching.labels), [child.lhs]))
                groupings.append((list(matching.labels), [child.rhs]))

    promql_parser.walk(node, visit)
    return groupings


def catalog_problems(catalog: Catalog, expression: str) -> list[str]:
    """What an expression uses that the catalog does not have: unknown series, unknown labels
    in selectors, and `by`/`on` labels that none of the grouped metrics carries."""
    try:
        tree = promql_parser.parse(as_promql(expression))
    except ValueError as error:
        return [f"not valid PromQL ({error}): {expression}"]
    problems = []
    for selector in _selectors_under(tree):
        if selector.name is None:
            problems.append(f"a selector without a metric name: {expression}")
            continue
        allowed = _labels_of(catalog, [selector])
        if allowed is None:
            problems.append(f"{selector.name} is not in the metrics catalog")
            continue
        problems.extend(
            f"{selector.name} has no label {matcher.name}"
            for matcher in selector.matchers.matchers
            if matcher.name not in allowed
        )
    for labels, operands in _grouping_labels(tree):
        grouped = [selector for operand in operands for selector in _selectors_under(operand)]
        if not grouped:  # a number: nothing to match
            continue
        allowed = _labels_of(catalog, grouped) or set()
        names = sorted({str(selector.name) for selector in grouped})
        problems.extend(
            f"grouping by {label}, a label none of {names} has"
            for label in labels
            if label not in allowed
        )
    return problems


def _labels_of(catalog: Catalog, selected: list[promql_parser.VectorSelector]) -> set[str] | None:
    """The labels the selected series may carry; None when one is not catalogued."""
    labels = set(catalog.target_labels)
    for selector in selected:
        metric = catalog.metric_of_series(str(selector.name))
        if metric is None:
            return None
        labels |= set(metric.labels)
        if metric.type == "histogram" and str(selector.name).endswith("_bucket"):
            labels.add("le")
    return labels
