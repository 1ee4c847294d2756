"""The pure parts of `make bench`: results file, ratio, table, and the workload it sends."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from casewire_common import events as ev
from casewire_common.messages import CanonicalMessage
from casewire_dev import bench_workload, results
from casewire_router.domain.agents_file import parse_agents
from casewire_router.domain.rules import parse_rules


def test_merging_keeps_other_benchmarks_and_replaces_only_measured_figures() -> None:
    existing: results.Results = {
        "sla_timers_per_s": {"value": 900, "unit": "timers/s"},
        "router_msgs_per_s": {"value": 1, "unit": "msgs/s"},
    }
    measured = {
        "router_msgs_per_s": results.metric(2469.6, "msgs/s"),
        "router_vs_passthrough": results.metric(0.13456, "ratio"),
    }

    merged = results.merge_results(existing, measured)

    assert merged == {
        "sla_timers_per_s": {"value": 900, "unit": "timers/s"},
        "router_msgs_per_s": {"value": 2470, "unit": "msgs/s"},
        "router_vs_passthrough": {"value": 0.135, "unit": "ratio"},
    }
    assert list(merged) == ["sla_timers_per_s", "router_msgs_per_s", "router_vs_passthrough"]


def test_results_file_is_merged_in_place_and_stays_name_to_value_and_unit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bench" / "results.json"
    results.write_results(path, {"ingest_msgs_per_s": results.metric(5000, "msgs/s")})

    results.write_results(path, {"passthrough_msgs_per_s": results.metric(18340.4, "msgs/s")})

    assert json.loads(path.read_text("utf-8")) == {
        "ingest_msgs_per_s": {"value": 5000, "unit": "msgs/s"},
        "passthrough_msgs_per_s": {"value": 18340, "unit": "msgs/s"},
    }


def test_missing_or_unreadable_results_file_holds_no_figures(tmp_path: Path) -> None:
    broken = tmp_path / "results.json"
    broken.write_text("{not json", "utf-8")
    odd = tmp_path / "odd.json"
    odd.write_text('{"kept": {"value": 1, "unit": "count"}, "dropped": 3}', "utf-8")

    assert results.load_results(tmp_path / "absent.json") == {}
    assert results.load_results(broken) == {}
    assert results.load_results(odd) == {"kept": {"value": 1, "unit": "count"}}


def test_ratio_divides_and_is_zero_when_the_ceiling_is_unknown() -> None:
    assert results.ratio(2470, 18340) == 2470 / 18340
    assert results.ratio(2470, 0) == 0.0


def test_table_formats_values_by_unit_and_aligns_columns() -> None:
    table = results.format_table(
        {
            "passthrough_msgs_per_s": results.metric(18340.4, "msgs/s"),
            "router_vs_passthrough": results.metric(0.1346, "ratio"),
            "bench_partitions": results.metric(6, "count"),
        }
    )

    assert table.splitlines() == [
        "metric                   value  unit",
        "----------------------  ------  ------",
        "passthrough_msgs_per_s  18,340  msgs/s",
        "router_vs_passthrough    0.135  ratio",
        "bench_partitions             6  count",
    ]


CORPUS = bench_workload.Corpus(
    customer_texts=["where is my order? it never arrived", "any news on my order?"],
    brand_texts=["Sorry about that! Please DM us your order number."],
    brands=["AmazonHelp", "AppleSupport"],
)


def conversations_of(records: list[bench_workload.Record]) -> dict[str, list[CanonicalMessage]]:
    grouped: dict[str, list[CanonicalMessage]] = {}
    for record in records:
        message = CanonicalMessage.model_validate_json(record.value)
        assert record.key == message.conversation_id.encode()
        grouped.setdefault(message.conversation_id, []).append(message)
    return grouped


def test_workload_conversations_have_two_to_four_customer_messages_each_answered() -> None:
    records, count = bench_workload.build_workload(CORPUS, 300, seed=3, window=1)

    grouped = conversations_of(records)
    assert len(records) == 300
    assert count == len(grouped)
    *complete, _last_maybe_cut = grouped.values()
    for messages in complete:
        directions = [message.direction for message in messages]
        assert directions == ["inbound", "outbound"] * (len(messages) // 2)
        assert 2 <= len(messages) // 2 <= 4
        assert [m.in_reply_to for m in messages[1:]] == [
            m.platform_message_id for m in messages[:-1]
        ]
        assert [m.sent_at for m in messages] == sorted(m.sent_at for m in messages)


def test_workload_is_the_same_bytes_for_the_same_seed() -> None:
    first, _ = bench_workload.build_workload(CORPUS, 200, seed=11)
    again, _ = bench_workload.build_workload(CORPUS, 200, seed=11)
    other, _ = bench_workload.build_workload(CORPUS, 200, seed=12)

    assert first == again
    assert first != other


def test_expected_events_follow_from_the_messages(tmp_path: Path) -> None:
    records, conversations = bench_workload.build_workload(CORPUS, 120, seed=5, window=1)
    rules = tmp_path / "rules.yaml"
    rules.write_text(bench_workload.RULES_YAML, "utf-8")
    agents = tmp_path / "agents.yaml"
    agents.write_text(bench_workload.agents_yaml(1000), "utf-8")
    sent = Counter(CanonicalMessage.model_validate_json(r.value).direction for r in records)

    expected = bench_workload.expected_outcome(records, rules, agents)

    # Every conversation is one shipping case: opened, assigned, then follow-ups and replies;
    # a customer writing again and again may raise their case's priority (repeated contact).
    assert expected.cases == conversations
    raised = expected.events.pop(ev.CASE_PRIORITY_CHANGED, 0)
    assert raised <= sent["inbound"] - conversations
    assert expected.events == Counter(
        {
            ev.CASE_CREATED: conversations,
            ev.CASE_ASSIGNED: conversations,
            ev.CASE_MESSAGE_ADDED: sent["inbound"] - conversations,
            ev.CASE_RESPONDED: sent["outbound"],
        }
    )
    expected.events[ev.CASE_PRIORITY_CHANGED] = raised
    assert expected.total_events == sum(expected.events.values())


def test_bench_rules_and_agents_are_valid_files_with_room_for_everyone() -> None:
    rules = parse_rules(bench_workload.RULES_YAML)
    agents = parse_agents(bench_workload.agents_yaml(20_000)).agents

    assert set(rules.teams) <= {team for agent in agents for team in agent.teams}
    assert all(agent.online and agent.capacity == 20_000 for agent in agents)


def test_language_is_guessed_from_the_script() -> None:
    assert bench_workload.guess_language("where is my parcel") == "en"
    assert bench_workload.guess_language("ما هي حالة الطلب") == "ar"
    assert bench_workload.guess_language("注文はどこですか") == "ja"
    assert bench_workload.guess_language("การจัดส่ง") == "th"
    assert bench_workload.guess_language("αποστολή") == "el"


def test_twcs_sample_gives_unescaped_customer_and_brand_texts(shared_data: Path) -> None:
    corpus = bench_workload.read_twcs_sample(shared_data)

    assert len(corpus.customer_texts) > 2000
    assert len(corpus.brand_texts) == len(corpus.brands) > 2000
    assert "AmazonHelp" in corpus.brands
    assert not any("&amp;" in text for text in corpus.brand_texts + corpus.customer_texts)


def test_ratio_percentile_and_units() -> None:
    assert results.ratio(1200, 4000) == pytest.approx(0.3)
    assert results.ratio(5, 0) == 0.0
    assert results.percentile([], 0.99) == 0.0
    assert results.percentile([float(v) for v in range(1, 101)], 0.5) == 50.0
    assert results.percentile([float(v) for v in range(1, 101)], 0.99) == 99.0
    # Nearest rank: always an observed value, the rank rounded up (also for the demo's p90).
    assert results.percentile([5.0, 1.0, 3.0], 0.5) == 3.0
    assert results.percentile([1.0, 2.0], 0.9) == 2.0
    assert results.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.9) == 5.0
    assert results.metric(1234.56, "req/s") == {"value": 1235, "unit": "req/s"}
    assert results.metric(12.345, "ms") == {"value": 12.3, "unit": "ms"}


def test_the_bench_rules_name_only_saved_replies_of_the_bench() -> None:
    from casewire_router.domain.saved_replies import parse_saved_replies, rules_fit_replies

    problems = rules_fit_replies(
        parse_rules(bench_workload.RULES_YAML).spec,
        parse_saved_replies(bench_workload.SAVED_REPLIES_YAML),
        rules_source="rules",
        replies_source="saved replies",
    )
    assert problems == []
