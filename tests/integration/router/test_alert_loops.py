"""SLA alerts in, on the real broker and PostgreSQL: a bad alert is dead-lettered while the
others are applied, and a retracted breach undoes its escalation only while nothing else has
changed the case."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import SlaAlertData, encode_event
from casewire_common.pg import migrate
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.main import create_app

from tests.integration.helpers import (
    EventReader,
    eventually,
    metric_value,
    producer,
    running,
    topic_reader,
)
from tests.integration.router.test_threading_incidents import (
    about,
    canonical,
    settings_for,
    start_at_topic_ends,
)


@dataclass
class Desk:
    """A running router, a producer, and this test's case events as they come."""

    kafka: AIOKafkaProducer
    reader: EventReader
    client: httpx.AsyncClient
    pg: asyncpg.Connection
    unique: str

    async def open_case(self, name: str) -> str:
        conversation = f"x:brand:t{name}{self.unique}:c{name}{self.unique}"
        await self.kafka.send_and_wait(
            topics.MESSAGES,
            canonical(conversation, f"{self.unique}-{name}", "hello there", customer=name),
            key=conversation.encode(),
        )
        events = await self.reader.read_until(
            lambda got: any(self._created(e, conversation) for e in got), keep=about(self.unique)
        )
        return next(str(e.data["case"]["id"]) for e in events if self._created(e, conversation))

    async def follow_up(self, name: str, pid: str) -> None:
        conversation = f"x:brand:t{name}{self.unique}:c{name}{self.unique}"
        await self.kafka.send_and_wait(
            topics.MESSAGES,
            canonical(conversation, f"{self.unique}-{pid}", "any news?", customer=name),
            key=conversation.encode(),
        )

    async def alert(
        self, event_type: str, case_id: str, event_id: str, retracts: str | None = None
    ) -> None:
        record = encode_event(
            event_id=event_id,
            event_type=event_type,
            source="casewire/sla",
            subject=case_id,
            time=datetime.now(UTC),
            data=SlaAlertData(
                case_id=case_id,
                policy_id="standard",
                clock="first_response",
                target_seconds=900,
                started_at=datetime.now(UTC) - timedelta(minutes=15),
                due_at=datetime.now(UTC),
                fraction=1.0,
                team="care",
                priority="P4",
                retracted_alert_id=retracts,
            ),
        )
        await self.kafka.send(
            topics.SLA_ALERTS,
            record.value,
            key=self.unique.encode(),  # one partition: the test's alerts come in order
            headers=list(record.headers.items()),
        )

    async def case_row(self, case_id: str) -> asyncpg.Record:
        row = await self.pg.fetchrow(
            f"SELECT team, priority, assignee, tags, version FROM {SCHEMA}.cases WHERE id = $1",
            uuid.UUID(case_id),
        )
        assert row is not None
        return row

    @staticmethod
    def _created(event: ev.DecodedEvent, conversation: str) -> bool:
        return (
            event.type == ev.CASE_CREATED and event.data["case"]["conversation_id"] == conversation
        )


@asynccontextmanager
async def desk(
    tmp_path: Path, database_url: str, bootstrap: str, unique: str, pg: asyncpg.Connection
) -> AsyncIterator[Desk]:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    async with (
        running(app) as client,
        producer(bootstrap) as kafka,
        topic_reader(bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        yield Desk(kafka, EventReader(events_in), client, pg, unique)


async def read_dead_letters(
    reader: AIOKafkaConsumer, unique: str, count: int
) -> list[ConsumerRecord[bytes, bytes]]:
    dead: list[ConsumerRecord[bytes, bytes]] = []

    async def more() -> int:
        for batch in (await reader.getmany(timeout_ms=200)).values():
            dead.extend(r for r in batch if r.key == unique.encode())
        return len(dead)

    await eventually(more, lambda n: n >= count)
    return dead


async def test_an_alert_that_cannot_be_applied_is_dead_lettered_and_the_others_applied(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str, pg: asyncpg.Connection
) -> None:
    async with (
        desk(tmp_path, database_url, kafka_bootstrap, unique, pg) as d,
        topic_reader(kafka_bootstrap, topics.dlq(topics.SLA_ALERTS)) as dlq_in,
    ):
        case_id = await d.open_case("a")
        no_such_case = str(uuid.uuid4())
        # PostgreSQL refuses this id (not a uuid); the one before has no case; the last is
        # good. Sent together, on one partition: one batch as often as not.
        await d.alert(ev.SLA_BREACHED, no_such_case, f"ghost-{unique}")
        await d.alert(ev.SLA_BREACHED, f"not-a-uuid-{unique}", f"refused-{unique}")
        await d.alert(ev.SLA_BREACHED, case_id, f"breach-{unique}")
        await d.kafka.flush()
        events = await d.reader.read_until(
            lambda got: any(e.type == ev.CASE_ESCALATED for e in got), keep=about(unique)
        )
        dead = await read_dead_letters(dlq_in, unique, 2)

    assert [e.data["sla_alert_id"] for e in events if e.type == ev.CASE_ESCALATED] == [
        f"breach-{unique}"
    ]
    reasons = {
        dict(r.headers)["ce_id"].decode(): dict(r.headers)[topics.DLQ_REASON_HEADER].decode()
        for r in dead
    }
    assert reasons == {f"ghost-{unique}": "unknown_case", f"refused-{unique}": "processing_failed"}
    row = await d.case_row(case_id)
    assert (row["team"], row["priority"]) == ("leads", "P1")


async def test_a_retracted_breach_undoes_its_escalation_when_nothing_else_changed_the_case(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str, pg: asyncpg.Connection
) -> None:
    async with desk(tmp_path, database_url, kafka_bootstrap, unique, pg) as d:
        case_id = await d.open_case("b")
        before = await d.case_row(case_id)
        assert (before["team"], before["assignee"]) == ("care", f"amal{unique}")
        await d.alert(ev.SLA_BREACHED, case_id, f"breach-{unique}")
        await d.alert(ev.SLA_BREACH_RETRACTED, case_id, f"retract-{unique}", f"breach-{unique}")
        await d.kafka.flush()
        events = await d.reader.read_until(
            lambda got: any(e.data.get("undoes_sla_alert_id") for e in got), keep=about(unique)
        )
        events = await d.reader.read_until(
            lambda got: got[-1].type == ev.CASE_ASSIGNED, keep=about(unique)
        )
        metrics = (await d.client.get("/metrics")).text

    after = await d.case_row(case_id)
    assert (after["team"], after["priority"], after["assignee"]) == (
        before["team"],
        before["priority"],
        before["assignee"],
    )
    assert "escalated" not in after["tags"]
    mine = [e for e in events if e.data["case"]["id"] == case_id]
    assert [(e.type, e.data["case"]["team"], e.data["case"]["assignee"]) for e in mine] == [
        (ev.CASE_CREATED, "care", None),
        (ev.CASE_ASSIGNED, "care", f"amal{unique}"),
        (ev.CASE_ESCALATED, "leads", None),  # amal is not in leads
        (ev.CASE_ASSIGNED, "leads", f"lena{unique}"),
        (ev.CASE_ESCALATED, "care", None),  # the undo
        (ev.CASE_ASSIGNED, "care", f"amal{unique}"),
    ]
    undo = mine[-2]
    assert (undo.data["undoes_sla_alert_id"], undo.data["sla_alert_id"]) == (
        f"breach-{unique}",
        f"retract-{unique}",
    )
    assert [e.data["case"]["version"] for e in mine] == list(range(1, len(mine) + 1))
    assert after["version"] == len(mine)
    undone_by = await pg.fetchval(
        f"SELECT undone_by FROM {SCHEMA}.escalations WHERE alert_id = $1", f"breach-{unique}"
    )
    assert undone_by == f"retract-{unique}"
    assert metric_value(metrics, "casewire_router_breach_retractions_total", {"outcome": "undone"})


async def test_a_retracted_breach_leaves_the_escalation_once_the_case_changed_after_it(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str, pg: asyncpg.Connection
) -> None:
    async with desk(tmp_path, database_url, kafka_bootstrap, unique, pg) as d:
        case_id = await d.open_case("c")
        await d.alert(ev.SLA_BREACHED, case_id, f"breach-{unique}")
        await d.kafka.flush()
        await d.reader.read_until(
            lambda got: got[-1].type == ev.CASE_ASSIGNED and len(got) == 4, keep=about(unique)
        )
        await d.follow_up("c", "later")  # the customer writes again: the case changed
        await d.reader.read_until(
            lambda got: got[-1].type == ev.CASE_MESSAGE_ADDED, keep=about(unique)
        )
        await d.alert(ev.SLA_BREACH_RETRACTED, case_id, f"retract-{unique}", f"breach-{unique}")
        await d.kafka.flush()

        async def kept() -> float:
            text = (await d.client.get("/metrics")).text
            return metric_value(
                text, "casewire_router_breach_retractions_total", {"outcome": "case_changed"}
            )

        assert await eventually(kept, lambda count: count == 1) == 1
        events = await d.reader.read_until(lambda _: False, keep=about(unique), timeout=1)

    assert [e.type for e in events][-1] == ev.CASE_MESSAGE_ADDED  # no undo was published
    row = await d.case_row(case_id)
    assert (row["team"], row["priority"], row["assignee"]) == ("leads", "P1", f"lena{unique}")
    undone_by = await pg.fetchval(
        f"SELECT undone_by FROM {SCHEMA}.escalations WHERE alert_id = $1", f"breach-{unique}"
    )
    assert undone_by is None
