"""`save_outcome` writes every changed case in one statement: each case gets exactly its own
values back, tags of any text included (quotes, commas, braces, non-Latin), NULLs as NULLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from casewire_common.pg import migrate
from casewire_router.adapters import repository
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.domain.case import CaseState
from casewire_router.domain.outcome import RoutingOutcome

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def case(number: int, **changes: object) -> CaseState:
    fields: dict[str, object] = {
        "id": f"00000000-0000-4000-8000-{number:012d}",
        "conversation_id": f"x:brand:{number}:customer{number}",
        "customer_id": f"customer{number}",
        "account_id": "brand",
        "platform": "x",
        "channel": "mention",
        "visibility": "public",
        "status": "queued",
        "priority": "P3",
        "urgency_score": 30,
        "team": "care",
        "assignee": None,
        "tags": [],
        "language": None,
        "opened_at": T0,
    }
    fields.update(changes)
    return CaseState(**fields)  # type: ignore[arg-type]


async def test_changed_cases_are_written_each_with_its_own_values(
    database_url: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    originals = [case(number) for number in range(1, 4)]
    await repository.save_outcome(
        pg, RoutingOutcome(cases={c.id: c for c in originals}, opened={c.id for c in originals}), T0
    )
    changed = [
        case(
            1,
            status="assigned",
            priority="P1",
            urgency_score=90,
            team="incidents",
            assignee="amal",
            tags=['say "hi"', "a,b", "{braces}", "back\\slash", "ล่ม", "NULL", ""],
            language="th",
            first_response_at=T0 + timedelta(minutes=5),
            queued_at=T0 + timedelta(minutes=1),
        ),
        case(2, status="resolved", tags=["only"], resolved_at=T0 + timedelta(hours=2)),
        case(3, status="pending", tags=[]),
    ]

    await repository.save_outcome(pg, RoutingOutcome(cases={c.id: c for c in changed}), T0)

    rows = await pg.fetch(f"SELECT {repository.case_columns()} FROM {SCHEMA}.cases ORDER BY id")
    assert [repository.read_case(row) for row in rows] == changed
