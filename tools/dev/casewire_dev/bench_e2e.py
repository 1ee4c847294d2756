"""`e2e_latency_p99_ms`: at a steady 200 messages/s into ingest over HTTP, how long from the
request to the `casewire.case.assigned` event being readable by a consumer.

Real `casewire-ingest serve` and `casewire-router serve` processes on the local stack; the
sender is open-loop (requests leave on a fixed schedule, whatever the answers do), each
message opens a new conversation, and the latency is taken when a consumer reads the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import decode_event

from casewire_dev import services, stack
from casewire_dev.bench import Results, metric
from casewire_dev.bench_ingest import percentile
from casewire_dev.bench_runs import BenchError

RATE_PER_SECOND = 200
WARM_UP_SECONDS = 5.0
MEASURED_SECONDS = 20.0
RULES = """version: 1
default_team: care
teams: [care, shipping]
rules:
  - id: shipping
    when: {any: [delivery, order, package]}
    then: {team: shipping, priority: P3, tags: [shipping]}
"""
AGENTS = """agents:
  - {id: amal, teams: [care, shipping], languages: [ar, en], capacity: 100000, online: true}
  - {id: nikos, teams: [care, shipping], languages: [el, en], capacity: 100000, online: true}
"""
TEXTS = (
    "My package never arrived and nobody answers",
    "Where is my order? It's been two weeks",
    "The app keeps crashing when I log in",
    "Can you help me with a refund please",
)


def message_body(token: str, index: int, sent_at: datetime) -> dict[str, Any]:
    """A customer message that opens its own conversation (so it gets created + assigned)."""
    return {
        "platform": "x",
        "channel": "mention",
        "direction": "inbound",
        "account_id": "bench",
        "platform_message_id": f"{token}-{index}",
        "conversation_id": f"x:bench:{token}-{index}:customer{index}",
        "author": {"id": f"customer{index}", "followers": 10},
        "text": TEXTS[index % len(TEXTS)],
        "language": "en",
        "sent_at": sent_at.isoformat(),
    }


def latencies_ms(
    sent: Mapping[str, float], read: Mapping[str, float], measured_from: float
) -> list[float]:
    """Request-to-readable latencies of the messages sent after the warm-up; every one of them
    must have been read (a missing event is a failure, not a fast answer)."""
    measured = {conversation: at for conversation, at in sent.items() if at >= measured_from}
    missing = [conversation for conversation in measured if conversation not in read]
    if missing:
        raise BenchError(f"{len(missing)} of {len(measured)} messages never got an assigned event")
    return [(read[conversation] - at) * 1000 for conversation, at in measured.items()]


async def _router_idle(url: str, timeout: float = 120.0) -> None:
    """The router first applies what earlier benchmarks left on the topic: wait it out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    previous = -1.0
    async with httpx.AsyncClient(timeout=5) as client:
        while loop.time() < deadline:
            text = (await client.get(f"{url}/metrics")).text
            count = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("casewire_router_messages_total{")
            )
            if count == previous:
                return
            previous = count
            await asyncio.sleep(2.0)
    raise BenchError("the router did not settle before the e2e benchmark")


async def _read_assigned(
    consumer: AIOKafkaConsumer, token: str, read: dict[str, float], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=50)
        now = time.time()
        for records in batch.values():
            for record in records:
                headers = dict(record.headers)
                if headers.get("ce_type") != ev.CASE_ASSIGNED.encode():
                    continue
                event = decode_event(record.headers, record.value or b"", record.key)
                conversation = event.data["case"]["conversation_id"]
                if token in conversation:
                    read.setdefault(conversation, now)


async def measure(running: stack.Stack, work: Path) -> Results:
    token = uuid.uuid4().hex[:10]
    database_url = await stack.ensure_database(running.database_url, f"casewire_bench_e2e_{token}")
    (work / "e2e-rules.yaml").write_text(RULES, encoding="utf-8")
    (work / "e2e-agents.yaml").write_text(AGENTS, encoding="utf-8")
    logs = work / "e2e-logs"
    logs.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "CASEWIRE_KAFKA_BOOTSTRAP_SERVERS": running.kafka_bootstrap_servers,
        "CASEWIRE_DATABASE_URL": database_url,
    }
    for name in ("ingest", "router"):
        await services.migrate(name, env, logs)
    ingest_port, router_port = stack.free_port(), stack.free_port()
    started = [
        services.start(services.ServiceSpec("ingest", ingest_port), env, logs),
        services.start(
            services.ServiceSpec(
                "router",
                router_port,
                {
                    "CASEWIRE_ROUTER_RULES": str(work / "e2e-rules.yaml"),
                    "CASEWIRE_ROUTER_AGENTS": str(work / "e2e-agents.yaml"),
                    "CASEWIRE_ROUTER_CONSUMER_GROUP": f"bench-e2e-router-{token}",
                },
            ),
            env,
            logs,
        ),
    ]
    consumer = AIOKafkaConsumer(
        topics.CASE_EVENTS,
        bootstrap_servers=running.kafka_bootstrap_servers,
        group_id=f"bench-e2e-reader-{token}",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        fetch_max_wait_ms=10,  # the reader must not add its own wait to what it measures
    )
    sent: dict[str, float] = {}
    read: dict[str, float] = {}
    stop_reading = asyncio.Event()
    try:
        never = asyncio.Event()
        for service in started:
            await services.wait_ready(service, never)
        await _router_idle(f"http://127.0.0.1:{router_port}")
        await consumer.start()
        reader = asyncio.create_task(_read_assigned(consumer, token, read, stop_reading))
        seconds = WARM_UP_SECONDS + MEASURED_SECONDS
        print(f"e2e: {RATE_PER_SECOND} messages/s into ingest for {seconds:.0f}s ...")
        failures: list[str] = []
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            url = f"http://127.0.0.1:{ingest_port}/v1/messages"

            async def post(index: int) -> None:
                body = message_body(token, index, datetime.now(UTC))
                sent[body["conversation_id"]] = time.time()
                response = await client.post(url, json=body)
                if response.status_code != 202:
                    failures.append(f"{response.status_code} {response.text[:200]}")

            loop = asyncio.get_running_loop()
            begin = loop.time()
            total = int(RATE_PER_SECOND * (WARM_UP_SECONDS + MEASURED_SECONDS))
            requests = []
            for index in range(total):
                await asyncio.sleep(max(0.0, begin + index / RATE_PER_SECOND - loop.time()))
                requests.append(asyncio.create_task(post(index)))
            await asyncio.gather(*requests)
        measured_from = min(sent.values()) + WARM_UP_SECONDS
        if failures:
            raise BenchError(f"{len(failures)} requests failed, e.g. {failures[0]}")
        deadline = loop.time() + 30
        while loop.time() < deadline and any(c not in read for c in sent):
            await asyncio.sleep(0.2)
        values = latencies_ms(sent, read, measured_from)
    finally:
        stop_reading.set()
        with contextlib.suppress(Exception):
            await consumer.stop()
        await services.stop_all(started)
    p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
    print(f"e2e: {len(values)} measured messages, p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    return {
        "e2e_latency_p50_ms": metric(round(p50, 1), "ms"),
        "e2e_latency_p99_ms": metric(round(p99, 1), "ms"),
        "e2e_bench_messages_per_s": metric(RATE_PER_SECOND, "msgs/s"),
        "e2e_bench_messages": metric(len(values), "count"),
    }


def run(running: stack.Stack, work: Path) -> Results:
    return asyncio.run(measure(running, work))
