"""What a benchmark produces: figures (`metric`), the statistics they are made of, and
`bench/results.json`, where every run records them; or `BenchError`, and no figure.

`bench/results.json` maps a metric name to `{"value": number, "unit": string}`. Every run
overwrites only the metrics it measures, so benchmarks added later keep each other's figures.
Every benchmark module imports this one; it imports none of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path("bench") / "results.json"

Metric = dict[str, float | int | str]
Results = dict[str, Metric]

# How values print: the unit decides the precision.
_DECIMALS = {"ratio": 3, "msgs/s": 0, "req/s": 0, "count": 0, "bytes": 0, "s": 2, "ms": 1}


class BenchError(RuntimeError):
    """A run that did not produce what it had to: no figure is written."""


def metric(value: float, unit: str) -> Metric:
    decimals = _DECIMALS.get(unit, 3)
    rounded: float | int = round(value) if decimals == 0 else round(value, decimals)
    return {"value": rounded, "unit": unit}


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or 0 when there is nothing to divide by."""
    return numerator / denominator if denominator > 0 else 0.0


def percentile(values: Sequence[float], quantile: float) -> float:
    """The nearest-rank `quantile` (0..1) of `values` (the smallest value with at least that
    share of the values at or below it: always an observed value), 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(quantile * len(ordered))))
    return ordered[rank - 1]


def load_results(path: Path) -> Results:
    """The figures already recorded; a missing or unreadable file holds none."""
    try:
        document: Any = json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    if not isinstance(document, dict):
        return {}
    return {
        str(name): entry
        for name, entry in document.items()
        if isinstance(entry, dict) and "value" in entry and "unit" in entry
    }


def merge_results(existing: Mapping[str, Metric], measured: Mapping[str, Metric]) -> Results:
    """Others' figures kept, ours replaced; existing keys keep their place, new ones follow."""
    merged: Results = {name: dict(entry) for name, entry in existing.items()}
    for name, entry in measured.items():
        merged[name] = dict(entry)
    return merged


def write_results(path: Path, measured: Mapping[str, Metric]) -> Results:
    merged = merge_results(load_results(path), measured)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", "utf-8")
    temporary.replace(path)
    return merged


def format_value(entry: Mapping[str, Any]) -> str:
    value = entry["value"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    decimals = _DECIMALS.get(str(entry["unit"]), 3)
    return f"{value:,.{decimals}f}"


def format_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """metric | value | unit, values right-aligned."""
    rows = [("metric", "value", "unit")] + [
        (name, format_value(entry), str(entry["unit"])) for name, entry in results.items()
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = []
    for index, (name, value, unit) in enumerate(rows):
        lines.append(f"{name:<{widths[0]}}  {value:>{widths[1]}}  {unit:<{widths[2]}}".rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
