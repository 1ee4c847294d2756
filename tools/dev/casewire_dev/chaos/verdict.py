"""The chaos run's verdict: one row per check (or reported figure), printed as a table and
written to `chaos/results.json` as `{name: {value, unit}}`, the shape of `bench/results.json`.

A row with `ok=None` is a figure the run reports (republished records, timings) without a
pass/fail of its own; the run fails when any row has `ok=False`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path("chaos") / "results.json"


@dataclass(frozen=True)
class Verdict:
    name: str  # also the key in results.json
    value: float
    unit: str
    ok: bool | None  # None: reported, not checked
    detail: str = ""  # on a failure, the first offending ids


def passed(verdicts: Sequence[Verdict]) -> bool:
    """Whether no row failed."""
    return all(verdict.ok is not False for verdict in verdicts)


def results(verdicts: Sequence[Verdict]) -> dict[str, dict[str, float | str]]:
    """`{name: {value, unit}}` in row order."""
    return {verdict.name: {"value": verdict.value, "unit": verdict.unit} for verdict in verdicts}


def write_results(verdicts: Sequence[Verdict], path: Path = RESULTS) -> None:
    """Replace `path` with this run's figures (a run measures every row, so nothing is merged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    document = json.dumps(results(verdicts), indent=2, ensure_ascii=False)
    temporary.write_text(document + "\n", "utf-8")
    temporary.replace(path)


def format_table(verdicts: Sequence[Verdict], detail_width: int = 100) -> str:
    """check | value | unit | verdict | detail, one line per row, details cut to a width."""
    rows = [("check", "value", "unit", "verdict", "detail")]
    for verdict in verdicts:
        detail = verdict.detail
        if len(detail) > detail_width:
            detail = detail[: detail_width - 1] + "…"
        rows.append((verdict.name, _number(verdict.value), verdict.unit, _mark(verdict.ok), detail))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = []
    for index, (name, value, unit, mark, detail) in enumerate(rows):
        lines.append(
            f"{name:<{widths[0]}}  {value:>{widths[1]}}  {unit:<{widths[2]}}"
            f"  {mark:<{widths[3]}}  {detail}".rstrip()
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in [*widths, 6]))
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _mark(ok: bool | None) -> str:
    return "info" if ok is None else "pass" if ok else "FAIL"
