"""The two measurements behind `make bench`, on one broker: a bare aiokafka consume → produce
loop (the ceiling of a Kafka-to-Kafka service with one Python client), and the real router.

Both clocks start when the first batch has been read (group joins are not throughput) and
stop when the last output is on the broker: for the passthrough when the last batch's sends
are acknowledged and its offsets committed; for the router when every message is committed
in PostgreSQL and the outbox is empty (the relay deletes a row only after the broker
acknowledged its event). What was produced is counted afterwards, off the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import ROUTER_WATERMARK, DecodedEvent, decode_event
from casewire_common.messages import CanonicalMessage

from casewire_dev.bench_workload import Expectation, Record, predictable_counts
from casewire_dev.results import BenchError

SESSION_TIMEOUT_MS = 6000  # Tansu lets a member join after about half of it
HEARTBEAT_MS = 1500
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Timing:
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


async def produce(bootstrap: str, topic: str, records: Sequence[Record]) -> dict[int, int]:
    """Produce every record, keyed; returns the last record index written to each partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, record.value, key=record.key) for record in records]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    last: dict[int, int] = {}
    for index, meta in enumerate(metadata):
        last[int(meta.partition)] = index
    return last


@contextlib.asynccontextmanager
async def _started(*clients: Any) -> AsyncIterator[None]:
    started: list[Any] = []
    try:
        for client in clients:
            await client.start()
            started.append(client)
        yield
    finally:
        for client in reversed(started):
            with contextlib.suppress(Exception):
                await client.stop()


async def passthrough(
    bootstrap: str,
    source: str,
    target: str,
    messages: int,
    *,
    group: str,
    max_records: int,
    batch_timeout_ms: int,
    timeout: float,
) -> Timing:
    """Consume `messages` records from `source` and produce each to `target`: getmany, send
    without awaiting each, await the batch's acknowledgements, commit."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id="bench-passthrough",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id="bench-passthrough", acks="all", linger_ms=2
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    done = 0
    started: float | None = None
    async with _started(producer, consumer):
        while done < messages:
            if loop.time() > deadline:
                raise BenchError(f"passthrough moved {done} of {messages} messages in {timeout}s")
            batches = await consumer.getmany(timeout_ms=batch_timeout_ms, max_records=max_records)
            if not batches:
                continue
            if started is None:
                started = time.perf_counter()
            futures = [
                await producer.send(target, record.value, key=record.key, headers=record.headers)
                for records in batches.values()
                for record in records
            ]
            await asyncio.gather(*futures)
            await consumer.commit()
            done += len(futures)
        finished = time.perf_counter()
    assert started is not None
    return Timing(done, finished - started)


_WATERMARK = ROUTER_WATERMARK.encode()


async def read_topic(
    bootstrap: str,
    topic: str,
    expected: int,
    *,
    idle_seconds: float = 3.0,
    settle_seconds: float = 0.5,
    keep: Callable[[Any], bool] | None = None,
) -> list[Any]:
    """Every record of `topic` from the beginning, read by partition assignment (no group to
    join): until nothing new came for `idle_seconds`, or for `settle_seconds` once `expected`
    records are in (so that a surplus shows too). The router's watermarks, which keep coming
    while it runs, are left out; so are the records `keep` refuses (other runs' records on a
    shared topic), though reading them counts as something new. (The whole topic is read
    because end offsets cannot be trusted here: Tansu's ListOffsets sometimes answers a
    partition's last offset instead of the next one.)"""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        client_id="bench-reader",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    records: list[Any] = []
    async with _started(consumer):
        await consumer.topics()  # fetches the cluster metadata
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise BenchError(f"topic {topic} has no partitions")
        consumer.assign([TopicPartition(topic, partition) for partition in sorted(partitions)])
        loop = asyncio.get_running_loop()
        last_new = loop.time()
        while loop.time() - last_new < (
            idle_seconds if len(records) < expected else settle_seconds
        ):
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for batch in batches.values():
                read = [r for r in batch if ("ce_type", _WATERMARK) not in r.headers]
                records.extend(read if keep is None else filter(keep, read))
                if read:
                    last_new = loop.time()
    return records


@dataclass(frozen=True)
class RouterRun:
    timing: Timing
    cases: int
    events: Counter[str]
    batch_seconds: float  # time inside the router's batch transactions (its own histogram)
    batches: int


async def _pg_clock_offset(connection: asyncpg.Connection) -> float:
    """PostgreSQL's wall clock minus ours, in seconds (zero when both run here)."""
    before = time.time()
    theirs = float(await connection.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
    after = time.time()
    return theirs - (before + after) / 2


def _histogram_total(text: str, name: str) -> tuple[float, int]:
    total = 0.0
    count = 0
    for line in text.splitlines():
        if line.startswith(f"{name}_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_count"):
            count += int(float(line.rsplit(" ", 1)[1]))
    return total, count


async def run_router(
    database_url: str,
    bootstrap: str,
    records: Sequence[Record],
    last_per_partition: dict[int, int],
    expectation: Expectation,
    *,
    rules: Path,
    agents: Path,
    saved_replies: Path,
    group: str,
    max_records: int,
    timeout: float,
    profiler: cProfile.Profile | None = None,
) -> RouterRun:
    """Run the real router app in this process (its lifespan: pool, broker, outbox relay) on
    the pre-produced messages until all are committed and every event is relayed; `profiler`
    (if any) runs while the router does."""
    import httpx
    from casewire_router.adapters.repository import SCHEMA
    from casewire_router.main import create_app
    from casewire_router.settings import RouterSettings
    from pydantic import SecretStr

    settings = RouterSettings(
        database_url=SecretStr(database_url),
        kafka_bootstrap_servers=bootstrap,
        router_rules=rules,
        router_agents=agents,
        router_saved_replies=saved_replies,
        router_consumer_group=group,
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
        consumer_max_records=max_records,
        log_level="WARNING",
    )
    # The last message of each partition: once it is committed, its partition is done.
    last_keys = [
        CanonicalMessage.model_validate_json(records[index].value).id
        for index in last_per_partition.values()
    ]
    app = create_app(settings)
    probe = await asyncpg.connect(database_url)
    try:
        offset = await _pg_clock_offset(probe)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if profiler is not None:
            profiler.enable()
        async with app.router.lifespan_context(app):
            previous = time.time()
            while True:
                asked = time.time()
                if await _all_relayed(probe, SCHEMA, last_keys):
                    # It became true between the previous probe and this one.
                    finished = (previous + asked) / 2
                    if profiler is not None:
                        profiler.disable()
                    break
                if loop.time() > deadline:
                    state = await _router_state(probe, SCHEMA)
                    raise BenchError(f"router did not finish within {timeout}s: {state}")
                previous = asked
                await asyncio.sleep(POLL_SECONDS)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
                metrics = (await client.get("/metrics")).text
        first = await probe.fetchval(
            f"SELECT extract(epoch FROM min(processed_at)) FROM {SCHEMA}.processed_inputs"
        )
        state = await _router_state(probe, SCHEMA)
    finally:
        if profiler is not None:
            profiler.disable()
        await probe.close()
    if state["processed"] != len(records):
        raise BenchError(f"router processed {state['processed']} of {len(records)} messages")
    if state["cases"] != expectation.cases:
        raise BenchError(f"router committed {state['cases']} cases, expected {expectation.cases}")
    started = float(first) - offset
    decoded = await read_events(bootstrap, expectation.total_events)
    events = Counter(event.type for event in decoded)
    incident_cases = {
        str(case_id)
        for event in decoded
        if event.type in (ev.INCIDENT_OPENED, ev.INCIDENT_UPDATED)
        for case_id in event.data["added_case_ids"]
    }
    predictable = predictable_counts(
        [(event.type, event.subject) for event in decoded], incident_cases
    )
    if predictable != expectation.events:
        raise BenchError(
            f"case events differ from what the messages imply: read {dict(predictable)}"
            f" (of {dict(events)}), expected {dict(expectation.events)}"
        )
    batch_seconds, batches = _histogram_total(metrics, "casewire_router_batch_seconds")
    return RouterRun(
        timing=Timing(len(records), finished - started),
        cases=state["cases"],
        events=events,
        batch_seconds=batch_seconds,
        batches=batches,
    )


async def _all_relayed(connection: asyncpg.Connection, schema: str, last_keys: list[str]) -> bool:
    """Whether the last message of every partition is committed and the outbox is empty (a
    partition's batches commit in order, so its last message comes last)."""
    committed = await connection.fetchval(
        f"SELECT count(*) FROM {schema}.processed_inputs WHERE key = ANY($1::text[])",
        last_keys,
    )
    if committed != len(last_keys):
        return False
    return bool(await connection.fetchval(f"SELECT NOT EXISTS (SELECT 1 FROM {schema}.outbox)"))


async def _router_state(connection: asyncpg.Connection, schema: str) -> dict[str, int]:
    row = await connection.fetchrow(
        f"SELECT (SELECT count(*) FROM {schema}.processed_inputs) AS processed,"
        f" (SELECT count(*) FROM {schema}.cases) AS cases,"
        f" (SELECT count(*) FROM {schema}.outbox) AS outbox"
    )
    assert row is not None
    return {name: int(row[name]) for name in ("processed", "cases", "outbox")}


async def read_events(bootstrap: str, expected: int) -> list[DecodedEvent]:
    """The case events on the broker; each must be a CloudEvent with a unique id. The router's
    watermarks are not case events: they are passed over."""
    records = await read_topic(bootstrap, topics.CASE_EVENTS, expected)
    ids: set[str] = set()
    events: list[DecodedEvent] = []
    for record in records:
        event = decode_event(record.headers, record.value or b"", record.key)
        if event.id in ids:
            raise BenchError(f"case event {event.id} was published twice")
        ids.add(event.id)
        events.append(event)
    return events
