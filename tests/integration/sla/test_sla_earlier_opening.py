"""A customer message sent before the one that opened the case, read after the brand reply that
ended first_response, on the real PostgreSQL (and, last, the running app on the broker): the
answered clock starts earlier, its outcome and attainment follow, and a breach that now stands
fires late under the watermark rule, or never when an earlier reply turns up first."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from casewire_common import topics
from casewire_common.events import (
    CASE_ASSIGNED,
    CASE_CREATED,
    CASE_MESSAGE_ADDED,
    CASE_RESPONDED,
    CASE_STATUS_CHANGED,
    ROUTER_WATERMARK,
    SLA_BREACH_RETRACTED,
    SLA_BREACHED,
    SLA_CLOCK_FULFILLED,
    SLA_CLOCK_STARTED,
    SLA_WARNING,
    WatermarkData,
)
from casewire_sla.adapters.store import PostgresClockStore
from casewire_sla.clock_service import ClockService, IncomingCaseEvent
from casewire_sla.domain.holding import WatermarkHold
from casewire_sla.domain.policies import parse_policy_set

from tests.integration.sla.conftest import (
    case_on_running_sla,
    event,
    instant,
    policy_text,
    sla_settings,
)
from tests.unit.sla.factories import case_event, snapshot

pytestmark = pytest.mark.integration

# 10 s to a first reply, warned at half of it.
POLICIES = parse_policy_set(policy_text("10s", "[0.5]"))


def held() -> WatermarkHold:
    return WatermarkHold(
        topic=topics.MESSAGES, case_partitions=1, lease=timedelta(0), max_hold=timedelta(minutes=2)
    )


def watermark(at: datetime) -> IncomingCaseEvent:
    mark = WatermarkData(
        topic=topics.MESSAGES, partitions=1, watermarks={0: at}, caught_up=[0], replica="test"
    )
    return IncomingCaseEvent(str(uuid.uuid4()), ROUTER_WATERMARK, None, at, mark, 0)


class Thread:
    """One case's events as the router publishes them: opened by the customer's message at
    `opened_at`, answered at `reply`; `earlier` is a message of theirs sent before it."""

    def __init__(self, t0: datetime, *, opened: float, reply: float) -> None:
        self.t0 = t0
        self.opened_at = t0 + timedelta(seconds=opened)
        self.reply = t0 + timedelta(seconds=reply)

    def at(self, seconds: float) -> datetime:
        return self.t0 + timedelta(seconds=seconds)

    def created(self) -> IncomingCaseEvent:
        return event(CASE_CREATED, snapshot("c-1", self.opened_at), at=self.opened_at)

    def replied(
        self, reply: datetime | None = None, *, opened_at: datetime | None = None
    ) -> IncomingCaseEvent:
        reply = reply or self.reply
        case = snapshot(
            "c-1", opened_at or self.opened_at, status="assigned", first_response_at=reply
        )
        return event(CASE_RESPONDED, case, at=reply, first_response=True)

    def earlier(self, sent: float) -> IncomingCaseEvent:
        """The customer's message sent at `sent`, before the opening, read now."""
        case = snapshot("c-1", self.at(sent), status="assigned", first_response_at=self.reply)
        return event(CASE_MESSAGE_ADDED, case, at=self.at(sent))


async def outbox(pg: asyncpg.Connection) -> list[tuple[str, str, float | None, datetime]]:
    rows = await pg.fetch(
        "SELECT headers->>'ce_type' AS type, headers->>'ce_id' AS id,"
        " (convert_from(value, 'UTF8')::jsonb->>'fraction')::float AS fraction,"
        " (convert_from(value, 'UTF8')::jsonb->>'started_at')::timestamptz AS started_at"
        " FROM sla.outbox ORDER BY outbox.id"
    )
    return [(row["type"], row["id"], row["fraction"], row["started_at"]) for row in rows]


async def attainment(pg: asyncpg.Connection) -> dict[str, int]:
    rows = await pg.fetch("SELECT outcome, clocks FROM sla.attainment WHERE clocks <> 0")
    return {row["outcome"]: row["clocks"] for row in rows}


async def clock_row(pg: asyncpg.Connection) -> dict[str, object]:
    row = await pg.fetchrow("SELECT started_at, due_at, fulfilled_at, outcome FROM sla.clocks")
    assert row is not None
    return dict(row)


async def test_an_answered_clock_met_from_its_opening_breached_from_the_earlier_message(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    # Opened at +6 s and answered at +10.5 s: met (warned at +11 s, due +16 s). The customer
    # wrote at +0 s (their public post, read after their DM): warned at +5 s, due +10 s.
    thread = Thread(datetime.now(UTC) - timedelta(seconds=60), opened=6, reply=10.5)
    await service.apply_case_events([thread.created(), thread.replied()], datetime.now(UTC))
    assert await attainment(pg) == {"met": 1}
    earlier = thread.earlier(0)

    outcome = await service.apply_case_events([earlier], datetime.now(UTC))

    assert [(fired.kind, fired.provisional) for fired in outcome.fired] == [
        ("warning", False),
        ("breach", False),
    ]
    assert await clock_row(pg) == {
        "started_at": thread.at(0),
        "due_at": thread.at(10),
        "fulfilled_at": thread.at(10.5),
        "outcome": "breached",
    }
    assert await attainment(pg) == {"breached": 1}
    alerts = await outbox(pg)
    fired = [(kind, fraction, start) for kind, _, fraction, start in alerts[-3:]]
    assert fired == [
        (SLA_WARNING, 0.5, thread.at(0)),
        (SLA_BREACHED, 1.0, thread.at(0)),
        (SLA_CLOCK_FULFILLED, None, thread.at(0)),
    ]

    # Redelivered, and published again under a new id: nothing changes.
    again = await service.apply_case_events([earlier], datetime.now(UTC))
    await service.apply_case_events([thread.earlier(0)], datetime.now(UTC))
    assert again.duplicates == 1
    assert await outbox(pg) == alerts
    assert await attainment(pg) == {"breached": 1}


async def test_a_warning_fired_under_the_old_start_stays_and_is_not_fired_again(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    # Opened at +4 s, warned at +9 s, answered at +13 s (met, due +14 s); then the customer's
    # message of +2 s: due +12 s, breached; the warning (now +7 s) was alerted already.
    thread = Thread(datetime.now(UTC) - timedelta(seconds=60), opened=4, reply=13)
    await service.apply_case_events([thread.created(), thread.replied()], datetime.now(UTC))
    assert [kind for kind, *_ in await outbox(pg)].count(SLA_WARNING) == 1

    outcome = await service.apply_case_events([thread.earlier(2)], datetime.now(UTC))

    assert [fired.kind for fired in outcome.fired] == ["breach"]
    alerts = await outbox(pg)
    assert [(kind, start) for kind, _, _, start in alerts if kind == SLA_WARNING] == [
        (SLA_WARNING, thread.at(4))
    ]
    assert len({ce_id for _, ce_id, _, _ in alerts}) == len(alerts)
    assert await attainment(pg) == {"breached": 1}


async def test_the_breach_now_standing_waits_for_the_watermark_and_an_earlier_reply_cancels_it(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    thread = Thread(datetime.now(UTC) - timedelta(seconds=60), opened=4, reply=12)
    await service.apply_case_events([thread.created(), thread.replied()], datetime.now(UTC), held())

    outcome = await service.apply_case_events([thread.earlier(0)], datetime.now(UTC), held())

    # The router has not vouched for +10 s: a reply sent by then may still be on its way.
    assert outcome.fired == []
    assert await attainment(pg) == {"breached": 1}
    assert await service.fire_due_timers(datetime.now(UTC), 10, held()) == []
    # It was: the brand answered at +9 s too, read last.
    early = thread.replied(thread.at(9), opened_at=thread.at(0))
    await service.apply_case_events([early], datetime.now(UTC), held())
    await service.apply_case_events([watermark(datetime.now(UTC))], datetime.now(UTC), held())

    # The warning (+5 s) stands, the breach does not.
    fired = await service.fire_due_timers(datetime.now(UTC), 10, held())
    assert [(alert.kind, alert.clock.started_at) for alert in fired] == [("warning", thread.at(0))]
    assert SLA_BREACHED not in [kind for kind, *_ in await outbox(pg)]
    assert await attainment(pg) == {"met": 1}
    assert (await clock_row(pg))["fulfilled_at"] == thread.at(9)


async def test_a_held_breach_fires_once_the_watermark_passes_it_under_the_new_start(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    thread = Thread(datetime.now(UTC) - timedelta(seconds=60), opened=4, reply=12)
    await service.apply_case_events(
        [thread.created(), thread.replied(), thread.earlier(0)], datetime.now(UTC), held()
    )
    await service.apply_case_events([watermark(datetime.now(UTC))], datetime.now(UTC), held())

    fired = await service.fire_due_timers(datetime.now(UTC), 10, held())

    assert [(alert.kind, alert.provisional) for alert in fired] == [
        ("warning", False),
        ("breach", False),
    ]
    assert [start for kind, _, _, start in await outbox(pg) if kind == SLA_BREACHED] == [
        thread.at(0)
    ]


async def test_a_breach_fired_under_the_old_start_is_retracted_under_its_own_id(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    # Opened at +4 s, answered at +16 s: breached (due +14 s). Then the customer's message of
    # +0 s (due +10 s: still breached), then the brand's reply of +9 s: met after all.
    thread = Thread(datetime.now(UTC) - timedelta(seconds=60), opened=4, reply=16)
    await service.apply_case_events([thread.created(), thread.replied()], datetime.now(UTC))
    await service.apply_case_events([thread.earlier(0)], datetime.now(UTC))
    assert await attainment(pg) == {"breached": 1}

    early = thread.replied(thread.at(9), opened_at=thread.at(0))
    outcome = await service.apply_case_events([early], datetime.now(UTC))

    assert len(outcome.retracted) == 1
    alerts = await outbox(pg)
    (breach_id,) = [ce_id for kind, ce_id, _, _ in alerts if kind == SLA_BREACHED]
    retracted = await pg.fetchval(
        "SELECT convert_from(value, 'UTF8')::jsonb->>'retracted_alert_id' FROM sla.outbox"
        " WHERE headers->>'ce_type' = $1",
        SLA_BREACH_RETRACTED,
    )
    assert retracted == breach_id
    assert await attainment(pg) == {"met": 1}


async def test_a_clock_a_reopening_started_keeps_its_start_and_its_deadline(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    service = ClockService(store, POLICIES)
    thread = Thread(datetime.now(UTC) - timedelta(seconds=60), opened=0, reply=0)
    resolved = snapshot("c-1", thread.at(0), status="resolved", resolved_at=thread.at(2))
    reopened = snapshot("c-1", thread.at(0), status="reopened")
    assigned = snapshot("c-1", thread.at(0), status="assigned", assignee="a-1")
    await service.apply_case_events(
        [
            thread.created(),
            event(CASE_STATUS_CHANGED, resolved, at=thread.at(2), previous_status="queued"),
            event(CASE_STATUS_CHANGED, reopened, at=thread.at(50), previous_status="resolved"),
        ],
        thread.at(50),
    )

    # The next event, read at +52 s, must not take the clock back to the opening (+0 s).
    await service.apply_case_events(
        [event(CASE_ASSIGNED, assigned, at=thread.at(52))], thread.at(52)
    )

    breach_at = await pg.fetchval(
        "SELECT t.fire_at FROM sla.timers AS t JOIN sla.clocks AS c ON c.id = t.clock_id"
        " WHERE c.status = 'running' AND c.clock = 'first_response' AND t.kind = 'breach'"
    )
    assert breach_at == thread.at(60)
    row = await pg.fetchrow(
        "SELECT started_at, due_at FROM sla.clocks WHERE status = 'running'"
        " AND clock = 'first_response'"
    )
    assert row is not None
    assert dict(row) == {"started_at": thread.at(50), "due_at": thread.at(60)}
    assert await service.fire_due_timers(thread.at(54), 10) == []


async def test_the_running_service_fires_the_breach_of_the_earlier_message(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    settings = sla_settings(tmp_path, kafka_bootstrap, migrated_url, unique, policy_text("3s"))
    async with case_on_running_sla(settings, f"case-earlier-{unique}") as case:
        opened_at = case.opened_at
        await case.open()
        await case.answer(opened_at + timedelta(seconds=2))  # met from the opening
        await case.read(lambda a: bool(a.of_type(SLA_CLOCK_FULFILLED)))
        earlier = opened_at - timedelta(seconds=2)  # read after the reply: due +1 s
        answered = snapshot(
            case.id, earlier, status="assigned", first_response_at=opened_at + timedelta(seconds=2)
        )
        await case.send(case_event(CASE_MESSAGE_ADDED, answered, time=earlier))
        await case.read(lambda a: bool(a.of_type(SLA_BREACHED)))

    assert case.alerts.types() == [
        SLA_CLOCK_STARTED,
        SLA_CLOCK_FULFILLED,
        SLA_BREACHED,
        SLA_CLOCK_FULFILLED,
    ]
    ((breach, _),) = case.alerts.of_type(SLA_BREACHED)
    assert instant(breach.data["started_at"]) == earlier
    assert instant(breach.data["due_at"]) == opened_at + timedelta(seconds=1)


async def test_a_late_message_and_the_earlier_reply_it_brings_in_one_batch_fire_no_breach(
    store: PostgresClockStore, pg: asyncpg.Connection
) -> None:
    # Chaos run 100k-b (case 5d57a87a): the customer's message of +0 s reached ingest minutes
    # late; the router then published it and the brand's reply of +9 s (parked until then)
    # together, and the SLA read both in one batch with the watermark long past. It fired the
    # backdated clock's breach (due +10 s) on the message and retracted it on the reply, in
    # the same transaction: a confirmed page for a clock met in time.
    service = ClockService(store, POLICIES)
    thread = Thread(datetime.now(UTC) - timedelta(seconds=60), opened=4, reply=12)
    await service.apply_case_events([thread.created(), thread.replied()], datetime.now(UTC), held())
    await service.apply_case_events([watermark(datetime.now(UTC))], datetime.now(UTC), held())

    early = thread.replied(thread.at(9), opened_at=thread.at(0))
    outcome = await service.apply_case_events([thread.earlier(0), early], datetime.now(UTC), held())

    assert [(alert.kind, alert.provisional) for alert in outcome.fired] == [("warning", False)]
    assert outcome.retracted == []
    kinds = [kind for kind, *_ in await outbox(pg)]
    assert SLA_BREACHED not in kinds
    assert SLA_BREACH_RETRACTED not in kinds
    assert await attainment(pg) == {"met": 1}
    assert (await clock_row(pg))["fulfilled_at"] == thread.at(9)
