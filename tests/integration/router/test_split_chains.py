"""A reply chain split into two cases by processing order, merged by absorption on the real
PostgreSQL: messages and conversations moved, the owner's load released, redelivery changing
nothing, and two replicas processing a reply and the customer's answer to it at once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import asyncpg
import pytest
from casewire_common import events as ev
from casewire_common.messages import message_id
from casewire_common.pg import Database, migrate
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.message_service import MessageService
from casewire_router.settings import RouterSettings

from tests.integration.router.test_event_time_order import waiting_on_locks
from tests.integration.router.test_threading_incidents import canonical
from tests.integration.router.test_two_replicas import as_record, routing_service

# The customer answers a day after the tweet, beyond the merge window: no lookup of their
# other open cases locks the tweet's case, which would serialize the replicas by chance.
DAY_LATER = 25 * 3600


class Chain:
    """One customer's tweet (answering the brand's b0), the brand's reply to it and the
    customer's answer to that reply: three conversation keys on X."""

    def __init__(self, unique: str, sent: datetime) -> None:
        self.unique, self.sent = unique, sent
        self.customer = f"c{unique}"
        self.offsets = iter(range(1000))

    def conversation(self, root: str) -> str:
        return f"x:brand:{root}:{self.customer}"

    def pid(self, name: str) -> str:
        return f"{self.unique}-{name}"

    def id(self, name: str) -> str:
        return message_id("x", self.pid(name))

    def record(self, name: str) -> Any:
        """The message `name` (t: tweet, b: brand reply, c and d: answers to the reply)."""
        root, answers, seconds, direction = {
            "t": (f"b0{self.unique}", f"b0{self.unique}", 0, "inbound"),
            "b": (self.pid("t"), self.pid("t"), 30, "outbound"),
            "c": (self.pid("b"), self.pid("b"), DAY_LATER, "inbound"),
            "d": (self.pid("b"), self.pid("b"), DAY_LATER + 30, "inbound"),
        }[name]
        conversation = self.conversation(root)
        body = canonical(
            conversation,
            self.pid(name),
            "my order never came" if direction == "inbound" else "sorry! which order?",
            customer=self.customer if direction == "inbound" else "brand",
            at=self.sent + timedelta(seconds=seconds),
            direction=direction,
            in_reply_to=answers,
        )
        return as_record(conversation, body, next(self.offsets))


def settings(tmp_path: Path, database_url: str) -> RouterSettings:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\ndefault_team: care\nteams: [care]\nrules: []\n", "utf-8")
    return RouterSettings(database_url=database_url, router_rules=rules)


async def outbox_after(pg: asyncpg.Connection, before: int) -> list[tuple[str, dict[str, Any]]]:
    rows = await pg.fetch(
        f"SELECT headers, value FROM {SCHEMA}.outbox WHERE id > $1 ORDER BY id", before
    )
    return [(json.loads(r["headers"])["ce_type"], json.loads(r["value"])) for r in rows]


async def last_outbox_id(pg: asyncpg.Connection) -> int:
    return int(await pg.fetchval(f"SELECT coalesce(max(id), 0) FROM {SCHEMA}.outbox"))


async def test_an_answer_processed_before_the_reply_it_answers_is_absorbed_into_the_tweets_case(
    tmp_path: Path, database_url: str, unique: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    await pg.execute(
        f"INSERT INTO {SCHEMA}.agents (id, teams, languages, capacity, online)"
        " VALUES ('amal', '{care}', '{en}', 5, true)"
    )
    database = Database(database_url, min_size=1, max_size=2)
    await database.open()
    service: MessageService = routing_service(database, settings(tmp_path, database_url))
    chain = Chain(unique, datetime.now(UTC).replace(microsecond=0) - timedelta(days=2))
    try:
        await service.handle_records([chain.record("c")])  # its own case: the reply is unknown
        await service.handle_records([chain.record("t")])
        assert await pg.fetchval(f"SELECT load FROM {SCHEMA}.agents") == 2
        before = await last_outbox_id(pg)
        reply = chain.record("b")

        await service.handle_records([reply])

        events = await outbox_after(pg, before)
        assert [kind for kind, _ in events] == [
            ev.CASE_RESPONDED,
            ev.CASE_MERGED,
            ev.CASE_MERGED,
        ]
        kept_id = events[0][1]["case"]["id"]
        absorbed, kept = events[1][1], events[2][1]
        absorbed_id = absorbed["case"]["id"]
        assert absorbed["merged_into_case_id"] == kept_id
        assert absorbed["case"]["status"] == "resolved"
        assert (kept["case"]["id"], kept["merged_case_id"]) == (kept_id, absorbed_id)
        assert kept["merged_conversation_id"] == chain.conversation(chain.pid("b"))
        assert kept["message_id"] == absorbed["message_id"] == chain.id("b")
        cases = {
            str(row["id"]): row
            for row in await pg.fetch(f"SELECT id, status, opened_at FROM {SCHEMA}.cases")
        }
        assert {case_id: row["status"] for case_id, row in cases.items()} == {
            kept_id: "assigned",
            absorbed_id: "resolved",
        }
        assert cases[kept_id]["opened_at"] == chain.sent
        held = await pg.fetch(f"SELECT DISTINCT case_id FROM {SCHEMA}.messages")
        assert [str(row["case_id"]) for row in held] == [kept_id]
        links = await pg.fetch(
            f"SELECT conversation_id, case_id FROM {SCHEMA}.case_conversations ORDER BY 1"
        )
        assert {(row["conversation_id"], str(row["case_id"])) for row in links} == {
            (chain.conversation(f"b0{unique}"), kept_id),
            (chain.conversation(chain.pid("b")), kept_id),
        }
        assert await pg.fetchval(f"SELECT load FROM {SCHEMA}.agents") == 1

        before = await last_outbox_id(pg)
        await service.handle_records([reply])  # redelivered: changes nothing
        assert await outbox_after(pg, before) == []
        assert await pg.fetchval(f"SELECT load FROM {SCHEMA}.agents") == 1

        # The customer answers the reply again: the absorbed case's conversation leads to the
        # case kept.
        await service.handle_records([chain.record("d")])
        assert [(kind, data["case"]["id"]) for kind, data in await outbox_after(pg, before)] == [
            (ev.CASE_MESSAGE_ADDED, kept_id)
        ]
    finally:
        await database.close()


WaitPoint = Literal["answer first", "reply first"]


@pytest.mark.parametrize("first", ["answer first", "reply first"])
async def test_a_reply_and_the_customers_answer_to_it_in_two_replicas_at_once_end_as_one_case(
    tmp_path: Path, database_url: str, unique: str, first: WaitPoint
) -> None:
    """The first replica's transaction is held when it stores its message, after it has read
    everything: without the lock both messages and the answer to one, the second replica
    would read meanwhile, miss it, and leave two open cases."""
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    config = settings(tmp_path, database_url)
    databases = [Database(database_url, min_size=1, max_size=2) for _ in range(2)]
    for database in databases:
        await database.open()
    chain = Chain(unique, datetime.now(UTC).replace(microsecond=0) - timedelta(days=2))
    held_record, other_record = (
        (chain.record("c"), chain.record("b"))
        if first == "answer first"
        else (chain.record("b"), chain.record("c"))
    )
    holder = await asyncpg.connect(database_url)
    try:
        replicas = [routing_service(database, config) for database in databases]
        await replicas[0].handle_records([chain.record("t")])
        holding = holder.transaction()
        await holding.start()
        await holder.execute(f"LOCK TABLE {SCHEMA}.messages IN SHARE MODE")  # stops the COPY
        held = asyncio.create_task(replicas[0].handle_records([held_record]))
        assert await waiting_on_locks(holder, 1)
        other = asyncio.create_task(replicas[1].handle_records([other_record]))
        await asyncio.wait([other], timeout=1)  # done at once, or waiting for the held one
        await holding.rollback()
        await asyncio.wait_for(asyncio.gather(held, other), timeout=10)

        open_cases = await holder.fetch(
            f"SELECT id, opened_at FROM {SCHEMA}.cases WHERE status NOT IN ('resolved',"
            " 'no_action')"
        )
        assert len(open_cases) == 1, "the reply chain was left in two open cases"
        held_by = await holder.fetch(
            f"SELECT id, case_id FROM {SCHEMA}.messages ORDER BY sent_at",
        )
        assert [(str(row["id"]), row["case_id"]) for row in held_by] == [
            (chain.id(name), open_cases[0]["id"]) for name in "tbc"
        ]
        assert open_cases[0]["opened_at"] == chain.sent
    finally:
        await holder.close()
        for database in databases:
            await database.close()
