"""`e2e_latency_p99_ms`: at a steady 200 messages/s into ingest over HTTP, how long from the
request to the `casewire.case.assigned` event being readable by a consumer.

Real `casewire-ingest serve` and `casewire-router serve` processes on the local stack. The
sender is open-loop (`load_client.send_schedule`): every request has its instant on a fixed
schedule, whatever the answers do, and its latency counts from that instant (a request that
waits for a free connection waits on the clock). It is the ingest benchmark's lean client
(requests built and encoded before the clock starts, raw asyncio sockets, a pool of keep-alive
connections), so that the harness sharing the two cores with the services does not become
what it measures. Each message opens a new conversation; the latency ends when a consumer
reads its assigned event.

Where the time goes is reported too, without a consumer of its own (every consumer costs the
broker and the harness CPU that the services then lack): request → answered (ingest wrote the
body and its message), request → assigned event produced (its record's CreateTime, set by the
router's outbox relay), and event produced → read (broker and consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from casewire_common import events as ev
from casewire_common import topics

from casewire_dev import services, stack
from casewire_dev.cpu import CpuSnapshot, CpuUse, stack_processes
from casewire_dev.load_client import encode_request, send_schedule
from casewire_dev.results import BenchError, Results, metric, percentile
from casewire_dev.webhooks import integration_headers

RATE_PER_SECOND = 200
WARM_UP_SECONDS = 5.0
MEASURED_SECONDS = 20.0
CONNECTIONS = 64
GENERIC_PATH = "/v1/messages"
INTEGRATION = "bench"
INTEGRATION_SECRET = "casewire-bench-integration-secret"  # noqa: S105
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


def hop_ms(
    start: Mapping[str, float], end: Mapping[str, float], conversations: Sequence[str]
) -> list[float]:
    """One hop's durations, for the conversations seen at both of its ends."""
    return [(end[c] - start[c]) * 1000 for c in conversations if c in start and c in end]


# --- Reader ---------------------------------------------------------------------------------


@dataclass
class _Seen:
    """Per conversation: when its assigned event record was produced (its CreateTime, seconds)
    and when it was read."""

    event_produced: dict[str, float] = field(default_factory=dict)
    read: dict[str, float] = field(default_factory=dict)


async def _read(consumer: AIOKafkaConsumer, token: str, seen: _Seen, stop: asyncio.Event) -> None:
    assigned = ev.CASE_ASSIGNED.encode()
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=50)
        now = time.time()
        for records in batch.values():
            for record in records:
                if dict(record.headers).get("ce_type") != assigned:
                    continue
                conversation = json.loads(record.value or b"{}")["case"]["conversation_id"]
                if token in conversation and conversation not in seen.read:
                    seen.read[conversation] = now
                    seen.event_produced[conversation] = record.timestamp / 1000


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


async def _cpu_over_window(
    watch: Callable[[], Mapping[str, Sequence[int]]], start: float
) -> CpuUse:
    """The CPU each process used over the measured window (the harness is the client)."""
    await asyncio.sleep(max(0.0, start - time.time()))
    before = CpuSnapshot.take(watch)
    await asyncio.sleep(MEASURED_SECONDS)
    return CpuUse.between(before, CpuSnapshot.take(watch), MEASURED_SECONDS)


def _requests(
    token: str, begin: float, count: int
) -> tuple[list[tuple[str, bytes]], dict[str, float]]:
    """Every request, encoded and named by its conversation, and the instant each is due."""
    requests: list[tuple[str, bytes]] = []
    due: dict[str, float] = {}
    for index in range(count):
        at = begin + index / RATE_PER_SECOND
        body = message_body(token, index, datetime.fromtimestamp(at, UTC))
        encoded = json.dumps(body).encode()
        requests.append(
            (
                body["conversation_id"],
                encode_request(
                    GENERIC_PATH,
                    encoded,
                    [
                        ("Content-Type", "application/json"),
                        *integration_headers(INTEGRATION, INTEGRATION_SECRET, encoded).items(),
                    ],
                ),
            )
        )
        due[body["conversation_id"]] = at
    return requests, due


async def measure(running: stack.Stack, work: Path) -> Results:
    token = uuid.uuid4().hex[:10]
    database_url = await stack.ensure_database(running.database_url, f"casewire_bench_e2e_{token}")
    (work / "e2e-rules.yaml").write_text(RULES, encoding="utf-8")
    (work / "e2e-agents.yaml").write_text(AGENTS, encoding="utf-8")
    logs = work / "e2e-logs"
    logs.mkdir(exist_ok=True)
    env = {
        **os.environ,
        **running.env(),
        "CASEWIRE_DATABASE_URL": database_url,
        "CASEWIRE_INTEGRATIONS": json.dumps(
            [{"name": INTEGRATION, "secrets": [INTEGRATION_SECRET]}]
        ),
    }
    for name in ("ingest", "router"):
        await services.migrate(name, env, logs)
    # The router reads only this benchmark's traffic, not what earlier ones left on the stack
    # (the SLA benchmark's thousands of alerts would otherwise be escalated meanwhile).
    group = f"bench-e2e-router-{token}"
    await stack.start_group_at_topic_end(running.kafka_bootstrap_servers, group, topics.MESSAGES)
    await stack.start_group_at_topic_end(
        running.kafka_bootstrap_servers, f"{group}-escalation", topics.SLA_ALERTS
    )
    ingest_port, router_port = stack.free_ports(2)
    started = [
        services.start(services.ServiceSpec("ingest", ingest_port), env, logs),
        services.start(
            services.ServiceSpec(
                "router",
                router_port,
                {
                    "CASEWIRE_ROUTER_RULES": str(work / "e2e-rules.yaml"),
                    "CASEWIRE_ROUTER_AGENTS": str(work / "e2e-agents.yaml"),
                    "CASEWIRE_ROUTER_CONSUMER_GROUP": group,
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
        auto_offset_reset="latest",
        session_timeout_ms=6000,
        fetch_max_wait_ms=10,  # the reader must not add its own wait to what it measures
    )
    seen = _Seen()
    stop_reading = asyncio.Event()
    reader: asyncio.Task[None] | None = None
    try:
        never = asyncio.Event()
        for service in started:
            await services.wait_ready(service, never)
        await _router_idle(f"http://127.0.0.1:{router_port}")
        await consumer.start()
        await consumer.getmany(timeout_ms=1000)  # joined, positioned at the topics' ends
        reader = asyncio.create_task(_read(consumer, token, seen, stop_reading))
        total = int(RATE_PER_SECOND * (WARM_UP_SECONDS + MEASURED_SECONDS))
        requests, due = _requests(token, time.time() + 1.0, total)
        begin = min(due.values())
        print(
            f"e2e: {RATE_PER_SECOND} messages/s into ingest for {total / RATE_PER_SECOND:.0f}s ..."
        )

        def watch() -> dict[str, list[int]]:
            return {
                "ingest": [started[0].process.pid],
                "router": [started[1].process.pid],
                **stack_processes(running),
            }

        cpu = asyncio.create_task(_cpu_over_window(watch, begin + WARM_UP_SECONDS))
        sender = await send_schedule(
            ingest_port,
            requests,
            begin,
            RATE_PER_SECOND,
            connections=CONNECTIONS,
            expected_status=202,
        )
        if sender.failures:
            raise BenchError(f"{len(sender.failures)} requests failed, e.g. {sender.failures[0]}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline and any(c not in seen.read for c in due):
            await asyncio.sleep(0.2)
        values = latencies_ms(due, seen.read, begin + WARM_UP_SECONDS)
    finally:
        stop_reading.set()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        with contextlib.suppress(Exception):
            await consumer.stop()
        await services.stop_all(started)
        await stack.drop_database(running.database_url, database_url)
    measured = [c for c, at in due.items() if at >= begin + WARM_UP_SECONDS]
    hops = {
        "ingest_answer": hop_ms(due, sender.answered, measured),
        "event_produced": hop_ms(due, seen.event_produced, measured),
        "delivery": hop_ms(seen.event_produced, seen.read, measured),
    }
    p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
    print(f"e2e: {len(values)} measured messages, p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(f"  CPU in cores over the measured window: {(await cpu).describe()}")
    for name, durations in hops.items():
        print(
            f"  {name:15s} p50 {percentile(durations, 0.5):6.1f} ms"
            f"  p99 {percentile(durations, 0.99):6.1f} ms  ({len(durations)} seen)"
        )
    return {
        "e2e_latency_p50_ms": metric(round(p50, 1), "ms"),
        "e2e_latency_p99_ms": metric(round(p99, 1), "ms"),
        **{
            f"e2e_{name}_p99_ms": metric(round(percentile(durations, 0.99), 1), "ms")
            for name, durations in hops.items()
        },
        "e2e_bench_messages_per_s": metric(RATE_PER_SECOND, "msgs/s"),
        "e2e_bench_messages": metric(len(values), "count"),
    }


def run(running: stack.Stack, work: Path) -> Results:
    return asyncio.run(measure(running, work))
