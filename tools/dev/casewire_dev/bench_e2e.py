"""What the whole stack costs at the rates users run, and its latency: `stack_idle_cores` (every
process of the stack, 60 s with no traffic), `cpu_ms_per_msg_at_20` and `cpu_ms_per_msg_at_200`
(all the stack's CPU over a window at a steady 20 and 200 messages/s, per message), each also
per process; and `e2e_latency_p99_ms`: at 200 messages/s, how long from the request to the
`casewire.case.assigned` event being readable by a consumer.

Real `casewire-ingest serve`, `casewire-router serve` and `casewire-sla serve` processes on the
local stack, with realistic traffic: customers opening conversations on five teams' topics, the
brand answering a few seconds later, customers writing again; a roster of 500 agents. The
sender is open-loop (`load_client.send_schedule`): every request has its instant on a fixed
schedule, whatever the answers do, and its latency counts from that instant (a request that
waits for a free connection waits on the clock). It is the ingest benchmark's lean client
(requests built and encoded before the clock starts, raw asyncio sockets, a pool of keep-alive
connections), so that the harness sharing the two cores with the services does not become
what it measures; the harness's own CPU is not counted. The latency of a message that opens
a conversation ends when a consumer reads its assigned event.

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

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from casewire_common import events as ev
from casewire_common import topics

from casewire_dev import services, stack
from casewire_dev.bench_workload import roster_yaml
from casewire_dev.cpu import CpuSnapshot, CpuUse, stack_processes
from casewire_dev.load_client import Sender, encode_request, send_schedule
from casewire_dev.paths import repo_root
from casewire_dev.results import BenchError, Results, metric, percentile
from casewire_dev.webhooks import integration_headers

RATE_PER_SECOND = 200  # the latency's rate, and the higher of the two measured for cost
LOW_RATE_PER_SECOND = 20
IDLE_SECONDS = 60.0
WARM_UP_SECONDS = 5.0
MEASURED_SECONDS = 20.0
LOW_RATE_MEASURED_SECONDS = 30.0
CONNECTIONS = 64
GENERIC_PATH = "/v1/messages"
INTEGRATION = "bench"
INTEGRATION_SECRET = "casewire-bench-integration-secret"  # noqa: S105
ROSTER_SIZE = 500
TEAMS = ("care", "shipping", "billing", "tech", "returns")
RULES = """version: 1
default_team: care
teams: [care, shipping, billing, tech, returns]
rules:
  - id: shipping
    when: {any: [delivery, package, parcel]}
    then: {team: shipping, priority: P3, tags: [shipping]}
  - id: billing
    when: {any: [refund, charged, invoice]}
    then: {team: billing, priority: P3, tags: [billing]}
  - id: tech
    when: {any: [crash, crashing, login, error]}
    then: {team: tech, priority: P2, tags: [bug]}
  - id: returns
    when: {any: [return, exchange]}
    then: {team: returns, priority: P4, tags: [returns]}
"""
TEXTS = (
    "My package never arrived and nobody answers",
    "Where is my order? It's been two weeks",
    "The app keeps crashing when I log in",
    "Can you help me with a refund please",
    "I was charged twice for the same invoice",
    "How do I return a jacket that does not fit?",
    "Thanks, that worked!",
)
REPLIES = (
    "Sorry to hear that! Could you send us your order number in a DM?",
    "We're on it: you'll hear from us within the hour.",
)
# Of every 10 messages: 6 customers opening a conversation, 3 brand replies, 1 customer
# writing again (to a conversation the brand answered).
MIX = ("open", "open", "reply", "open", "follow_up", "open", "reply", "open", "open", "reply")
STORAGE_SCHEMAS = ("ingest", "router", "sla")
# The brand answers a conversation this long after it opened (seconds).
REPLY_DELAY_SECONDS = 2.0


def roster() -> str:
    """500 agents over the five teams (each in one or two), capacity 40 each."""
    return roster_yaml(ROSTER_SIZE, 40, TEAMS)


def message_body(token: str, index: int, sent_at: datetime) -> dict[str, Any]:
    """A customer message that opens its own conversation (so it gets created + assigned)."""
    return {
        "platform": "x",
        "channel": "mention",
        "direction": "inbound",
        "account_id": "bench",
        "platform_message_id": f"{token}-{index}",
        "conversation_id": conversation_of(token, index),
        "author": {"id": f"customer{index}", "followers": 10},
        "text": TEXTS[index % len(TEXTS)],
        "language": "en",
        "sent_at": sent_at.isoformat(),
    }


def conversation_of(token: str, index: int) -> str:
    return f"x:bench:{token}-{index}:customer{index}"


def answer_body(token: str, index: int, opened: int, sent_at: datetime) -> dict[str, Any]:
    """The brand's reply (message `index`) to the conversation message `opened` opened."""
    return {
        "platform": "x",
        "channel": "mention",
        "direction": "outbound",
        "account_id": "bench",
        "platform_message_id": f"{token}-{index}",
        "conversation_id": conversation_of(token, opened),
        "in_reply_to": f"{token}-{opened}",
        "author": {"id": "bench"},
        "text": REPLIES[index % len(REPLIES)],
        "language": "en",
        "sent_at": sent_at.isoformat(),
    }


def follow_up_body(token: str, index: int, opened: int, sent_at: datetime) -> dict[str, Any]:
    """The customer of conversation `opened` writes again (message `index`)."""
    return message_body(token, opened, sent_at) | {
        "platform_message_id": f"{token}-{index}",
        "text": "Still waiting, any news?",
    }


@dataclass(frozen=True)
class Traffic:
    """Requests in sending order (named by their platform message id) and, for the messages
    that open a conversation, the instant each is due (by conversation)."""

    requests: list[tuple[str, bytes]]
    opened: dict[str, float]


def traffic(token: str, begin: float, rate: float, count: int) -> Traffic:
    """`count` messages at `rate` from `begin`, mixed as `MIX` says; a reply or follow-up goes
    to the oldest conversation opened at least `REPLY_DELAY_SECONDS` before (a new one opens
    instead while there is none). An opening message is named by its conversation (the
    latency's key), the others by their own id."""
    requests: list[tuple[str, bytes]] = []
    opened: dict[str, float] = {}
    waiting_answer: list[tuple[float, int]] = []  # (opened at, message index), oldest first
    answered: list[int] = []
    for index in range(count):
        at = begin + index / rate
        sent_at = datetime.fromtimestamp(at, UTC)
        kind = MIX[index % len(MIX)]
        if kind == "reply" and waiting_answer and waiting_answer[0][0] <= at - REPLY_DELAY_SECONDS:
            first = waiting_answer.pop(0)[1]
            answered.append(first)
            body = answer_body(token, index, first, sent_at)
            name = body["platform_message_id"]
        elif kind == "follow_up" and answered:
            body = follow_up_body(token, index, answered.pop(0), sent_at)
            name = body["platform_message_id"]
        else:
            body = message_body(token, index, sent_at)
            name = body["conversation_id"]
            opened[name] = at
            waiting_answer.append((at, index))
        encoded = json.dumps(body).encode()
        headers = [
            ("Content-Type", "application/json"),
            *integration_headers(INTEGRATION, INTEGRATION_SECRET, encoded).items(),
        ]
        requests.append((name, encode_request(GENERIC_PATH, encoded, headers)))
    return Traffic(requests, opened)


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
    watch: Callable[[], Mapping[str, Sequence[int]]], start: float, seconds: float
) -> CpuUse:
    """The CPU each process used over a window (the harness is the client, not counted)."""
    await asyncio.sleep(max(0.0, start - time.time()))
    before = CpuSnapshot.take(watch)
    await asyncio.sleep(seconds)
    return CpuUse.between(before, CpuSnapshot.take(watch), seconds)


@dataclass(frozen=True)
class _Phase:
    """One steady rate: what was sent, how it was answered, the CPU over its measured window."""

    load: Traffic
    sender: Sender
    cpu: CpuUse
    measured_from: float


async def _steady_rate(
    port: int,
    token: str,
    rate: float,
    measured_seconds: float,
    watch: Callable[[], Mapping[str, Sequence[int]]],
) -> _Phase:
    total = int(rate * (WARM_UP_SECONDS + measured_seconds))
    begin = time.time() + 1.0
    load = traffic(token, begin, rate, total)
    print(f"e2e: {rate:.0f} messages/s into ingest for {total / rate:.0f}s ...")
    measured_from = begin + WARM_UP_SECONDS
    cpu = asyncio.create_task(_cpu_over_window(watch, measured_from, measured_seconds))
    sender = await send_schedule(
        port, load.requests, begin, rate, connections=CONNECTIONS, expected_status=202
    )
    if sender.failures:
        raise BenchError(f"{len(sender.failures)} requests failed, e.g. {sender.failures[0]}")
    use = await cpu
    print(f"  CPU in cores at {rate:.0f}/s: {use.describe()}")
    return _Phase(load, sender, use, measured_from)


@dataclass(frozen=True)
class TableSize:
    schema: str
    table: str
    rows: int
    bytes: int  # table, indexes and TOAST, dead rows included: what the disk holds


async def _storage(database_url: str) -> list[TableSize]:
    """Every table of the services' schemas once the run is over (nothing pruned yet)."""
    connection = await asyncpg.connect(database_url)
    try:
        tables = await connection.fetch(
            "SELECT n.nspname, c.relname, pg_total_relation_size(c.oid) AS bytes"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname = ANY($1::text[]) ORDER BY 1, 2",
            list(STORAGE_SCHEMAS),
        )
        sizes = []
        for row in tables:
            rows = await connection.fetchval(
                f'SELECT count(*) FROM "{row["nspname"]}"."{row["relname"]}"'
            )
            sizes.append(TableSize(row["nspname"], row["relname"], rows, row["bytes"]))
        return sizes
    finally:
        await connection.close()


def storage_figures(sizes: Sequence[TableSize], messages: int) -> Results:
    """PostgreSQL's growth per message (bytes and rows, all tables of the three services), and
    per service; the tables that hold most are printed."""
    print(f"  PostgreSQL after {messages:,} messages (before any retention pruning):")
    for size in sorted(sizes, key=lambda item: -item.bytes)[:12]:
        print(
            f"    {size.schema}.{size.table:28s} {size.rows:8,} rows"
            f" {size.bytes / 1024:9,.0f} kB  {size.bytes / messages:7,.0f} B/msg"
        )
    figures: Results = {
        "pg_bytes_per_msg": metric(round(sum(s.bytes for s in sizes) / messages), "bytes"),
        "pg_rows_per_msg": metric(round(sum(s.rows for s in sizes) / messages, 2), "rows"),
    }
    for schema in STORAGE_SCHEMAS:
        total = sum(s.bytes for s in sizes if s.schema == schema)
        figures[f"pg_bytes_per_msg_{schema}"] = metric(round(total / messages), "bytes")
    return figures


def cost_figures(idle: CpuUse, phases: Mapping[int, CpuUse]) -> Results:
    """The stack's CPU (every watched process; the harness is not one): idle in cores, and per
    message at each rate in milliseconds of CPU, all in and per process."""
    figures: Results = {"stack_idle_cores": metric(round(sum(idle.processes.values()), 3), "cores")}
    for name, cores in idle.processes.items():
        figures[f"idle_cores_{name}"] = metric(round(cores, 3), "cores")
    for rate, use in phases.items():
        figures[f"cpu_ms_per_msg_at_{rate}"] = metric(
            round(sum(use.processes.values()) * 1000 / rate, 2), "ms"
        )
        for name, cores in use.processes.items():
            figures[f"cpu_ms_per_msg_at_{rate}_{name}"] = metric(
                round(cores * 1000 / rate, 2), "ms"
            )
    return figures


async def measure(running: stack.Stack, work: Path) -> Results:
    token = uuid.uuid4().hex[:10]
    database_url = await stack.ensure_database(running.database_url, f"casewire_bench_e2e_{token}")
    (work / "e2e-rules.yaml").write_text(RULES, encoding="utf-8")
    (work / "e2e-agents.yaml").write_text(roster(), encoding="utf-8")
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
    for name in ("ingest", "router", "sla"):
        await services.migrate(name, env, logs)
    # The services read only this benchmark's traffic, not what earlier ones left on the stack
    # (the SLA benchmark's thousands of alerts would otherwise be escalated meanwhile).
    group = f"bench-e2e-router-{token}"
    bootstrap = running.kafka_bootstrap_servers
    await stack.start_group_at_topic_end(bootstrap, group, topics.MESSAGES)
    await stack.start_group_at_topic_end(bootstrap, f"{group}-escalation", topics.SLA_ALERTS)
    sla_group = f"bench-e2e-sla-{token}"
    await stack.start_group_at_topic_end(bootstrap, sla_group, topics.CASE_EVENTS)
    ingest_port, router_port, sla_port = stack.free_ports(3)
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
        services.start(
            services.ServiceSpec(
                "sla",
                sla_port,
                {
                    "CASEWIRE_SLA_POLICIES": str(repo_root() / "config" / "sla-policies.yaml"),
                    "CASEWIRE_SLA_CONSUMER_GROUP": sla_group,
                },
            ),
            env,
            logs,
        ),
    ]
    consumer = AIOKafkaConsumer(
        topics.CASE_EVENTS,
        bootstrap_servers=bootstrap,
        group_id=f"bench-e2e-reader-{token}",
        auto_offset_reset="latest",
        session_timeout_ms=6000,
        fetch_max_wait_ms=10,  # the reader must not add its own wait to what it measures
    )
    seen = _Seen()
    stop_reading = asyncio.Event()
    reader: asyncio.Task[None] | None = None
    fast_token = f"{token}f"
    try:
        never = asyncio.Event()
        for service in started:
            await services.wait_ready(service, never)
        await _router_idle(f"http://127.0.0.1:{router_port}")

        def watch() -> dict[str, list[int]]:
            return {
                **{service.spec.name: [service.process.pid] for service in started},
                **stack_processes(running),
            }

        print(f"e2e: the stack idle for {IDLE_SECONDS:.0f}s ...")
        idle = await _cpu_over_window(watch, time.time(), IDLE_SECONDS)
        print(f"  CPU in cores, idle: {idle.describe()}")
        await consumer.start()
        await consumer.getmany(timeout_ms=1000)  # joined, positioned at the topics' ends
        reader = asyncio.create_task(_read(consumer, fast_token, seen, stop_reading))
        slow = await _steady_rate(
            ingest_port, f"{token}s", LOW_RATE_PER_SECOND, LOW_RATE_MEASURED_SECONDS, watch
        )
        fast = await _steady_rate(ingest_port, fast_token, RATE_PER_SECOND, MEASURED_SECONDS, watch)
        due = fast.load.opened
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline and any(c not in seen.read for c in due):
            await asyncio.sleep(0.2)
        values = latencies_ms(due, seen.read, fast.measured_from)
    finally:
        stop_reading.set()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        with contextlib.suppress(Exception):
            await consumer.stop()
        await services.stop_all(started)
        storage = await _storage(database_url)
        await stack.drop_database(running.database_url, database_url)
    measured = [c for c, at in due.items() if at >= fast.measured_from]
    hops = {
        "ingest_answer": hop_ms(due, fast.sender.answered, measured),
        "event_produced": hop_ms(due, seen.event_produced, measured),
        "delivery": hop_ms(seen.event_produced, seen.read, measured),
    }
    p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
    print(f"e2e: {len(values)} measured conversations, p50 {p50:.0f} ms, p99 {p99:.0f} ms")
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
        "e2e_bench_roster": metric(ROSTER_SIZE, "count"),
        **cost_figures(idle, {LOW_RATE_PER_SECOND: slow.cpu, RATE_PER_SECOND: fast.cpu}),
        **storage_figures(storage, len(slow.load.requests) + len(fast.load.requests)),
    }


def run(running: stack.Stack, work: Path) -> Results:
    return asyncio.run(measure(running, work))
