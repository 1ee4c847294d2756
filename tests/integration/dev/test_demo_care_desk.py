"""The demo's care desk against the real router, broker and PostgreSQL: it finds cases through
the summary fed from Kafka, resolves them through the case API, and the queue drains."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from casewire_common import topics
from casewire_common.pg import migrate
from casewire_dev.care_desk import DeskProgress, PlannedResolution, run_care_desk
from casewire_dev.identity import LocalIdentity
from casewire_dev.replay import ReplayProgress
from casewire_dev.summary import DemoSummary, follow
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.main import create_app

from tests.integration.helpers import eventually, producer
from tests.integration.router.test_case_api import customer_message, settings_for
from tests.integration.router.test_threading_incidents import start_at_topic_ends

pytestmark = pytest.mark.integration


async def test_care_desk_resolves_cases_and_the_waiting_case_takes_the_freed_place(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    first, second = (f"x:brand:{unique}{name}:cust{unique}{name}" for name in ("a", "b"))
    never_opened = f"x:brand:{unique}none:cust{unique}none"
    summary = DemoSummary()
    watcher = asyncio.create_task(
        follow(
            kafka_bootstrap,
            summary,
            since_ms=int(time.time() * 1000),
            group_id=f"demo-desk-{unique}",
        )
    )

    async def statuses(done: Callable[[list[str | None]], bool]) -> list[str | None]:
        """The two conversations' case statuses on Kafka, once `done` with them."""

        async def probe() -> list[str | None]:
            if watcher.done():
                watcher.result()  # a failed consumer fails the test with its error
            cases = (summary.case_of(conversation) for conversation in (first, second))
            return [None if case is None else case[1] for case in cases]

        return await eventually(probe, done, timeout=30)

    def router(token: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.AsyncClient(transport=transport, base_url="http://router", headers=headers)

    try:
        async with (
            app.router.lifespan_context(app),
            router(identity.token("care-desk", ["admin"])) as desk_client,
        ):
            agent = {"teams": ["shipping"], "languages": ["en"], "capacity": 1, "online": True}
            created = await desk_client.put("/v1/agents/amal", json=agent)
            assert created.status_code == 201, created.text
            async with producer(kafka_bootstrap) as kafka:
                # One after the other: the two conversations' messages use different partitions.
                for conversation, expected in (
                    (first, ["assigned", None]),
                    (second, ["assigned", "queued"]),
                ):
                    body = customer_message(
                        conversation,
                        f"{conversation}-1",
                        f"where is my parcel{unique}?",
                        datetime.now(UTC),
                    )
                    await kafka.send_and_wait(topics.MESSAGES, body, key=conversation.encode())
                    assert await statuses(lambda found, want=expected: found == want) == expected
            replayed = ReplayProgress(planned=3, posted=3)

            # A wrong token is counted as a failure; the desk goes on and the case stays open.
            refused = DeskProgress()
            async with router("not-the-token") as wrong:
                await run_care_desk(
                    [PlannedResolution(0, first, 0.0)], summary, replayed, wrong, refused
                )
            assert (refused.resolved, refused.failed) == (0, 1)
            assert refused.last_failure is not None
            assert "401" in refused.last_failure

            desk = DeskProgress()
            planned = [
                PlannedResolution(0, first, 0.0),
                PlannedResolution(1, first, 0.0),  # a second time: already closed, not an error
                PlannedResolution(2, never_opened, 0.0),
            ]
            await asyncio.wait_for(
                run_care_desk(planned, summary, replayed, desk_client, desk, case_wait_seconds=1),
                timeout=30,
            )
            assert (desk.resolved, desk.already_closed, desk.failed) == (1, 1, 1)
            assert desk.last_failure == f"{never_opened}: no case seen on Kafka"
            # Resolving freed amal's only place: the router drained the queue at once.
            assert await statuses(lambda found: found[1] == "assigned") == [
                "resolved",
                "assigned",
            ]
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
