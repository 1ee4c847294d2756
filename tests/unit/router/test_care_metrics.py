"""The care metrics from a change's events: durations and counts by team and agent, the reply
rate's two counters, cases by tag, and labels held to the roster and the rules file's tags."""

from __future__ import annotations

from datetime import timedelta

from casewire_common import events as ev
from casewire_ingest.settings import IngestSettings
from casewire_router.adapters.care_metrics import CareMetrics
from casewire_router.domain import case_actions
from casewire_router.domain.agents_file import AgentSpec
from casewire_router.domain.care import (
    OTHER,
    UNASSIGNED,
    UNKNOWN_LANGUAGE,
    CareBounds,
    TrendSettings,
    topic_trend,
)
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.settings import RouterSettings
from prometheus_client import CollectorRegistry

from tests.unit.router.case_factories import agent, case
from tests.unit.router.factories import T0


def care_metrics() -> tuple[CareMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = CareMetrics(registry)
    metrics.use_roster([AgentSpec(id="amal", teams=["shipping"], capacity=5)])
    metrics.use_tags(["shipping", "vip"])
    metrics.use_languages(["en", "el"])
    return metrics, registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_reply_and_a_resolution_count_under_the_case_team_and_roster_agent() -> None:
    metrics, registry = care_metrics()
    shipping = case("c1", status="assigned", assignee="amal")
    outcome = RoutingOutcome()
    reply = case_actions.reply_message(
        shipping, "amal", "on its way", T0 + timedelta(minutes=2), T0
    )
    assert case_actions.record_reply(shipping, reply, outcome)
    again = case_actions.reply_message(shipping, "amal", "tracking", T0 + timedelta(minutes=3), T0)
    case_actions.record_reply(shipping, again, outcome)
    case_actions.close(
        shipping, "resolved", {"amal": agent("amal", load=1)}, outcome, T0 + timedelta(hours=1)
    )
    metrics.record(outcome)

    team_agent = {"team": "shipping", "agent": "amal"}
    assert value(registry, "casewire_router_replies_total", **team_agent) == 2
    assert value(registry, "casewire_router_first_response_seconds_count", **team_agent) == 1
    assert value(registry, "casewire_router_first_response_seconds_sum", **team_agent) == 120
    assert value(registry, "casewire_router_cases_resolved_total", **team_agent) == 1
    assert value(registry, "casewire_router_resolution_seconds_sum", **team_agent) == 3600
    where = {"team": "shipping", "platform": "x", "channel": "mention"}
    assert value(registry, "casewire_router_cases_answered_total", **where) == 1


def test_an_agent_outside_the_roster_counts_as_other_and_no_owner_as_unassigned() -> None:
    metrics, registry = care_metrics()
    outcome = RoutingOutcome()
    stranger = case("c1", status="assigned", assignee="api-made-agent-7")
    nobody = case("c2")
    for one in (stranger, nobody):
        reply = case_actions.reply_message(one, "x", "hi", T0 + timedelta(minutes=1), T0)
        case_actions.record_reply(one, reply, outcome)
    metrics.record(outcome)

    assert value(registry, "casewire_router_replies_total", team="shipping", agent=OTHER) == 1
    assert value(registry, "casewire_router_replies_total", team="shipping", agent=UNASSIGNED) == 1
    agents = {
        sample.labels["agent"]
        for family in registry.collect()
        for sample in family.samples
        if "agent" in sample.labels
    }
    assert agents == {"amal", OTHER, UNASSIGNED}  # amal's series start at zero


def test_opened_cases_count_by_bounded_tag_and_need_a_reply_unless_skipped() -> None:
    metrics, registry = care_metrics()
    outcome = RoutingOutcome()
    tagged = case("c1")
    tagged.tags = ["shipping", "vip", "old-tag", "older-tag"]
    skipped = case("c2", status="no_action")
    skipped.tags = ["vip"]
    for one in (tagged, skipped):
        outcome.emit(ev.CASE_CREATED, one)
    metrics.record(outcome)

    def by_tag(tag: str) -> float:
        return value(registry, "casewire_router_cases_by_tag_total", tag=tag, team="shipping")

    assert (by_tag("shipping"), by_tag("vip"), by_tag(OTHER)) == (1, 2, 1)
    where = {"team": "shipping", "platform": "x", "channel": "mention"}
    assert value(registry, "casewire_router_cases_needing_reply_total", **where) == 1


def test_cases_count_by_language_held_to_the_configured_ones() -> None:
    metrics, registry = care_metrics()
    outcome = RoutingOutcome()
    greek = case("c1", language="el")
    swahili = case("c2", language="sw")  # given by a platform, outside CASEWIRE_LANGUAGES
    undetected = case("c3", language=None)
    skipped = case("c4", language="el", status="no_action")
    for one in (greek, swahili, undetected, skipped):
        outcome.emit(ev.CASE_CREATED, one)
    greek.assignee, greek.status = "amal", "assigned"
    reply = case_actions.reply_message(greek, "amal", "γεια", T0 + timedelta(minutes=1), T0)
    assert case_actions.record_reply(greek, reply, outcome)
    metrics.record(outcome)

    def by_language(name: str, language: str) -> float:
        return value(registry, name, team="shipping", language=language)

    opened = "casewire_router_cases_by_language_total"
    needing = "casewire_router_cases_needing_reply_by_language_total"
    answered = "casewire_router_cases_answered_by_language_total"
    assert [by_language(opened, code) for code in ("el", OTHER, UNKNOWN_LANGUAGE)] == [2, 1, 1]
    assert [by_language(needing, code) for code in ("el", OTHER, UNKNOWN_LANGUAGE)] == [1, 1, 1]
    assert by_language(answered, "el") == 1
    languages = {
        sample.labels["language"]
        for family in registry.collect()
        for sample in family.samples
        if "language" in sample.labels
    }
    assert languages == {"el", OTHER, UNKNOWN_LANGUAGE}  # never "sw": bounded


def test_the_router_bounds_languages_by_the_same_setting_and_default_as_ingest() -> None:
    assert RouterSettings().languages == IngestSettings().languages
    assert "languages" in RouterSettings.model_fields  # read from CASEWIRE_LANGUAGES too


def test_an_earlier_reply_read_later_does_not_answer_the_case_twice() -> None:
    metrics, registry = care_metrics()
    answered = case("c1", status="assigned", assignee="amal")
    answered.first_response_at = T0 + timedelta(minutes=5)
    outcome = RoutingOutcome()
    outcome.emit(ev.CASE_RESPONDED, answered, first_response=True)  # not in first_answers
    metrics.record(outcome)
    assert value(registry, "casewire_router_replies_total", team="shipping", agent="amal") == 1
    assert (
        value(
            registry, "casewire_router_first_response_seconds_count", team="shipping", agent="amal"
        )
        == 0
    )


def test_bounds_keep_configured_values_only() -> None:
    bounds = CareBounds(
        agents=frozenset({"amal"}), tags=frozenset({"vip"}), languages=frozenset({"en"})
    )
    assert [bounds.agent(a) for a in ("amal", "zed", None)] == ["amal", OTHER, UNASSIGNED]
    assert [bounds.language(code) for code in ("en", "sw", None)] == ["en", OTHER, "unknown"]
    assert bounds.case_tags(["vip", "a", "b"]) == {"vip", OTHER}


def test_a_topic_trends_when_far_above_its_baseline_and_busy_enough() -> None:
    settings = TrendSettings(
        window=timedelta(hours=1), baseline=timedelta(hours=24), threshold=3, min_cases=5
    )
    assert topic_trend(6, 24, settings).ratio == 6.0  # 1 expected per hour
    assert topic_trend(6, 24, settings).trending
    assert not topic_trend(4, 0, settings).trending  # too few to matter
    assert topic_trend(5, 0, settings).ratio == 5.0  # out of nowhere: finite
    assert not topic_trend(10, 96, settings).trending  # 4 expected: 2.5 times


def test_a_reply_with_a_saved_reply_counts_its_use_under_the_case_team() -> None:
    metrics, registry = care_metrics()
    metrics.use_saved_replies([("shipping", "shipping-policy"), ("billing", "shipping-policy")])
    uses = "casewire_router_saved_reply_uses_total"
    assert (
        registry.get_sample_value(uses, {"team": "billing", "saved_reply": "shipping-policy"}) == 0
    )
    shipping = case("c1", status="assigned", assignee="amal")
    outcome = RoutingOutcome()
    for minutes, saved in ((1, "shipping-policy"), (2, None), (3, "shipping-policy")):
        reply = case_actions.reply_message(
            shipping, "amal", "text", T0 + timedelta(minutes=minutes), T0
        )
        case_actions.record_reply(shipping, reply, outcome, saved)
    metrics.record(outcome)
    assert value(registry, uses, team="shipping", saved_reply="shipping-policy") == 2
    responded = [e for e in outcome.events if e.type == ev.CASE_RESPONDED]
    assert [e.data.saved_reply_id for e in responded] == [
        "shipping-policy",
        None,
        "shipping-policy",
    ]
