"""The unit of work's claim: one statement per batch, whatever its size or its repeats (the
router's hot path pays for exactly one), and the inputs it returns are the new ones, in order."""

from __future__ import annotations

from typing import Any

from casewire_common.unit_of_work import UnitOfWork


class StatementLog:
    """A connection that records statements and finds every key new except `seen` ones."""

    def __init__(self, seen: set[str]) -> None:
        self.seen = seen
        self.statements: list[tuple[str, list[str]]] = []

    async def fetch(self, sql: str, keys: list[str]) -> list[dict[str, Any]]:
        self.statements.append((sql, keys))
        return [{"key": key} for key in keys if key not in self.seen]


async def test_a_batch_is_claimed_in_one_statement_first_of_each_key_in_order() -> None:
    connection = StatementLog(seen={"b"})
    work = UnitOfWork(connection, "router")  # type: ignore[arg-type]

    fresh = await work.claim([("c", 1), ("a", 2), ("b", 3), ("c", 4)], lambda item: item[0])

    assert fresh == [("c", 1), ("a", 2)]
    assert work.duplicates == 2  # "b" processed before, "c" twice in the batch
    assert len(connection.statements) == 1
    sql, keys = connection.statements[0]
    assert sql.startswith('INSERT INTO "router".processed_inputs')
    assert keys == ["c", "a", "b"]


async def test_an_empty_batch_costs_no_statement() -> None:
    connection = StatementLog(seen=set())
    work = UnitOfWork(connection, "sla")  # type: ignore[arg-type]
    assert await work.claim([], str) == []
    assert connection.statements == []
