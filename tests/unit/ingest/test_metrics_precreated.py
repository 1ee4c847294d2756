"""Ingest starts every known label set at 0, and its lists of reasons cover the code's."""

from __future__ import annotations

import ast
from pathlib import Path

import casewire_ingest
from casewire_common import topics
from casewire_common.metrics import new_registry
from casewire_ingest.adapters.publisher import (
    NORMALIZATION_REASONS,
    REJECTION_REASONS,
    IngestMetrics,
)

PACKAGE = Path(casewire_ingest.__file__).parent


def normalization_error_reasons() -> set[str]:
    """The literal reasons of every `NormalizationError(...)` in ingest's code."""
    reasons = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == "NormalizationError"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                reasons.add(node.args[0].value)
    return reasons


def test_every_normalization_reason_in_the_code_is_precreated() -> None:
    found = normalization_error_reasons()
    assert len(found) > 10  # the scan does find them
    assert found <= set(NORMALIZATION_REASONS), sorted(found - set(NORMALIZATION_REASONS))
    assert set(NORMALIZATION_REASONS) <= set(REJECTION_REASONS)


def test_a_fresh_ingest_exports_its_known_label_sets_at_0() -> None:
    registry = new_registry()
    IngestMetrics(registry, ["crm"])
    sample = registry.get_sample_value
    assert (
        sample("casewire_ingest_rejections_total", {"source": "meta", "reason": "bad_signature"})
        == 0
    )
    assert sample("casewire_ingest_integration_messages_total", {"integration": "crm"}) == 0
    assert sample("casewire_ingest_duplicates_total", {"platform": "generic"}) == 0
    labels = {"component": "ingest", "topic": topics.RAW, "reason": "missing_field"}
    assert sample("casewire_dead_letters_total", labels) == 0
    message = {"platform": "whatsapp", "channel": "dm", "direction": "inbound", "event": "message"}
    assert sample("casewire_ingest_messages_total", message) == 0
