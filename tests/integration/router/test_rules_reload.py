"""The router puts a changed rules file in force without a restart, and keeps the rules in
force when the new file is broken."""

from __future__ import annotations

from pathlib import Path

import pytest
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import DecodedEvent
from casewire_common.pg import migrate
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.domain.rules import parse_rules
from casewire_router.main import create_app
from casewire_router.settings import RouterSettings

from tests.integration.helpers import (
    SESSION_TIMEOUT_MS,
    EventReader,
    eventually,
    metric_value,
    producer,
    running,
    topic_reader,
)
from tests.integration.router.test_router_service import canonical
from tests.integration.router.test_threading_incidents import start_at_topic_ends

pytestmark = pytest.mark.integration

RULES = """
version: {version}
default_team: care
teams: [care, shipping, billing]
rules:
  - id: parcel-{team}
    when: {{any: ["{keyword}"]}}
    then: {{team: {team}, tags: [{team}]}}
"""
AGENTS = "agents: []\n"


async def test_a_rewritten_rules_file_routes_the_next_message_and_a_broken_one_is_ignored(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    keyword = f"parcel{unique}"
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(version=1, team="shipping", keyword=keyword), "utf-8")
    (tmp_path / "agents.yaml").write_text(AGENTS, "utf-8")
    settings = RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        router_rules=rules,
        router_agents=tmp_path / "agents.yaml",
        router_consumer_group=f"router-reload-{unique}",
        router_rules_reload_seconds=0.2,
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
    )
    await start_at_topic_ends(settings)
    app = create_app(settings)
    conversations = [f"x:brand:{unique}{n}:cust" for n in range(3)]

    def created(reader: EventReader, conversation: str) -> DecodedEvent | None:
        return next(
            (
                event
                for event in reader.events
                if event.type == ev.CASE_CREATED
                and event.data["case"]["conversation_id"] == conversation
            ),
            None,
        )

    async with (
        running(app) as client,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        reader = EventReader(events_in)

        async def route(number: int) -> DecodedEvent:
            conversation = conversations[number]
            await kafka.send_and_wait(
                topics.MESSAGES,
                canonical(conversation, f"{unique}-{number}", f"where is my {keyword}?"),
                key=conversation.encode(),
            )
            await reader.read_until(
                lambda _: created(reader, conversation) is not None,
                keep=lambda event: event.data["case"]["conversation_id"] in conversations,
            )
            event = created(reader, conversation)
            assert event is not None, f"no case.created for message {number}"
            return event

        first = await route(0)
        assert first.data["case"]["team"] == "shipping"

        rewritten = RULES.format(version=2, team="billing", keyword=keyword)
        rules.write_text(rewritten, "utf-8")
        version = parse_rules(rewritten).version
        metrics = await eventually(
            lambda: client.get("/metrics"),
            lambda response: (
                metric_value(response.text, "casewire_router_rules_info", {"version": version}) == 1
            ),
        )
        assert metric_value(metrics.text, "casewire_router_rules_info", {"version": version}) == 1
        second = await route(1)
        assert second.data["case"]["team"] == "billing"
        assert second.data["decision"]["rules_version"] == version
        assert second.data["decision"]["matched_rules"] == ["parcel-billing"]
        assert first.data["decision"]["rules_version"] != version

        rules.write_text(RULES.format(version=3, team="nowhere", keyword=keyword), "utf-8")
        metrics = await eventually(
            lambda: client.get("/metrics"),
            lambda response: (
                metric_value(response.text, "casewire_router_rules_reload_failures_total") >= 1
            ),
        )
        assert metric_value(metrics.text, "casewire_router_rules_reload_failures_total") == 1
        third = await route(2)
        assert third.data["case"]["team"] == "billing"
        assert third.data["decision"]["rules_version"] == version
        assert metric_value(metrics.text, "casewire_router_rules_info") == 1  # one series
