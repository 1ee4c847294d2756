"""The metrics catalog against the running services: one message goes through ingest, router and
sla (and an unreadable one to the dead-letter path), then each service's /metrics must export
exactly what docs/operations/metrics-catalog.yaml lists for it, with its types and labels."""

from __future__ import annotations


from pathlib import Path

import pytest
from casewire_common import topics
from casewire_common.pg import migrate
from casewire_ingest.adapters.dedup import MIGRATIONS_PACKAGE as INGEST_MIGRATIONS
from casewire_ingest.adapters.dedup import SCHEMA as INGEST_SCHEMA
from casewire_ingest.main import create_app as create_ingest
from casewire_ingest.settings import IngestSettings
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE as ROUTER_MIGRATIONS
from casewire_router.adapters.repository import SCHEMA as ROUTER_SCHEMA
from casewire_router.main import create_app as create_router
from casewire_router.settings import RouterSettings
from casewire_sla.adapters.store import MIGRATIONS as SLA_MIGRATIONS
from casewire_sla.adapters.store import SCHEMA as SLA_SCHEMA
from casewire_sla.main import create_app as create_sla
from casewire_sla.settings import SlaSettings

from tests.integration.helpers import eventually, metric_value, producer, running
from tests.unit.ops.catalog import load_catalog, scrape_differences

pytestmark = pytest.mark.integration

RULES = """
version: 1
default_team: care
teams: [care]
rules: []
"""
AGENTS = """
agents:
  - {id: nikos, teams: [care], languages: [en], capacity: 1000, online: true}
"""
POLICIES = """
version: 1
calendars: [{id: always, always_open: true}]
policies:
  - {id: standard, match: {}, calendar: always, first_response: 1h, warn_at: [0.5]}
"""


async def test_every_service_exports_exactly_the_catalogued_metrics(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str
) -> None:
    for schema, migrations in (
        (INGEST_SCHEMA, INGEST_MIGRATIONS),
        (ROUTER_SCHEMA, ROUTER_MIGRATIONS),
        (SLA_SCHEMA, SLA_MIGRATIONS),
    ):
        await migrate(database_url, schema, migrations)
    for name, text in (("rules", RULES), ("agents", AGENTS), ("policies", POLICIES)):
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    common = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "database_url": database_url,
        "consumer_session_timeout_ms": 6000,
        "log_level": "WARNING",
    }
    apps = {
        "ingest": create_ingest(IngestSettings(**common)),
        "router": create_router(
            RouterSettings(
                **common,
                router_rules=tmp_path / "rules.yaml",
                router_agents=tmp_path / "agents.yaml",
                router_consumer_group=f"router-ops-{unique}",
            )
        ),
        "sla": create_sla(
            SlaSettings(
                **common,
                sla_policies=tmp_path / "policies.yaml",
                sla_consumer_group=f"sla-ops-{unique}",
            )
        ),
    }
    message = {
        "platform": "x",
        "channel": "dm",
        "direction": "inbound",
        "account_id": "brand",
        "platform_message_id": f"ops-{unique}",
        "conversation_id": f"x:brand:ops-{unique}",
        "author": {"id": "customer"},
        "text": "where is my order?",
        "sent_at": "2026-11-28T08:00:00Z",
    }
    async with (
        running(apps["ingest"]) as ingest,
        running(apps["router"]) as router,
        running(apps["sla"]) as sla,
        producer(kafka_bootstrap) as kafka,
    ):
        accepted = await ingest.post("/v1/messages", json=message)
        assert accepted.status_code == 202, accepted.text
        refused = await ingest.post("/v1/messages", content=b"{not json")
        assert refused.status_code == 400
        await kafka.send_and_wait(topics.MESSAGES, b"not a message", key=unique.encode())

        async def scrape_sla() -> str:
            return (await sla.get("/metrics")).text

        # The session's earlier messages are read too: any case started a clock once ours did.
        sla_text = await eventually(
            scrape_sla,
            lambda text: metric_value(text, "casewire_sla_clocks_started_total") > 0,
            timeout=60,
        )
        scrapes = {
            "ingest": (await ingest.get("/metrics")).text,
            "router": (await router.get("/metrics")).text,
            "sla": sla_text,
        }
    assert metric_value(scrapes["router"], "casewire_dead_letters_total") >= 1

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

