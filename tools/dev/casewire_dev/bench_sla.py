"""`make bench`, SLA part: how late breach alerts leave, with many open clocks and live traffic.

- `sla_breach_lateness_p99_s` (and p50, max): ONE real `casewire-sla serve` process on a
  fresh database holding `SEEDED_CLOCKS` open clocks (written with COPY into the `sla`
  schema, each with its breach timer), while a producer sends a steady stream of case events
  (`casewire.case.created`, then `casewire.case.responded` a moment later, for new cases) to
  `casewire.case-events.v1`. `WINDOW_CLOCKS` of the seeded clocks fall due, evenly spread,
  during a `WINDOW_SECONDS` window; the others are due days later. For each breach alert of
  a window clock on `casewire.sla-alerts.v1`: its Kafka record timestamp − the clock's due_at.

The window clocks are written (COPY, as another replica would) once the service is up and
the consumer idle, a moment before the first falls due; the far-future ones before it starts.
A run counts only if every window clock produced exactly one `casewire.sla.breached`, and no
other seeded clock produced one.

- `sla_breach_lateness_p99_s_1m` (and p50, max, and the counts, all `_1m`): the same run, on
  a fresh database and service, with `SEEDED_CLOCKS_1M` open clocks: the timer path's cost
  must not grow with the tables.

Each run also prints where the lateness went, from the window timers' `fired_at` (the instant
the scheduler's pass looked): due → fired (the scheduler waking and claiming) and fired → Kafka
record (the firing transaction, the outbox relay and the publish).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from casewire_common import topics
from casewire_common.events import (
    CASE_CREATED,
    CASE_RESPONDED,
    SLA_BREACHED,
    CaseEventData,
    CaseSnapshot,
    WatermarkData,
    decode_event,
    encode_event,
)
from casewire_router.adapters.watermarks import watermark_records

from casewire_dev import services, stack
from casewire_dev.results import BenchError, Results, metric, percentile

SEEDED_CLOCKS = 100_000
SEEDED_CLOCKS_1M = 1_000_000
# Open clocks of each run, and the suffix of its figures.
SIZES = ((SEEDED_CLOCKS, ""), (SEEDED_CLOCKS_1M, "_1m"))
WINDOW_CLOCKS = 3_000
WINDOW_SECONDS = 30.0
WINDOW_FIRST_ID = 10_000_001
LEAD_SECONDS = 3.0  # from writing the window clocks to the first falling due
WARMUP_SECONDS = 3.0  # case events flowing before the window clocks are written
CASES_PER_SECOND = 50  # each case: created, then responded → 100 case events/s
RESPONSE_DELAY_SECONDS = 1.0
DRAIN_SECONDS = 20.0  # after the window: how long the last breaches may take to arrive
QUIET_SECONDS = 2.0  # the consumer is idle when processed_inputs has not grown for this long
# Record timestamps are whole milliseconds: an alert at its instant may look a little early.
EARLY_TOLERANCE_SECONDS = 0.002

POLICY_ID = "bench"
CALENDAR_ID = "always"
TARGET_SECONDS = 3600
SEED_PREFIX = "bench-sla-seeded-"
POLICY_YAML = f"""\
version: 1
calendars:
  - id: {CALENDAR_ID}
    always_open: true
policies:
  - id: {POLICY_ID}
    match: {{}}
    calendar: {CALENDAR_ID}
    first_response: 1h
    next_response: 1h
    resolution: 1d
"""

CLOCK_COLUMNS = (
    "id",
    "case_id",
    "clock",
    "policy_id",
    "calendar_id",
    "target_seconds",
    "started_at",
    "due_at",
    "team",
    "priority",
    "platform",
    "channel",
    "visibility",
    "tags",
)
TIMER_COLUMNS = ("clock_id", "kind", "fraction", "fire_at")

ClockRow = tuple[
    int, str, str, str, str, int, datetime, datetime, str, str, str, str, str, list[str]
]
TimerRow = tuple[int, str, float, datetime]


# --- Pure parts ---------------------------------------------------------------------------


def seeded_case_id(index: int) -> str:
    return f"{SEED_PREFIX}{index:06d}"


def spread(start: datetime, seconds: float, count: int) -> list[datetime]:
    """`count` instants evenly spread over [start, start + seconds)."""
    step = seconds / count if count else 0.0
    return [start + timedelta(seconds=index * step) for index in range(count)]


def seed_rows(first_id: int, due: Sequence[datetime]) -> tuple[list[ClockRow], list[TimerRow]]:
    """One running first-response clock (ids from `first_id`) per due instant, and its breach
    timer."""
    clocks: list[ClockRow] = []
    timers: list[TimerRow] = []
    for offset, due_at in enumerate(due):
        clock_id = first_id + offset
        clocks.append(
            (
                clock_id,
                seeded_case_id(clock_id),
                "first_response",
                POLICY_ID,
                CALENDAR_ID,
                TARGET_SECONDS,
                due_at - timedelta(seconds=TARGET_SECONDS),
                due_at,
                "care",
                "P3",
                "whatsapp",
                "dm",
                "private",
                [],
            )
        )
        timers.append((clock_id, "breach", 1.0, due_at))
    return clocks, timers


@dataclass(frozen=True)
class Lateness:
    seconds: list[float]  # one per window clock, in no particular order

    def quantile(self, q: float) -> float:
        return percentile(self.seconds, q)

    @property
    def worst(self) -> float:
        return max(self.seconds) if self.seconds else 0.0


def check_breaches(
    expected: Mapping[str, datetime], breaches: Sequence[tuple[str, int]]
) -> Lateness:
    """`breaches`: (case id, record timestamp in ms) of every breach alert of a seeded clock.
    Fails unless each expected case has exactly one, no other seeded case has any, and none
    came before its clock fell due (a timer never fires early)."""
    counts = Counter(case_id for case_id, _ in breaches)
    unexpected = sorted(case_id for case_id in counts if case_id not in expected)
    if unexpected:
        raise BenchError(
            f"{len(unexpected)} seeded clocks not due in the window breached, e.g. {unexpected[0]}"
        )
    twice = sorted(case_id for case_id, count in counts.items() if count > 1)
    if twice:
        raise BenchError(f"{len(twice)} clocks breached more than once, e.g. {twice[0]}")
    missing = sorted(case_id for case_id in expected if case_id not in counts)
    if missing:
        raise BenchError(
            f"{len(missing)} of {len(expected)} clocks due in the window never breached,"
            f" e.g. {missing[0]} (due {expected[missing[0]].isoformat()})"
        )
    lateness = Lateness(
        [timestamp_ms / 1000 - expected[case_id].timestamp() for case_id, timestamp_ms in breaches]
    )
    if lateness.seconds and min(lateness.seconds) < -EARLY_TOLERANCE_SECONDS:
        raise BenchError(
            f"a breach alert {-min(lateness.seconds):.3f}s before its clock fell due:"
            " not this run's alert, or the clocks disagree"
        )
    return lateness


@dataclass(frozen=True)
class Breakdown:
    """Where the lateness of the breach alerts went: from the due instant to the scheduler's
    pass that fired the timer (`fired`), and from that pass to the Kafka record
    (`published`: the firing transaction, the outbox relay and the publish)."""

    fired: Lateness
    published: Lateness


def breakdown(
    expected: Mapping[str, datetime],
    fired_at: Mapping[str, datetime],
    breaches: Sequence[tuple[str, int]],
) -> Breakdown:
    """Each expected case's lateness split at its timer's `fired_at` (cases without one are
    left out: `check_breaches` fails the run for them)."""
    fired: list[float] = []
    published: list[float] = []
    for case_id, timestamp_ms in breaches:
        due, at = expected.get(case_id), fired_at.get(case_id)
        if due is None or at is None:
            continue
        fired.append((at - due).total_seconds())
        published.append(timestamp_ms / 1000 - at.timestamp())
    return Breakdown(Lateness(fired), Lateness(published))


def case_event(
    event_type: str, case_id: str, opened_at: datetime, responded_at: datetime | None
) -> tuple[str, dict[str, bytes], bytes]:
    """(key, headers, value) of a real-shaped case event of a new WhatsApp DM case."""
    case = CaseSnapshot(
        id=case_id,
        conversation_id=f"conv-{case_id}",
        platform="whatsapp",
        channel="dm",
        visibility="private",
        status="assigned",
        priority="P3",
        urgency_score=20,
        team="care",
        assignee="agent-1",
        tags=[],
        language="en",
        opened_at=opened_at,
        first_response_at=responded_at,
        resolved_at=None,
    )
    data = CaseEventData(
        case=case, first_response=True if responded_at is not None else None, agent_id="agent-1"
    )
    record = encode_event(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        source="casewire/router",
        subject=case_id,
        time=responded_at or opened_at,
        data=data,
    )
    return record.key, dict(record.headers), record.value


# --- The run ------------------------------------------------------------------------------


async def _copy(
    connection: asyncpg.Connection, clocks: list[ClockRow], timers: list[TimerRow]
) -> None:
    async with connection.transaction():
        await connection.copy_records_to_table(
            "clocks", schema_name="sla", records=clocks, columns=list(CLOCK_COLUMNS)
        )
        await connection.copy_records_to_table(
            "timers", schema_name="sla", records=timers, columns=list(TIMER_COLUMNS)
        )
        await connection.execute(
            "SELECT setval('sla.clocks_id_seq', (SELECT max(id) FROM sla.clocks))"
        )


async def _wait_quiet(connection: asyncpg.Connection, timeout: float = 60.0) -> None:
    """Until the service has applied what was on the case-event topic before the run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, since = -1, loop.time()
    while loop.time() < deadline:
        count = await connection.fetchval("SELECT count(*) FROM sla.processed_inputs")
        if count != last:
            last, since = count, loop.time()
        elif loop.time() - since >= QUIET_SECONDS:
            return
        await asyncio.sleep(0.25)
    raise BenchError("the SLA service kept applying old case events: never idle")


class _Producer:
    """Case events at a steady rate, scheduled by time: created now, responded a moment later;
    and, as the router does, its watermark every `WATERMARK_SECONDS`: everything it had to
    publish until now is published (the SLA service holds alerts on it)."""

    def __init__(self, bootstrap: str, tag: str) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
        self._tag = tag
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._producer.start()
        self._task = asyncio.create_task(self._run())

    async def _send(
        self, event_type: str, case_id: str, opened: datetime, responded: datetime | None
    ) -> None:
        key, headers, value = case_event(event_type, case_id, opened, responded)
        await self._producer.send(
            topics.CASE_EVENTS, value, key=key.encode(), headers=list(headers.items())
        )
        self.sent += 1

    async def _watermark(self, partitions: int) -> None:
        now = datetime.now(UTC)
        mark = WatermarkData(
            topic=topics.MESSAGES, partitions=1, watermarks={0: now}, caught_up=[0], replica="bench"
        )
        for topic, record in watermark_records(mark, partitions, now):
            await self._producer.send(
                topic, record.value, key=record.key.encode(), headers=list(record.headers.items())
            )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        pending: list[tuple[float, str, datetime]] = []
        index = 0
        partitions = len(await self._producer.partitions_for(topics.CASE_EVENTS))
        marked = 0.0
        while True:
            now = loop.time()
            if now - marked >= WATERMARK_SECONDS:
                await self._watermark(partitions)
                marked = now
            while start + index / CASES_PER_SECOND <= now:
                case_id = f"bench-sla-live-{self._tag}-{index}"
                opened = datetime.now(UTC)
                await self._send(CASE_CREATED, case_id, opened, None)
                pending.append((now + RESPONSE_DELAY_SECONDS, case_id, opened))
                index += 1
            while pending and pending[0][0] <= now:
                _, case_id, opened = pending.pop(0)
                await self._send(CASE_RESPONDED, case_id, opened, datetime.now(UTC))
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self._producer.stop()


# As the router's default CASEWIRE_ROUTER_WATERMARK_INTERVAL_SECONDS.
WATERMARK_SECONDS = 0.25


async def _read_breaches(
    consumer: AIOKafkaConsumer, expected: Mapping[str, datetime], deadline: float
) -> list[tuple[str, int]]:
    """Breach alerts of seeded clocks, until every expected one came (and a moment more, to
    see duplicates) or the deadline."""
    loop = asyncio.get_running_loop()
    found: list[tuple[str, int]] = []
    seen: set[str] = set()
    complete_at: float | None = None
    while loop.time() < deadline and (complete_at is None or loop.time() < complete_at + 1.0):
        batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
        for batch in batches.values():
            for record in batch:
                event = decode_event(record.headers, record.value or b"", record.key)
                case_id = str(event.data.get("case_id", ""))
                if event.type == SLA_BREACHED and case_id.startswith(SEED_PREFIX):
                    found.append((case_id, int(record.timestamp)))
                    seen.add(case_id)
        if complete_at is None and len(seen) >= len(expected) and seen >= set(expected):
            complete_at = loop.time()
    return found


async def _assigned(consumer: AIOKafkaConsumer, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not consumer.assignment():
        if loop.time() > deadline:
            raise BenchError("the alert consumer got no partitions")
        await consumer.getmany(timeout_ms=200)


async def _fired_at(connection: asyncpg.Connection) -> dict[str, datetime]:
    """When the scheduler's pass fired each window clock's breach timer, by case id."""
    rows = await connection.fetch(
        "SELECT c.case_id, t.fired_at FROM sla.timers AS t JOIN sla.clocks AS c"
        " ON c.id = t.clock_id WHERE t.clock_id BETWEEN $1 AND $2 AND t.kind = 'breach'"
        " AND t.fired_at IS NOT NULL",
        WINDOW_FIRST_ID,
        WINDOW_FIRST_ID + WINDOW_CLOCKS - 1,
    )
    return {row["case_id"]: row["fired_at"] for row in rows}


def _quantiles(lateness: Lateness) -> str:
    return (
        f"p50 {lateness.quantile(0.5):.3f}s, p99 {lateness.quantile(0.99):.3f}s,"
        f" max {lateness.worst:.3f}s"
    )


async def measure(running: stack.Stack, work: Path, seeded: int, suffix: str) -> Results:
    """One run with `seeded` open clocks; its figures are named with `suffix`."""
    run_began = time.monotonic()
    tag = uuid.uuid4().hex[:10]
    log_dir = work / f"sla-bench-{tag}"
    log_dir.mkdir(parents=True, exist_ok=True)
    policies = log_dir / "sla-policies.yaml"
    policies.write_text(POLICY_YAML, "utf-8")
    bootstrap = running.kafka_bootstrap_servers
    database = await stack.ensure_database(running.database_url, f"casewire_bench_sla_{tag}")
    env = {
        **os.environ,
        **running.env(),
        "CASEWIRE_DATABASE_URL": database,
        "CASEWIRE_SLA_POLICIES": str(policies),
        "CASEWIRE_SLA_CONSUMER_GROUP": f"bench-sla-{tag}",
        "CASEWIRE_LOG_LEVEL": "WARNING",
    }
    far = seeded - WINDOW_CLOCKS
    started: list[services.RunningService] = []
    producer = _Producer(bootstrap, tag)
    consumer = AIOKafkaConsumer(
        topics.SLA_ALERTS,
        bootstrap_servers=bootstrap,
        group_id=f"bench-sla-alerts-{tag}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    connection = await asyncpg.connect(database)
    try:
        await services.migrate("sla", env, log_dir)
        # Only this run's case events and alerts: not those of the router benchmark or of the
        # run before (its window clocks had the same case ids), left on the topics.
        await stack.start_group_at_topic_end(bootstrap, f"bench-sla-{tag}", topics.CASE_EVENTS)
        await stack.start_group_at_topic_end(
            bootstrap, f"bench-sla-alerts-{tag}", topics.SLA_ALERTS
        )
        print(f"seeding {far:,} open clocks due in 1-2 days (COPY) ...", flush=True)
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        began = time.monotonic()
        await _copy(connection, *seed_rows(1, spread(tomorrow, 86_400, far)))
        print(f"  seeded in {time.monotonic() - began:.1f}s; starting casewire-sla serve ...")
        sla = services.start(services.ServiceSpec("sla", stack.free_port()), env, log_dir)
        started.append(sla)
        await services.wait_ready(sla, asyncio.Event())
        await _wait_quiet(connection)
        await consumer.start()
        await _assigned(consumer)
        await producer.start()
        await asyncio.sleep(WARMUP_SECONDS)
        window_start = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
        due = spread(window_start, WINDOW_SECONDS, WINDOW_CLOCKS)
        # Ids far above the sequence: the service numbers the live cases' clocks meanwhile.
        clocks, timers = seed_rows(WINDOW_FIRST_ID, due)
        await _copy(connection, clocks, timers)
        expected = {row[1]: row[7] for row in clocks}
        print(
            f"  {WINDOW_CLOCKS:,} more clocks fall due over {WINDOW_SECONDS:.0f}s"
            f" ({seeded:,} open), {2 * CASES_PER_SECOND} case events/s ...",
            flush=True,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LEAD_SECONDS + WINDOW_SECONDS + DRAIN_SECONDS
        breaches = await _read_breaches(consumer, expected, deadline)
        await producer.stop()
        applied = await connection.fetchval("SELECT count(*) FROM sla.processed_inputs")
        open_clocks = await connection.fetchval(
            "SELECT count(*) FROM sla.clocks WHERE status IN ('running', 'paused')"
        )
        fired_at = await _fired_at(connection)
    except services.ServiceError as error:
        raise BenchError(str(error)) from error
    finally:
        await producer.stop()
        with contextlib.suppress(Exception):
            await consumer.stop()
        await connection.close()
        killed = await services.stop_all(started)
        await stack.drop_database(running.database_url, database)
    if killed:
        print(f"warning: {', '.join(killed)} had to be killed", file=sys.stderr)
    lateness = check_breaches(expected, breaches)
    split = breakdown(expected, fired_at, breaches)
    print(
        f"  {len(lateness.seconds):,} breaches, each once; lateness {_quantiles(lateness)};"
        f" {producer.sent:,} case events sent, {applied:,} applied in all;"
        f" {open_clocks:,} clocks open at the end\n"
        f"  where it went: due -> fired (scheduler) {_quantiles(split.fired)};"
        f" fired -> Kafka record (transaction, relay) {_quantiles(split.published)};"
        f" this run took {time.monotonic() - run_began:.0f}s"
    )
    return {
        f"sla_breach_lateness_p50_s{suffix}": metric(lateness.quantile(0.5), "s"),
        f"sla_breach_lateness_p99_s{suffix}": metric(lateness.quantile(0.99), "s"),
        f"sla_breach_lateness_max_s{suffix}": metric(lateness.worst, "s"),
        f"sla_bench_breaches{suffix}": metric(len(lateness.seconds), "count"),
        f"sla_bench_open_clocks{suffix}": metric(seeded, "count"),
        f"sla_bench_case_events{suffix}": metric(producer.sent, "count"),
    }


async def measure_all(running: stack.Stack, work: Path) -> Results:
    """Every size in `SIZES`, one after the other, each on its own database and service."""
    figures: Results = {}
    for seeded, suffix in SIZES:
        figures |= await measure(running, work, seeded, suffix)
    return figures


def run(running: stack.Stack, work: Path) -> Results:
    """The SLA figures, measured on a running local stack (`stack.up`)."""
    return asyncio.run(measure_all(running, work))
