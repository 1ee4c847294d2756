"""Response-time metrics: bounded labels, business vs calendar time, attainment, time to breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from casewire_sla.adapters.metrics import (
    SlaMetrics,
    response_labels,
    response_times,
)
from casewire_sla.clock_service import CommittedChanges, FiredAlert, Fulfilment
from casewire_sla.domain.calendars import Pause, elapsed_with_pauses
from casewire_sla.domain.clock_record import ClockRecord
from casewire_sla.domain.policies import parse_policy_set
from casewire_sla.domain.roster import parse_roster
from prometheus_client import CollectorRegistry

# Monday 2026-03-02 17:00 in Athens (15:00 UTC): one hour before closing.
STARTED = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
OFFICE = parse_policy_set(
    "version: 1\n"
    "calendars: [{id: office, timezone: Europe/Athens, hours: {mon-fri: ['09:00-18:00']}}]\n"
    "policies: [{id: p, calendar: office, first_response: 2h}]\n"
).calendar("office")


def record(**changes: object) -> ClockRecord:
    fields: dict[str, object] = {
        "id": 1,
        "case_id": "c1",
        "clock": "first_response",
        "policy_id": "p",
        "calendar_id": "office",
        "target_seconds": 7200,
        "started_at": STARTED,
        "due_at": STARTED + timedelta(hours=17),
        "team": "care",
        "priority": "P2",
        "platform": "instagram",
        "channel": "dm",
    }
    fields.update(changes)
    return ClockRecord(**fields)  # type: ignore[arg-type]


def fulfilment(clock: ClockRecord, at: datetime) -> Fulfilment:
    return Fulfilment(clock, at, elapsed_with_pauses(OFFICE, clock.started_at, clock.pauses, at))


def test_labels_come_from_the_stored_case_and_stay_within_the_contract_enums() -> None:
    assert response_labels(record()) == {
        "clock": "first_response",
        "policy": "p",
        "team": "care",
        "priority": "P2",
        "platform": "instagram",
        "channel": "dm",
    }
    # Not stored (clocks from before migration 0003) or outside the contract: "unknown".
    odd = record(platform=None, channel="carrier-pigeon", priority="P9", team="")
    assert response_labels(odd) == {
        "clock": "first_response",
        "policy": "p",
        "team": "unknown",
        "priority": "unknown",
        "platform": "unknown",
        "channel": "unknown",
    }


def test_overnight_reply_counts_open_hours_as_business_time_and_all_hours_as_calendar() -> None:
    # Reply Tuesday 10:00 Athens: 1 h on Monday + 1 h on Tuesday open, 17 h on the wall.
    done = fulfilment(record(), datetime(2026, 3, 3, 8, 0, tzinfo=UTC))
    assert response_times(done) == {"business": 7200.0, "calendar": 17 * 3600.0}
    assert done.within_target  # exactly at the target counts as met
    later = fulfilment(record(), datetime(2026, 3, 3, 8, 0, 1, tzinfo=UTC))
    assert not later.within_target
    assert (done.outcome, later.outcome) == ("met", "breached")


def test_pauses_leave_business_time_but_not_calendar_time() -> None:
    paused = record(
        clock="resolution",
        pauses=(Pause(STARTED + timedelta(minutes=10), STARTED + timedelta(minutes=40)),),
    )
    done = fulfilment(paused, STARTED + timedelta(minutes=50))
    assert response_times(done) == {"business": 1200.0, "calendar": 3000.0}


def test_fulfilments_feed_both_histograms_and_the_attainment_counter() -> None:
    registry = CollectorRegistry()
    metrics = SlaMetrics(registry)
    met = fulfilment(record(), STARTED + timedelta(minutes=30))
    missed = fulfilment(
        record(clock="next_response", target_seconds=60), STARTED + timedelta(hours=1)
    )
    metrics.record_batch(CommittedChanges(fulfilled=[met, missed]))
    labels = response_labels(record())
    sample = registry.get_sample_value
    assert sample("casewire_sla_response_seconds_sum", {**labels, "time": "business"}) == 1800
    assert sample("casewire_sla_response_seconds_sum", {**labels, "time": "calendar"}) == 1800
    base = {"policy": "p", "team": "care", "priority": "P2"}
    counter = "casewire_sla_clocks_fulfilled_total"
    assert sample(counter, {**base, "clock": "first_response", "within_target": "true"}) == 1
    assert sample(counter, {**base, "clock": "next_response", "within_target": "false"}) == 1


def test_time_to_breach_is_set_per_clock_and_removed_when_none_runs() -> None:
    registry = CollectorRegistry()
    metrics = SlaMetrics(registry)
    now = STARTED
    metrics.set_time_to_breach({"resolution": now + timedelta(seconds=90)}, now)
    gauge = "casewire_sla_time_to_breach_seconds"
    assert registry.get_sample_value(gauge, {"clock": "resolution"}) == 90
    assert registry.get_sample_value(gauge, {"clock": "first_response"}) is None
    metrics.set_time_to_breach({"resolution": now - timedelta(seconds=2)}, now)
    assert registry.get_sample_value(gauge, {"clock": "resolution"}) == -2
    metrics.set_time_to_breach({}, now)
    assert registry.get_sample_value(gauge, {"clock": "resolution"}) is None


def test_a_contract_and_an_additive_policy_breaching_the_same_case_count_apart() -> None:
    registry = CollectorRegistry()
    metrics = SlaMetrics(registry)
    contract = record(policy_id="high")
    additive = record(id=2, policy_id="public-x", additive=True)
    metrics.record_batch(
        CommittedChanges(
            fired=[
                FiredAlert(contract, "breach", 1.0, late=False),
                FiredAlert(additive, "breach", 1.0, late=False),
            ]
        )
    )
    base = {"clock": "first_response", "team": "care", "priority": "P2"}
    sample = registry.get_sample_value
    assert sample("casewire_sla_breaches_total", {**base, "policy": "high"}) == 1
    assert sample("casewire_sla_breaches_total", {**base, "policy": "public-x"}) == 1


def test_a_started_clock_has_its_alert_and_fulfilment_series_at_0_before_they_happen() -> None:
    """So that rate() and increase() see a clock's first breach or late alert: a series born at
    its first event has no sample before it."""
    registry = CollectorRegistry()
    metrics = SlaMetrics(registry)
    sample = registry.get_sample_value
    assert sample("casewire_sla_late_alerts_total", {"clock": "next_response"}) == 0
    assert (
        sample("casewire_sla_provisional_alerts_total", {"clock": "resolution", "kind": "breach"})
        == 0
    )
    labels = {"clock": "first_response", "policy": "p", "team": "care", "priority": "P2"}
    assert sample("casewire_sla_breaches_total", labels) is None
    metrics.record_batch(CommittedChanges(started=[record()]))
    assert sample("casewire_sla_clocks_started_total", labels) == 1
    for counter in (
        "casewire_sla_breaches_total",
        "casewire_sla_warnings_total",
        "casewire_sla_breaches_retracted_total",
    ):
        assert sample(counter, labels) == 0, counter
    for met in ("true", "false"):
        assert sample("casewire_sla_clocks_fulfilled_total", {**labels, "within_target": met}) == 0
    response = {**labels, "platform": "instagram", "channel": "dm", "time": "calendar"}
    assert sample("casewire_sla_response_seconds_count", response) == 0


ROSTER = parse_roster("""
agents:
  - {id: amal, teams: [care, shipping], languages: [en], capacity: 5, online: true}
""")


def agent_seconds(registry: CollectorRegistry, suffix: str, **labels: str) -> float | None:
    return registry.get_sample_value(f"casewire_sla_agent_response_seconds_{suffix}", labels)


def test_business_time_is_observed_under_the_roster_agent_who_owned_the_case() -> None:
    registry = CollectorRegistry()
    metrics = SlaMetrics(registry, ROSTER)
    overnight = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)  # 2 h open, 17 h on the wall
    done = fulfilment(record(), overnight)
    metrics.record_fulfilment(Fulfilment(done.clock, done.at, done.business, "amal"))

    labels = {"clock": "first_response", "team": "care", "agent": "amal"}
    assert agent_seconds(registry, "count", **labels) == 1
    assert agent_seconds(registry, "sum", **labels) == 7200.0


def test_an_agent_outside_the_roster_counts_as_other_and_no_owner_as_unassigned() -> None:
    registry = CollectorRegistry()
    metrics = SlaMetrics(registry, ROSTER)
    done = fulfilment(record(), STARTED + timedelta(minutes=30))
    for assignee in ("api-made-agent-7", "another-stranger", None):
        metrics.record_fulfilment(Fulfilment(done.clock, done.at, done.business, assignee))

    agents = {
        sample.labels["agent"]
        for family in registry.collect()
        if family.name == "casewire_sla_agent_response_seconds"
        for sample in family.samples
    }
    assert agents == {"other", "unassigned"}
    on_care = {"clock": "first_response", "team": "care"}
    assert agent_seconds(registry, "count", **on_care, agent="other") == 2
    assert agent_seconds(registry, "count", **on_care, agent="unassigned") == 1


def test_only_the_contract_clock_is_observed_when_additive_policies_apply() -> None:
    registry = CollectorRegistry()
    metrics = SlaMetrics(registry, ROSTER)
    at = STARTED + timedelta(minutes=10)
    contract = fulfilment(record(), at)
    beside = fulfilment(record(id=2, policy_id="public-x", calendar_id="always", additive=True), at)
    for done in (contract, beside):
        metrics.record_fulfilment(Fulfilment(done.clock, done.at, done.business, "amal"))

    labels = {"clock": "first_response", "team": "care", "agent": "amal"}
    assert agent_seconds(registry, "count", **labels) == 1  # the case once
    # Both clocks stay in the per-policy histogram.
    assert (
        registry.get_sample_value(
            "casewire_sla_response_seconds_count",
            {**response_labels(beside.clock), "time": "business"},
        )
        == 1
    )


def test_the_roster_series_start_at_zero_for_each_of_the_agent_teams_and_clocks() -> None:
    registry = CollectorRegistry()
    SlaMetrics(registry, ROSTER).start_roster_series()

    started = {
        (sample.labels["clock"], sample.labels["team"], sample.labels["agent"])
        for family in registry.collect()
        if family.name == "casewire_sla_agent_response_seconds"
        for sample in family.samples
        if sample.name.endswith("_count")
    }
    assert started == {
        (clock, team, "amal")
        for clock in ("first_response", "next_response", "resolution")
        for team in ("care", "shipping")
    }
    assert agent_seconds(registry, "count", clock="resolution", team="shipping", agent="amal") == 0
