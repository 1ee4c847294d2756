"""The care metrics and `casewire-router report` give the same figures for the same cases
(docs/report.md, "Definitions"): messages go through the running router on the real broker and
PostgreSQL, one case is resolved through the case API, then the router's /metrics and the
report over the period are compared figure by figure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from casewire_common import topics
from casewire_common.messages import message_id
from casewire_common.pg import migrate
from casewire_dev.identity import LocalIdentity, bearer
from casewire_router.adapters.report import Figures, build_report
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.main import create_app
from casewire_router.settings import RouterSettings

from tests.integration.helpers import (
    SESSION_TIMEOUT_MS,
    eventually,
    metric_value,
    producer,
    running,
)
from tests.integration.router.test_threading_incidents import start_at_topic_ends

pytestmark = pytest.mark.integration

# One team of this test's own: other tests' messages on the shared topic reach `care`.
RULES = """
version: 1
default_team: care
teams: [care, t{unique}]
rules:
  - id: praise
    when: {{any: ["thanks{unique}"]}}
    then: {{team: t{unique}, skip: true, tags: [praise]}}
    stop: true
  - id: parcel
    when: {{any: ["parcel{unique}"]}}
    then: {{team: t{unique}, tags: [shipping]}}
  - id: refund
    when: {{any: ["refund{unique}"]}}
    then: {{team: t{unique}, tags: [billing, shipping]}}
"""
AGENTS = """
agents:
  - {{id: amal, teams: [t{unique}], languages: [en], capacity: 2, online: true}}
"""


def canonical(
    conversation: str,
    pid: str,
    text: str,
    sent_at: datetime,
    direction: str = "inbound",
    language: str | None = "en",
) -> bytes:
    customer = conversation.rsplit(":", 1)[1]
    return json.dumps(
        {
            "id": message_id("x", pid),
            "platform": "x",
            "channel": "dm" if "dm" in conversation else "mention",
            "visibility": "private" if "dm" in conversation else "public",
            "direction": direction,
            "event": "message",
            "account_id": "brand",
            "platform_message_id": pid,
            "conversation_id": conversation,
            "author": {"id": "brand" if direction == "outbound" else customer},
            "text": text,
            "language": language,
            "attachments": [],
            "sent_at": sent_at.isoformat(),
            "received_at": sent_at.isoformat(),
        }
    ).encode()


async def test_care_metrics_and_report_agree_on_the_same_cases(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    team = f"t{unique}"
    (tmp_path / "rules.yaml").write_text(RULES.format(unique=unique), encoding="utf-8")
    (tmp_path / "agents.yaml").write_text(AGENTS.format(unique=unique), encoding="utf-8")
    settings = RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        router_rules=tmp_path / "rules.yaml",
        router_agents=tmp_path / "agents.yaml",
        router_consumer_group=f"router-care-{unique}",
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
        router_queue_metrics_seconds=0.2,
    )
    await start_at_topic_ends(settings)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    conversation = {name: f"x:brand:{unique}{name}:cust{unique}{name}" for name in "abcdef"}
    conversation["f"] = f"x:brand:dm{unique}f:cust{unique}f"
    at = {name: base + timedelta(minutes=index) for index, name in enumerate("abcdef")}
    messages = [
        # a: answered after 1 minute, then resolved; b: answered after 5 minutes, twice;
        # c: the third for amal (capacity 2): queued, unassigned, never answered;
        # d: praise, skipped; f: a DM, queued too, answered after 30 s (unassigned).
        (conversation["a"], "a1", f"my parcel{unique} is late", at["a"], "inbound"),
        (conversation["a"], "a2", "on its way", at["a"] + timedelta(seconds=60), "outbound"),
        (conversation["b"], "b1", f"refund{unique} please", at["b"], "inbound"),
        (conversation["b"], "b2", "done", at["b"] + timedelta(minutes=5), "outbound"),
        (conversation["b"], "b3", "and more", at["b"] + timedelta(minutes=6), "outbound"),
        (conversation["c"], "c1", f"parcel{unique} lost", at["c"], "inbound"),
        (conversation["d"], "d1", f"thanks{unique}", at["d"], "inbound"),
        (conversation["f"], "f1", f"where is my parcel{unique}", at["f"], "inbound"),
        (conversation["f"], "f2", "checking", at["f"] + timedelta(seconds=30), "outbound"),
    ]
    # Each case's language: Greek (b), one outside CASEWIRE_LANGUAGES (c, `other` in the
    # metrics), none detected (f, `unknown`); the others English.
    languages = {"a": "en", "b": "el", "c": "sw", "d": "en", "f": None}
    async with running(create_app(settings)) as router, producer(kafka_bootstrap) as kafka:
        # Ordered by sending, one conversation per key: the assignments follow that order.
        for conv, pid, text, sent, direction in messages:
            value = canonical(conv, f"{unique}-{pid}", text, sent, direction, languages[pid[0]])
            await kafka.send_and_wait(topics.MESSAGES, value, key=conv.encode())

        async def scrape() -> str:
            return (await router.get("/metrics")).text

        def answered_all(text: str) -> bool:
            labels = {"team": team}
            return (
                metric_value(text, "casewire_router_cases_answered_total", labels) == 3
                and metric_value(text, "casewire_router_replies_total", labels) == 4
                and metric_value(text, "casewire_router_cases_needing_reply_total", labels) == 4
            )

        await eventually(scrape, answered_all, timeout=60)
        connection = await asyncpg.connect(database_url)
        try:
            # Before any case changes hands: the report groups by the current assignee, the
            # metrics by the assignee at the time (resolving `a` below drains the queue).
            before = await scrape()
            by_agent = await build_report(
                connection, since=base - timedelta(minutes=1), team=team, by=("agent",)
            )
            case_a = await connection.fetchval(
                f"SELECT id FROM {SCHEMA}.cases WHERE conversation_id = $1", conversation["a"]
            )
            resolved = await router.post(
                f"/v1/cases/{case_a}/resolve",
                headers=bearer(identity.token("lead", ["lead"], teams=[team])),
            )
            assert resolved.status_code == 200, resolved.text
            text = await scrape()
            report = await build_report(
                connection,
                since=base - timedelta(minutes=1),
                until=datetime.now(UTC) + timedelta(minutes=1),
                team=team,
                by=("tag", "platform", "language"),
            )
            trend_text = await eventually(
                scrape,
                lambda t: metric_value(t, "casewire_router_topic_trend_ratio", {"team": team}) > 0,
                timeout=10,
            )
        finally:
            await connection.close()

    def metric(name: str, **labels: str) -> float:
        return metric_value(text, name, {"team": team, **labels})

    overall = report.overall
    assert (overall.cases, overall.cases_needing_reply, overall.replied_cases) == (5, 4, 3)
    assert metric("casewire_router_cases_needing_reply_total") == overall.cases_needing_reply
    assert metric("casewire_router_cases_answered_total") == overall.replied_cases
    [x] = report.platforms
    assert (
        metric("casewire_router_cases_needing_reply_total", platform="x") == x.cases_needing_reply
    )
    assert metric("casewire_router_cases_answered_total", platform="x") == x.replied_cases
    assert metric("casewire_router_cases_answered_total", channel="dm") == 1  # f
    # By language: the report's language rows (raw codes; none as None), the metrics' bounded
    # label (a code outside CASEWIRE_LANGUAGES as other, none as unknown).
    by_language = {figures.name: figures for figures in report.languages}
    assert set(by_language) == {"en", "el", "sw", None}
    assert (by_language["en"].cases, by_language["en"].replied_cases) == (2, 1)  # a, d
    for name, figures in by_language.items():
        label = {"sw": "other", None: "unknown"}.get(name, name)
        assert label is not None
        assert metric("casewire_router_cases_by_language_total", language=label) == figures.cases
        assert (
            metric("casewire_router_cases_needing_reply_by_language_total", language=label)
            == figures.cases_needing_reply
        ), name
        assert (
            metric("casewire_router_cases_answered_by_language_total", language=label)
            == figures.replied_cases
        ), name
    assert_durations_agree(overall, text, team)
    # Which cases amal got depends on the order the partitions were read: compared as found.
    assert {agent.name for agent in by_agent.agents} <= {"amal", None}
    for agent in by_agent.agents:
        labels = {"team": team, "agent": agent.name or "unassigned"}
        count = metric_value(before, "casewire_router_first_response_seconds_count", labels)
        total = metric_value(before, "casewire_router_first_response_seconds_sum", labels)
        assert count == agent.replied_cases, labels
        if count:
            assert agent.first_response_seconds.average == pytest.approx(total / count)
    # Cases by tag: the report's tag rows, the counter's tag label (praise counts: skipped
    # cases are cases; `b` counts under both of its tags).
    by_tag = {figures.name: figures.cases for figures in report.tags if figures.name}
    assert by_tag == {"shipping": 4, "billing": 1, "praise": 1}
    for tag, cases in by_tag.items():
        assert metric("casewire_router_cases_by_tag_total", tag=tag) == cases
    # Replies are counted by the metrics only: each brand reply, under the case's owner.
    assert metric("casewire_router_replies_total") == 4
    # Every tag of this team is new: its window volume over a baseline of at least one case.
    assert (
        metric_value(
            trend_text, "casewire_router_topic_trend_ratio", {"team": team, "tag": "shipping"}
        )
        == 4.0
    )


def assert_durations_agree(overall: Figures, text: str, team: str) -> None:
    """Histogram sums and counts against the report's averages over the same cases."""
    labels = {"team": team}
    count = metric_value(text, "casewire_router_first_response_seconds_count", labels)
    total = metric_value(text, "casewire_router_first_response_seconds_sum", labels)
    assert count == overall.replied_cases
    assert overall.first_response_seconds.average == pytest.approx(total / count)
    assert overall.first_response_seconds.average == pytest.approx((60 + 300 + 30) / 3)
    resolved = metric_value(text, "casewire_router_cases_resolved_total", labels)
    assert resolved == metric_value(text, "casewire_router_resolution_seconds_count", labels) == 1
    resolution = metric_value(text, "casewire_router_resolution_seconds_sum", labels)
    assert overall.resolution_seconds.average == pytest.approx(resolution, abs=1e-3)
