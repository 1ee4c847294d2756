"""The pure parts of the SLA benchmark: seeded rows, the policy file, the breach check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from casewire_common.events import (
    CASE_CREATED,
    CASE_RESPONDED,
    CaseEventData,
    decode_event,
)
from casewire_dev import bench_sla
from casewire_dev.results import BenchError
from casewire_sla.domain.policies import load_policy_file

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_spread_is_even_and_starts_at_start() -> None:
    instants = bench_sla.spread(T0, 30.0, 3)
    assert instants == [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)]
    assert bench_sla.spread(T0, 30.0, 0) == []


def test_seed_rows_give_one_running_clock_and_one_breach_timer_per_instant() -> None:
    due = bench_sla.spread(T0, 10.0, 2)
    clocks, timers = bench_sla.seed_rows(41, due)
    assert [row[0] for row in clocks] == [41, 42]
    assert len({row[1] for row in clocks}) == 2
    assert all(row[1].startswith(bench_sla.SEED_PREFIX) for row in clocks)
    first = dict(zip(bench_sla.CLOCK_COLUMNS, clocks[0], strict=True))
    assert first["policy_id"] == bench_sla.POLICY_ID
    assert first["due_at"] == T0
    assert first["started_at"] == T0 - timedelta(seconds=bench_sla.TARGET_SECONDS)
    assert timers == [(41, "breach", 1.0, due[0]), (42, "breach", 1.0, due[1])]


def test_policy_file_is_valid_and_holds_the_seeded_policy(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(bench_sla.POLICY_YAML, "utf-8")
    policies = load_policy_file(path)
    assert [policy.id for policy in policies.policies] == [bench_sla.POLICY_ID]


def test_case_events_decode_as_case_events() -> None:
    key, headers, value = bench_sla.case_event(CASE_CREATED, "c-1", T0, None)
    event = decode_event(headers, value, key.encode())
    assert (key, event.type, event.subject) == ("c-1", CASE_CREATED, "c-1")
    assert CaseEventData.model_validate(event.data).case.first_response_at is None
    responded = T0 + timedelta(seconds=1)
    key, headers, value = bench_sla.case_event(CASE_RESPONDED, "c-1", T0, responded)
    data = CaseEventData.model_validate(decode_event(headers, value, key.encode()).data)
    assert data.first_response is True
    assert data.case.first_response_at == responded


def _expected() -> dict[str, datetime]:
    return {"a": T0, "b": T0 + timedelta(seconds=1)}


def _ms(at: datetime, plus: float = 0.0) -> int:
    return round((at.timestamp() + plus) * 1000)


def test_check_breaches_measures_record_time_minus_due_at() -> None:
    lateness = bench_sla.check_breaches(_expected(), [("b", _ms(T0, 1.5)), ("a", _ms(T0, 0.25))])
    assert sorted(lateness.seconds) == pytest.approx([0.25, 0.5])
    assert lateness.worst == pytest.approx(0.5)
    assert lateness.quantile(0.99) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("breaches", "message"),
    [
        ([("a", _ms(T0))], "never breached"),
        ([("a", _ms(T0)), ("a", _ms(T0)), ("b", _ms(T0))], "more than once"),
        ([("a", _ms(T0)), ("b", _ms(T0)), ("z", _ms(T0))], "not due in the window"),
    ],
)
def test_check_breaches_fails_unless_exactly_one_per_window_clock(
    breaches: list[tuple[str, int]], message: str
) -> None:
    with pytest.raises(BenchError, match=message):
        bench_sla.check_breaches(_expected(), breaches)


def test_only_sla_selects_the_sla_benchmark() -> None:
    from casewire_dev import bench

    assert bench.parse_options(["--only", "sla"]).only == "sla"


def test_breakdown_splits_each_lateness_at_the_instant_its_timer_fired() -> None:
    fired_at = {"a": T0 + timedelta(seconds=0.1), "b": T0 + timedelta(seconds=1.25)}
    split = bench_sla.breakdown(_expected(), fired_at, [("a", _ms(T0, 0.25)), ("b", _ms(T0, 1.5))])
    assert sorted(split.fired.seconds) == pytest.approx([0.1, 0.25])
    assert sorted(split.published.seconds) == pytest.approx([0.15, 0.25])


def test_check_breaches_fails_on_an_alert_before_its_clock_fell_due() -> None:
    # E.g. the alert of an earlier run's clock of the same case id: never this run's.
    with pytest.raises(BenchError, match="before its clock fell due"):
        bench_sla.check_breaches(_expected(), [("a", _ms(T0, -75.0)), ("b", _ms(T0, 1.0))])
    on_time = bench_sla.check_breaches(_expected(), [("a", _ms(T0, -0.0004)), ("b", _ms(T0, 1))])
    assert on_time.quantile(0.5) == pytest.approx(0.0, abs=0.001)
