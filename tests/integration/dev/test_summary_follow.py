"""The demo summary fed from the real broker: events of this run counted, older ones skipped."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from casewire_common import events, topics
from casewire_dev.stack import Stack
from casewire_dev.summary import DemoSummary, follow

from tests.integration.helpers import eventually, producer

pytestmark = pytest.mark.integration


def created(case_id: str, team: str) -> events.EventRecord:
    opened = datetime.now(UTC)
    case = events.CaseSnapshot(
        id=case_id,
        conversation_id=f"x:brand:{case_id}:42",
        platform="x",
        channel="mention",
        visibility="public",
        status="queued",
        priority="P2",
        urgency_score=40,
        team=team,
        assignee=None,
        tags=[],
        language="en",
        opened_at=opened,
        first_response_at=None,
        resolved_at=None,
    )
    return events.encode_event(
        event_id=f"{case_id}/created",
        event_type=events.CASE_CREATED,
        source="test",
        subject=case_id,
        time=opened,
        data=events.CaseEventData(case=case),
    )


async def test_summary_counts_this_runs_events_and_skips_earlier_ones(
    stack: Stack, unique: str
) -> None:
    since_ms = int(time.time() * 1000)
    old, new = created(f"old-{unique}", "billing"), created(f"new-{unique}", "shipping")
    async with producer(stack.kafka_bootstrap_servers) as kafka:
        for record, timestamp_ms in ((old, since_ms - 60_000), (new, None)):
            await kafka.send_and_wait(
                topics.CASE_EVENTS,
                record.value,
                key=record.key.encode(),
                headers=list(record.headers.items()),
                timestamp_ms=timestamp_ms,
            )

    summary = DemoSummary()
    watcher = asyncio.create_task(
        follow(
            stack.kafka_bootstrap_servers,
            summary,
            since_ms=since_ms,
            group_id=f"demo-summary-{unique}",
        )
    )
    try:

        async def probe() -> DemoSummary:
            if watcher.done():
                watcher.result()  # a failed consumer fails the test with its error
            return summary

        await eventually(probe, lambda s: f"new-{unique}" in s.cases, timeout=30)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

    assert summary.cases[f"new-{unique}"].team == "shipping"
    assert f"old-{unique}" not in summary.cases
