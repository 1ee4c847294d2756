"""The outbox backlog gauge while Kafka refuses: it counts what waits, on real PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest
from casewire_common.events import encode_event
from casewire_common.kafka import KafkaRecord
from casewire_common.metrics import new_registry
from casewire_common.outbox import OutboxMetrics, OutboxRelay, add_to_outbox
from casewire_common.pg import migrate
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from prometheus_client import generate_latest
from pydantic import BaseModel

from tests.integration.helpers import metric_value
from tests.unit.router.factories import T0


class _Data(BaseModel):
    n: int


async def _kafka_away(records: Sequence[KafkaRecord]) -> None:
    raise ConnectionError("broker unreachable")


async def test_backlog_counts_the_rows_kafka_did_not_take(
    database_url: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    records = [
        (
            "casewire.case-events.v1",
            encode_event(
                event_id=f"e{n}",
                event_type="casewire.case.created",
                source="test",
                subject=f"case-{n}",
                time=T0,
                data=_Data(n=n),
            ),
        )
        for n in range(3)
    ]
    async with pg.transaction():
        await add_to_outbox(pg, SCHEMA, records)
    registry = new_registry()
    relay = OutboxRelay(database_url, SCHEMA, _kafka_away, OutboxMetrics(registry, "router"))
    with pytest.raises(ConnectionError):
        await relay.relay_once(pg)
    scraped = generate_latest(registry).decode()
    assert metric_value(scraped, "casewire_outbox_backlog", {"component": "router"}) == 3
    assert await pg.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox") == 3  # nothing lost
