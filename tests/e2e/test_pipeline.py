"""The whole pipeline as it runs in production: three service processes on the real broker and
PostgreSQL. Messages go in over HTTP; cases come out in PostgreSQL and as events on Kafka;
SLA clocks start, stop on the brand's reply, and breach when nobody answers."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import DecodedEvent
from casewire_dev import services
from casewire_dev import stack as local_stack

from tests.integration.helpers import (
    SESSION_TIMEOUT_MS,
    TEST_INTEGRATION,
    EventReader,
    metric_value,
    topic_reader,
)

RULES = """
version: 1
default_team: care
teams: [care, shipping, incidents]
rules:
  - id: shipping
    when: {any: [shipping, delivery, "αποστολή", "การจัดส่ง", "حالة الطلب"]}
    then: {team: shipping, priority: P3, tags: [shipping]}
  - id: outage
    when: {any: [outage, "is down"]}
    then: {team: incidents, priority: P1, tags: [outage]}
"""
AGENTS = """
agents:
  - {id: amal, teams: [shipping, care], languages: [ar, en], capacity: 5, online: true}
  - {id: nikos, teams: [care, incidents], languages: [el, en], capacity: 5, online: true}
"""
POLICIES = """
version: 1
calendars:
  - {id: always, always_open: true}
policies:
  - id: urgent
    match: {priority: [P1]}
    calendar: always
    first_response: 3s
    warn_at: [0.5]
  - id: standard
    match: {}
    calendar: always
    first_response: 4s
"""

pytestmark = pytest.mark.e2e


class Pipeline:
    def __init__(self, ingest_url: str, router_url: str, sla_url: str, database_url: str) -> None:
        self.ingest_url = ingest_url
        self.router_url = router_url
        self.sla_url = sla_url
        self.database_url = database_url


@pytest.fixture
async def pipeline(
    tmp_path: Path, stack: local_stack.Stack, database_url: str, unique: str
) -> AsyncIterator[Pipeline]:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "agents.yaml").write_text(AGENTS, encoding="utf-8")
    (tmp_path / "policies.yaml").write_text(POLICIES, encoding="utf-8")
    env = {
        **os.environ,
        "CASEWIRE_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
        "CASEWIRE_DATABASE_URL": database_url,
        "CASEWIRE_CONSUMER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "CASEWIRE_INTEGRATIONS": TEST_INTEGRATION.settings(),
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    # Each service migrates its own schema: the three can run at once.
    await asyncio.gather(
        *(services.migrate(name, env, logs) for name in ("ingest", "router", "sla"))
    )
    # The services read this test's traffic only: other tests' messages and case events on
    # the same broker would otherwise fill the agents' capacity and the SLA clocks first.
    groups = {
        "router": f"e2e-router-{unique}",
        "router-escalation": f"e2e-router-{unique}-escalation",
        "sla": f"e2e-sla-{unique}",
    }
    for group, topic in (
        (groups["router"], topics.MESSAGES),
        (groups["router-escalation"], topics.SLA_ALERTS),
        (groups["sla"], topics.CASE_EVENTS),
    ):
        await local_stack.start_group_at_topic_end(stack.kafka_bootstrap_servers, group, topic)
    specs = [
        services.ServiceSpec("ingest", local_stack.free_port()),
        services.ServiceSpec(
            "router",
            local_stack.free_port(),
            {
                "CASEWIRE_ROUTER_RULES": str(tmp_path / "rules.yaml"),
                "CASEWIRE_ROUTER_AGENTS": str(tmp_path / "agents.yaml"),
                "CASEWIRE_ROUTER_CONSUMER_GROUP": groups["router"],
            },
        ),
        services.ServiceSpec(
            "sla",
            local_stack.free_port(),
            {
                "CASEWIRE_SLA_POLICIES": str(tmp_path / "policies.yaml"),
                "CASEWIRE_SLA_CONSUMER_GROUP": groups["sla"],
            },
        ),
    ]
    running = [services.start(spec, env, logs) for spec in specs]
    try:
        stop = asyncio.Event()
        for service in running:
            assert await services.wait_ready(service, stop, timeout=60)
        ingest, router, sla = (f"http://127.0.0.1:{spec.port}" for spec in specs)
        yield Pipeline(ingest, router, sla, database_url)
    finally:
        killed = await services.stop_all(running)
        assert killed == [], f"did not stop on SIGTERM: {killed}"
        for service in running:
            # uvicorn re-raises SIGTERM once its graceful shutdown has completed.
            assert service.process.returncode in (0, -signal.SIGTERM), service.describe_exit()
            assert "Application shutdown complete" in service.log_path.read_text()


def post_body(
    pid: str, conversation: str, text: str, direction: str = "inbound"
) -> dict[str, object]:
    return {
        "platform": "x",
        "channel": "mention",
        "direction": direction,
        "account_id": "brand",
        "platform_message_id": pid,
        "conversation_id": conversation,
        "author": {"id": "brand" if direction == "outbound" else "customer", "followers": 40},
        "text": text,
        "sent_at": datetime.now(UTC).isoformat(),
    }


async def test_webhook_to_case_to_sla_breach_and_brand_reply_stops_the_clock(
    pipeline: Pipeline, stack: local_stack.Stack, unique: str
) -> None:
    unanswered = f"x:brand:{unique}-1:customer"
    answered = f"x:brand:{unique}-2:customer"
    bootstrap = stack.kafka_bootstrap_servers
    async with (
        httpx.AsyncClient(timeout=10, auth=TEST_INTEGRATION) as http,
        topic_reader(bootstrap, topics.CASE_EVENTS) as case_events_in,
        topic_reader(bootstrap, topics.SLA_ALERTS) as sla_alerts_in,
    ):
        first = post_body(f"{unique}-a", unanswered, "Your service is down, outage since 9am")
        for body in (
            first,
            post_body(f"{unique}-b", answered, "Where is my delivery? Order 12345"),
        ):
            response = await http.post(f"{pipeline.ingest_url}/v1/messages", json=body)
            assert response.status_code == 202, response.text

        cases = EventReader(case_events_in)
        mine = {unanswered, answered}

        def is_mine(event: DecodedEvent) -> bool:
            return event.data["case"]["conversation_id"] in mine

        await cases.read_until(
            lambda got: sum(e.type == ev.CASE_ASSIGNED for e in got) >= 2, keep=is_mine
        )
        reply = post_body(f"{unique}-c", answered, "Sorry! It ships today.", direction="outbound")
        response = await http.post(f"{pipeline.ingest_url}/v1/messages", json=reply)
        assert response.status_code == 202
        await cases.read_until(lambda got: any(e.type == ev.CASE_RESPONDED for e in got), is_mine)

        by_conversation: dict[str, list[str]] = {}
        for event in cases.events:
            by_conversation.setdefault(event.data["case"]["conversation_id"], []).append(event.type)
        assert by_conversation[unanswered] == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
        assert by_conversation[answered] == [ev.CASE_CREATED, ev.CASE_ASSIGNED, ev.CASE_RESPONDED]
        case_ids = {
            event.data["case"]["conversation_id"]: event.data["case"]["id"]
            for event in cases.events
        }
        urgent = next(e for e in cases.events if e.data["case"]["conversation_id"] == unanswered)
        assert urgent.data["case"]["priority"] == "P1"
        assert urgent.data["case"]["team"] == "incidents"

        alerts = EventReader(sla_alerts_in)
        await alerts.read_until(
            lambda got: (
                any(e.type == ev.SLA_BREACHED for e in got)
                and any(e.type == ev.SLA_CLOCK_FULFILLED for e in got)
            ),
            keep=lambda event: event.data["case_id"] in case_ids.values(),
            timeout=30,
        )
        # Wait past the answered case's due time: its clock stopped, so it never breaches.
        await alerts.read_until(
            lambda got: False, keep=lambda e: e.data["case_id"] in case_ids.values(), timeout=5
        )
        alert_types = {
            conversation: [e.type for e in alerts.events if e.data["case_id"] == case_id]
            for conversation, case_id in case_ids.items()
        }
        assert alert_types[unanswered] == [
            ev.SLA_CLOCK_STARTED,
            ev.SLA_WARNING,
            ev.SLA_BREACHED,
        ]
        assert alert_types[answered] == [ev.SLA_CLOCK_STARTED, ev.SLA_CLOCK_FULFILLED]
        breach = next(e for e in alerts.events if e.type == ev.SLA_BREACHED)
        assert breach.data["policy_id"] == "urgent"
        assert breach.data["clock"] == "first_response"
        breach_time = breach.time
        assert breach_time is not None
        due = datetime.fromisoformat(breach.data["due_at"])
        assert 0 <= (breach_time - due).total_seconds() < 1.5

        # The same message posted again is accepted (the platform retried) but creates nothing:
        # ingest remembers it was published (the router would also ignore a redelivery).
        again = await http.post(f"{pipeline.ingest_url}/v1/messages", json=first)
        assert again.status_code == 202
        assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 1)
        ingest_metrics = await http.get(f"{pipeline.ingest_url}/metrics")
        assert metric_value(ingest_metrics.text, "casewire_ingest_duplicates_total") == 1
        before = len(cases.events)
        await cases.read_until(lambda got: False, keep=is_mine, timeout=2)
        assert len(cases.events) == before

    connection = await asyncpg.connect(pipeline.database_url)
    try:
        rows = await connection.fetch(
            "SELECT conversation_id, status, team, priority, assignee, first_response_at"
            " FROM router.cases WHERE conversation_id = ANY($1::text[]) ORDER BY conversation_id",
            sorted(mine),
        )
        stored = await connection.fetchval(
            "SELECT count(*) FROM router.messages WHERE conversation_id = ANY($1::text[])",
            sorted(mine),
        )
    finally:
        await connection.close()
    assert [(r["conversation_id"], r["status"], r["team"]) for r in rows] == [
        (unanswered, "assigned", "incidents"),
        (answered, "assigned", "shipping"),
    ]
    assert rows[0]["first_response_at"] is None
    assert rows[1]["first_response_at"] is not None
    assert stored == 3
