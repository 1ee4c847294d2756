"""Transactional outbox: events are written with the state change, then relayed to Kafka.

No Kafka transaction is needed for exactly-once effects: the event row commits (or not)
with the change that caused it, and the relay publishes rows in id order, deleting them
only after the broker acknowledged them. A crash between publish and delete republishes;
consumers deduplicate on the CloudEvent id, which is stable across redelivery.

With several replicas, one relay per schema is active at a time (a PostgreSQL advisory
lock), so events of one case leave in the order they were committed. A service's outbox
table is one of the tables `casewire_common.unit_of_work.tables_ddl` creates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import TypeAdapter

from casewire_common.events import EventRecord
from casewire_common.kafka import KafkaRecord
from casewire_common.periodic import BackgroundTask
from casewire_common.pg import Connection

log = structlog.get_logger(__name__)

# Publishes records, keeping their order per key, and returns once the broker acknowledged
# them all (`casewire_common.kafka.OrderedPublisher` does that).
PublishFn = Callable[[Sequence[KafkaRecord]], Awaitable[None]]


# An event's headers in the outbox's `headers` column: a JSON object of strings (CloudEvents
# attributes are UTF-8 text), read and written by pydantic's compiled JSON codec.
_HEADERS = TypeAdapter(dict[str, bytes])


def notify_channel(schema: str) -> str:
    return f"{schema}_outbox"


async def add_to_outbox(
    connection: Connection, schema: str, records: Sequence[tuple[str, EventRecord]]
) -> None:
    """Queue (topic, event) pairs inside the caller's transaction; the relay wakes on commit."""
    if not records:
        return
    # COPY keeps the given order: ids (and so the relay's order) follow it.
    await connection.copy_records_to_table(
        "outbox",
        schema_name=schema,
        columns=("topic", "key", "headers", "value"),
        records=[
            (topic, record.key, _HEADERS.dump_json(record.headers).decode(), record.value)
            for topic, record in records
        ],
    )
    await connection.execute("SELECT pg_notify($1, '')", notify_channel(schema))


async def queue_alone(
    connection: Connection, schema: str, records: Sequence[tuple[str, EventRecord]]
) -> None:
    """Queue a few (topic, event) pairs in a transaction of their own, in one statement: a
    heartbeat's rows, several times a second (BEGIN, COPY, NOTIFY and COMMIT took five round
    trips each time). Ids follow the given order, as with `add_to_outbox`."""
    if not records:
        return
    await connection.execute(
        f'WITH queued AS (INSERT INTO "{schema}".outbox (topic, key, headers, value)'
        " SELECT topic, key, headers, value FROM unnest($1::text[], $2::text[], $3::jsonb[],"
        " $4::bytea[]) WITH ORDINALITY AS r(topic, key, headers, value, position)"
        " ORDER BY position) SELECT pg_notify($5, '')",
        [topic for topic, _ in records],
        [record.key for _, record in records],
        [_HEADERS.dump_json(record.headers).decode() for _, record in records],
        [record.value for _, record in records],
        notify_channel(schema),
    )


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.published = Counter(
            "casewire_outbox_published_total",
            "Events relayed from the outbox to Kafka.",
            ["component"],  # not `service`: a target label's name
            registry=registry,
        ).labels(service)
        self.backlog = Gauge(
            "casewire_outbox_backlog",
            "Events waiting in the outbox: 0 once the relay caught up, counted at most once"
            " per idle poll interval while it is behind.",
            ["component"],  # not `service`: a target label's name
            registry=registry,
        ).labels(service)


class OutboxRelay:
    """Publishes committed outbox rows to Kafka, in order, as soon as they commit."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        publish: PublishFn,
        metrics: OutboxMetrics,
        *,
        batch_size: int = 1000,
        idle_poll_seconds: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._publish = publish
        self._metrics = metrics
        self._batch_size = batch_size
        self._idle_poll_seconds = idle_poll_seconds
        self._wakeup = asyncio.Event()
        self._task = BackgroundTask(f"outbox-relay-{schema}", self._run)
        self._next_backlog_count = 0.0

    def wake(self) -> None:
        self._wakeup.set()

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying", schema=self._schema)
                await asyncio.sleep(1.0)

    async def _lead(self) -> None:
        connection = await asyncpg.connect(self._dsn)
        try:
            lock = f"outbox:{self._schema}"
            while not await connection.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", lock):
                await asyncio.sleep(self._idle_poll_seconds)
            log.info("outbox relay leads", schema=self._schema)
            await connection.add_listener(notify_channel(self._schema), self._on_notify)
            while True:
                # Cleared before looking: a commit's wake while a pass publishes (Kafka's
                # answer takes milliseconds) brings the next pass at once, not the next wake.
                self._wakeup.clear()
                relayed = await self.relay_once(connection)
                if relayed < self._batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self._idle_poll_seconds)
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()

    async def relay_once(self, connection: Connection) -> int:
        """Publish one batch of pending rows in id order; returns how many were relayed."""
        rows = await connection.fetch(
            f'SELECT id, topic, key, headers, value FROM "{self._schema}".outbox'
            " ORDER BY id LIMIT $1",
            self._batch_size,
        )
        if not rows:
            self._metrics.backlog.set(0)
            return 0
        records = [
            KafkaRecord(topic, key.encode(), list(_HEADERS.validate_json(headers).items()), value)
            for _, topic, key, headers, value in rows
        ]
        try:
            await self._publish(records)
        except Exception:
            # Kafka is away and the rows stay: the backlog must say so, not keep its last value.
            with contextlib.suppress(Exception):
                self._metrics.backlog.set(
                    await connection.fetchval(f'SELECT count(*) FROM "{self._schema}".outbox')
                )
            raise
        # By id, not by range: a row that committed after the SELECT may have a lower id.
        await connection.execute(
            f'DELETE FROM "{self._schema}".outbox WHERE id = ANY($1::bigint[])',
            [row[0] for row in rows],
        )
        self._metrics.published.inc(len(rows))
        await self._update_backlog(connection, len(rows))
        return len(rows)

    async def _update_backlog(self, connection: Connection, relayed: int) -> None:
        if relayed < self._batch_size:
            self._metrics.backlog.set(0)  # caught up with what had committed
            return
        # Behind: count now and then, not on every pass (a count scans the table).
        now = time.monotonic()
        if now >= self._next_backlog_count:
            self._next_backlog_count = now + self._idle_poll_seconds
            backlog = await connection.fetchval(f'SELECT count(*) FROM "{self._schema}".outbox')
            self._metrics.backlog.set(backlog)
