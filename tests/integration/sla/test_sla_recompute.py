"""`casewire-sla recompute` against the real PostgreSQL: report, then apply, a policy change."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from casewire_common.events import CASE_CREATED, CASE_STATUS_CHANGED, CaseEventData
from casewire_sla.adapters.store import PostgresClockStore
from casewire_sla.clock_service import ClockService, IncomingCaseEvent
from casewire_sla.domain.policies import parse_policy_set
from casewire_sla.entrypoints.cli import main

from tests.unit.sla.factories import snapshot

pytestmark = pytest.mark.integration

BEFORE = """
version: 1
calendars: [{id: always, always_open: true}]
policies:
  - {id: old, calendar: always, first_response: 10m, resolution: 1h, warn_at: [0.5],
     pause_on: [pending]}
"""
# P1 cases move to a policy of their own; the others keep `old` with a longer target.
AFTER = """
version: 1
calendars: [{id: always, always_open: true}]
policies:
  - {id: urgent, match: {priority: [P1]}, calendar: always, first_response: 2m,
     resolution: 30m, warn_at: [0.5], pause_on: [pending]}
  - {id: old, calendar: always, first_response: 20m, resolution: 1h, warn_at: [0.5],
     pause_on: [pending]}
"""


def event(
    event_type: str, case_id: str, opened_at: datetime, **changes: object
) -> IncomingCaseEvent:
    data = CaseEventData(case=snapshot(case_id, opened_at, **changes))
    return IncomingCaseEvent(str(uuid.uuid4()), event_type, data)


async def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    assert await asyncio.to_thread(main, args) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


async def test_recompute_reports_then_applies_new_due_times_with_policy_reselection(
    store: PostgresClockStore,
    migrated_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    await ClockService(store, parse_policy_set(BEFORE)).apply_case_events(
        [
            event(CASE_CREATED, "p1", opened, priority="P1"),
            event(CASE_CREATED, "p2", opened),
            event(CASE_STATUS_CHANGED, "p2", opened, status="pending"),
        ],
        opened,
    )
    policy_file = tmp_path / "after.yaml"
    policy_file.write_text(AFTER)
    monkeypatch.setenv("CASEWIRE_DATABASE_URL", migrated_url)
    args = ["recompute", "--policies", str(policy_file)]

    dry = await run_cli(args, capsys)
    by_clock = {(row["case_id"], row["clock"]): row for row in dry}
    assert set(by_clock) == {
        ("p1", "first_response"),
        ("p1", "resolution"),
        ("p2", "first_response"),
        ("p2", "resolution"),
    }
    p1_first = by_clock["p1", "first_response"]
    assert (p1_first["old_policy"], p1_first["new_policy"]) == ("old", "urgent")
    assert p1_first["new_due_at"] == (opened + timedelta(minutes=2)).isoformat().replace(
        "+00:00", "Z"
    )
    assert by_clock["p2", "first_response"]["new_due_at"] == (
        opened + timedelta(minutes=20)
    ).isoformat().replace("+00:00", "Z")
    # Paused since its opening: its pause is kept, no due_at until it resumes.
    assert by_clock["p2", "resolution"]["paused"] is True
    assert by_clock["p2", "resolution"]["new_due_at"] is None
    assert all(row["case_fields_known"] for row in dry)
    pg = await asyncpg.connect(migrated_url)
    try:
        assert await pg.fetchval("SELECT count(*) FROM sla.clocks WHERE policy_id = 'urgent'") == 0

        applied = await run_cli([*args, "--apply"], capsys)
        assert [row["new_due_at"] for row in applied] == [row["new_due_at"] for row in dry]
        clock = await pg.fetchrow(
            "SELECT id, policy_id, target_seconds, due_at FROM sla.clocks"
            " WHERE case_id = 'p1' AND clock = 'first_response'"
        )
        assert clock is not None
        assert (clock["policy_id"], clock["target_seconds"]) == ("urgent", 120)
        assert clock["due_at"] == opened + timedelta(minutes=2)
        timers = await pg.fetch(
            "SELECT kind, fire_at FROM sla.timers WHERE clock_id = $1 AND fired_at IS NULL"
            " ORDER BY fire_at",
            clock["id"],
        )
        assert [(t["kind"], t["fire_at"]) for t in timers] == [
            ("warning", opened + timedelta(minutes=1)),
            ("breach", opened + timedelta(minutes=2)),
        ]
        paused_timers = await pg.fetchval(
            "SELECT count(*) FROM sla.timers t JOIN sla.clocks c ON c.id = t.clock_id"
            " WHERE c.case_id = 'p2' AND c.clock = 'resolution' AND t.fired_at IS NULL"
        )
        assert paused_timers == 0
    finally:
        await pg.close()
    # Applied once, nothing is left to change.
    again = await run_cli(args, capsys)
    assert not any(row["changed"] for row in again)
