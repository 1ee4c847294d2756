"""The metrics catalog against the running services: freshly started, each exports at 0 the label
sets the catalog says are pre-created; then messages go through ingest, router and sla (one
case breaches, one is answered, one record is dead-lettered), and each service's /metrics must
export exactly what docs/operations/metrics-catalog.yaml lists for it, with its types, labels
and label values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from casewire_common import topics
from casewire_common.pg import migrate
from casewire_ingest.adapters.dedup import MIGRATIONS_PACKAGE as INGEST_MIGRATIONS
from casewire_ingest.adapters.dedup import SCHEMA as INGEST_SCHEMA
from casewire_ingest.adapters.publisher import NORMALIZATION_REASONS
from casewire_ingest.main import create_app as create_ingest
from casewire_ingest.settings import IngestSettings
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE as ROUTER_MIGRATIONS
from casewire_router.adapters.repository import SCHEMA as ROUTER_SCHEMA
from casewire_router.main import create_app as create_router
from casewire_router.message_service import DEAD_LETTER_REASONS as ROUTER_DEAD_LETTERS
from casewire_router.settings import RouterSettings
from casewire_sla.adapters.store import MIGRATIONS as SLA_MIGRATIONS
from casewire_sla.adapters.store import SCHEMA as SLA_SCHEMA
from casewire_sla.entrypoints.kafka import DEAD_LETTER_REASONS as SLA_DEAD_LETTERS
from casewire_sla.main import create_app as create_sla
from casewire_sla.settings import SlaSettings
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.helpers import (
    SESSION_TIMEOUT_MS,
    TEST_INTEGRATIONS,
    eventually,
    metric_value,
    producer,
    running,
)
from tests.unit.ops.catalog import (
    exported_families,
    load_catalog,
    missing_precreated,
    scrape_differences,
)

pytestmark = pytest.mark.integration

RULES = """
version: 1
default_team: care
teams: [care, fastlane]
rules:
  - id: fastlane
    when: {{any: ["hurry{unique}"]}}
    then: {{team: fastlane}}
"""
AGENTS = """
agents:
  - {id: nikos, teams: [care, fastlane], languages: [en], capacity: 1000, online: true}
"""
# fastlane's first response is due in a second (it warns and breaches); care's is answered.
POLICIES = """
version: 1
calendars: [{id: always, always_open: true}]
policies:
  - {id: fast, match: {team: [fastlane]}, calendar: always, first_response: 1s, warn_at: [0.5]}
  - {id: standard, match: {}, calendar: always, first_response: 1h, resolution: 1h}
"""


def generic(
    conversation: str, message: str, text: str, direction: str = "inbound"
) -> dict[str, object]:
    sent = datetime.now(UTC) + timedelta(seconds=1 if direction == "outbound" else 0)
    return {
        "platform": "x",
        "channel": "dm",
        "direction": direction,
        "account_id": "brand",
        "platform_message_id": message,
        "conversation_id": f"x:brand:{conversation}",
        "author": {"id": "brand" if direction == "outbound" else "customer"},
        "text": text,
        "sent_at": sent.isoformat(),
    }


def sampled(text: str, *names: str) -> bool:
    return all(metric_value(text, name) > 0 for name in names)


async def test_every_service_exports_exactly_the_catalogued_metrics(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str
) -> None:
    for schema, migrations in (
        (INGEST_SCHEMA, INGEST_MIGRATIONS),
        (ROUTER_SCHEMA, ROUTER_MIGRATIONS),
        (SLA_SCHEMA, SLA_MIGRATIONS),
    ):
        await migrate(database_url, schema, migrations)
    for name, text in (
        ("rules", RULES.format(unique=unique)),
        ("agents", AGENTS),
        ("policies", POLICIES),
    ):
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    connection = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "database_url": database_url,
        "consumer_session_timeout_ms": SESSION_TIMEOUT_MS,
        "log_level": "WARNING",
    }
    apps = {
        "ingest": create_ingest(
            IngestSettings.model_validate({**connection, "integrations": TEST_INTEGRATIONS})
        ),
        "router": create_router(
            RouterSettings.model_validate(
                {
                    **connection,
                    "router_rules": tmp_path / "rules.yaml",
                    "router_agents": tmp_path / "agents.yaml",
                    "router_consumer_group": f"router-ops-{unique}",
                }
            )
        ),
        "sla": create_sla(
            SlaSettings.model_validate(
                {
                    **connection,
                    "sla_policies": tmp_path / "policies.yaml",
                    "sla_agents": tmp_path / "agents.yaml",
                    "sla_consumer_group": f"sla-ops-{unique}",
                }
            )
        ),
    }
    async with (
        running(apps["ingest"]) as ingest,
        running(apps["router"]) as router,
        running(apps["sla"]) as sla,
        producer(kafka_bootstrap) as kafka,
    ):
        fresh = {
            "ingest": (await ingest.get("/metrics")).text,
            "router": (await router.get("/metrics")).text,
            "sla": (await sla.get("/metrics")).text,
        }
        check_precreated(fresh)
        answered = generic(f"answered-{unique}", f"{unique}-1", "where is my order?")
        for body in (
            generic(f"late-{unique}", f"{unique}-0", f"hurry{unique} please"),
            answered,
            answered,  # a platform redelivery: counted as a duplicate
            generic(f"answered-{unique}", f"{unique}-2", "on its way!", direction="outbound"),
        ):
            accepted = await ingest.post("/v1/messages", json=body)
            assert accepted.status_code == 202, accepted.text
        refused = await ingest.post("/v1/messages", content=b"{not json")
        assert refused.status_code == 400
        await kafka.send_and_wait(topics.MESSAGES, b"not a message", key=unique.encode())

        async def scrape_sla() -> str:
            return (await sla.get("/metrics")).text

        # One clock breached and one fulfilled, so that their series carry labels to check.
        sla_text = await eventually(
            scrape_sla,
            lambda text: sampled(
                text,
                "casewire_sla_warnings_total",
                "casewire_sla_breaches_total",
                "casewire_sla_clocks_fulfilled_total",
            ),
            timeout=60,
        )
        scrapes = {
            "ingest": (await ingest.get("/metrics")).text,
            "router": (await router.get("/metrics")).text,
            "sla": sla_text,
        }
    assert sampled(
        scrapes["sla"], "casewire_sla_breaches_total", "casewire_sla_response_seconds_count"
    )
    assert sampled(scrapes["router"], "casewire_dead_letters_total")
    assert sampled(scrapes["ingest"], "casewire_ingest_duplicates_total")

    # The configured bounds the catalog describes in words: the roster (nikos) and the rules
    # file's tags (none here), anything else `other`.
    router_families = exported_families(scrapes["router"])
    agents = router_families["casewire_router_replies"].labels.get("agent", set())
    # The answered case's owner, the roster's series; the cases of messages other tests left on
    # the shared topic may add `other` and `unassigned`, never an agent id outside the roster.
    assert "nikos" in agents, agents
    assert agents <= {"nikos", "other", "unassigned"}, agents
    assert all(
        family.labels.get("agent", set()) <= {"nikos", "other", "unassigned"}
        and family.labels.get("tag", set()) <= {"other"}
        for family in router_families.values()
    )

    # The SLA service's roster is the same agents file: nikos's series, started at zero.
    sla_families = exported_families(scrapes["sla"])
    sla_agents = sla_families["casewire_sla_agent_response_seconds"].labels.get("agent", set())
    assert "nikos" in sla_agents
    assert sla_agents <= {"nikos", "other", "unassigned"}, sla_agents
    # Languages: CASEWIRE_LANGUAGES, other, unknown (the generic messages here carry none).
    languages = set(RouterSettings().languages.split(",")) | {"other", "unknown"}
    assert all(
        family.labels.get("language", set()) <= languages for family in router_families.values()
    )

    catalog = load_catalog()
    problems = [
        f"{service}: {problem}"
        for service, text in scrapes.items()
        for problem in scrape_differences(catalog, service, text)
    ]
    assert not problems, (
        "docs/operations/metrics-catalog.yaml disagrees with the running services;"
        " update the catalog (and docs/operations/metrics.md):\n  " + "\n  ".join(problems)
    )


def check_precreated(scrapes: dict[str, str]) -> None:
    """Every label set the catalog says is pre-created is there before any event (the router
    may already count records other tests left: presence, not the value, is checked)."""
    catalog = load_catalog()
    languages = RouterSettings().languages.split(",")
    configured = {
        "team": frozenset({"care", "fastlane"}),
        "integration": frozenset({"tests"}),
        "language": frozenset({*languages, "other", "unknown"}),
        "tag": frozenset({"other"}),  # the rules file has no tags
    }
    problems = [
        f"{service}: {problem}"
        for service, text in scrapes.items()
        for problem in missing_precreated(catalog, service, text, configured)
    ]
    dead_letters = {
        "ingest": {topics.RAW: NORMALIZATION_REASONS},
        "router": ROUTER_DEAD_LETTERS,
        "sla": SLA_DEAD_LETTERS,
    }
    for service, reasons in dead_letters.items():
        exported = {
            (sample.labels["topic"], sample.labels["reason"])
            for family in text_string_to_metric_families(scrapes[service])
            if family.name == "casewire_dead_letters"
            for sample in family.samples
            if sample.name == "casewire_dead_letters_total"
            and sample.labels["component"] == service
        }
        problems += [
            f"{service}: casewire_dead_letters_total{{{topic}, {reason}}} not pre-created"
            for topic, names in reasons.items()
            for reason in names
            if (topic, reason) not in exported
        ]
    assert not problems, "label sets missing at start:\n  " + "\n  ".join(problems)
