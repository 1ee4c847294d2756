"""How fast a consumer group hands partitions over (issue 12, "Fast, quiet failover"):

- takeover: from the SIGKILL of a replica to the first record of each of its partitions
  processed by another member;
- stall: the longest time the partitions that stay with the other members go unprocessed
  while a replica joins or leaves (and, beside it, the handover of the partitions that move).

"Processed" is the group's committed offset of a partition advancing under a steady load (the
services commit after each batch's transaction); who owns a partition is read from each
replica's `casewire_consumer_lag` series on /metrics. The measuring functions take the
replicas as `services.RunningService`, so the fault-injection harness can use them around its
own faults and load; `run` is `casewire-dev failover`: the local stack, two router replicas,
a steady load, then kill, join and leave, with the figures printed as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from casewire_common import topics
from casewire_common.messages import message_id
from casewire_common.settings import ServiceSettings
from prometheus_client.parser import text_string_to_metric_families

from casewire_dev import services, stack
from casewire_dev.paths import repo_root

POLL_SECONDS = 0.1
# A change is over once every partition was processed after it and each expected replica
# reports what it owns; the lag gauge that reports it refreshes every 10 s.
SETTLE_TIMEOUT_SECONDS = 90.0
ROUTER_GROUP = "casewire-router"


class FailoverError(RuntimeError):
    """The group did not settle, or a replica died on its own."""


class CommitWatcher:
    """Reads the group's committed offset of every partition of `topic` every
    `poll_seconds` (without joining the group) and remembers when each one advanced."""

    def __init__(
        self, bootstrap: str, topic: str, group: str, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._group = group
        self._poll_seconds = poll_seconds
        self.advances: dict[int, list[float]] = {}
        self._reader: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def partitions(self) -> list[int]:
        return sorted(self.advances)

    async def start(self) -> None:
        # Not subscribed: it only fetches the group's offsets and never becomes a member.
        reader = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=self._group, enable_auto_commit=False
        )
        await reader.start()
        self._reader = reader
        await reader.topics()  # fetches the metadata that partitions_for_topic reads
        partitions = reader.partitions_for_topic(self._topic) or set()
        self.advances = {partition: [] for partition in sorted(partitions)}
        self._task = asyncio.create_task(self._watch(), name="commit-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._reader is not None:
            await self._reader.stop()

    async def _watch(self) -> None:
        assert self._reader is not None
        reader = self._reader
        loop = asyncio.get_running_loop()
        last: dict[int, int | None] = {}
        while True:
            try:
                offsets = await asyncio.gather(
                    *(reader.committed(TopicPartition(self._topic, p)) for p in self.advances)
                )
            except KafkaError:  # the broker is away (a fault being injected): read again
                await asyncio.sleep(self._poll_seconds)
                continue
            seen = loop.time()
            for partition, offset in zip(self.advances, offsets, strict=True):
                if partition in last and offset is not None and offset != last[partition]:
                    self.advances[partition].append(seen)
                last[partition] = offset
            await asyncio.sleep(self._poll_seconds)

    def first_advance_after(self, partition: int, moment: float) -> float | None:
        return next((t for t in self.advances[partition] if t > moment), None)

    def all_advanced_after(self, moment: float) -> bool:
        return all(self.first_advance_after(p, moment) is not None for p in self.advances)

    def _gaps(self, partition: int, start: float, end: float) -> list[tuple[float, float]]:
        moments = [start, *(t for t in self.advances[partition] if start < t < end), end]
        return list(itertools.pairwise(moments))

    def longest_gap(self, partitions: Iterable[int], start: float, end: float) -> float:
        """The longest stretch of [start, end] in which one of `partitions` did not advance."""
        return max((b - a for p in partitions for a, b in self._gaps(p, start, end)), default=0.0)

    def resumed_at(self, partition: int, start: float, end: float) -> float:
        """When `partition` advanced again after its longest pause in [start, end]. (Not its
        first advance after `start`: that can be a killed owner's last commit, sent before
        the kill and seen after it.)"""
        return max(self._gaps(partition, start, end), key=lambda gap: gap[1] - gap[0])[1]


async def owned_partitions(replica: services.RunningService, group: str, topic: str) -> set[int]:
    """The partitions of `topic` that `replica` owns in `group`, from its lag gauge."""
    url = f"http://127.0.0.1:{replica.spec.port}/metrics"
    async with httpx.AsyncClient(timeout=2.0) as client:
        text = (await client.get(url)).text
    return {
        int(sample.labels["partition"])
        for family in text_string_to_metric_families(text)
        if family.name == "casewire_consumer_lag"
        for sample in family.samples
        if sample.labels.get("group") == group and sample.labels.get("topic") == topic
    }


@dataclass(frozen=True)
class Group:
    """The consumer group being measured and the watcher of its commits."""

    watcher: CommitWatcher
    name: str
    topic: str


async def ownership(
    group: Group, replicas: Sequence[services.RunningService]
) -> dict[int, set[int]]:
    """The partitions each replica owns, by the replica's HTTP port."""
    owned = await asyncio.gather(*(owned_partitions(r, group.name, group.topic) for r in replicas))
    return {replica.spec.port: share for replica, share in zip(replicas, owned, strict=True)}


async def settled(
    group: Group, replicas: Sequence[services.RunningService], since: float
) -> tuple[float, dict[int, set[int]]]:
    """Waits until `replicas` (each owning some) share every partition, and every partition
    was processed after that was seen; returns that moment and who owns what."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_SECONDS
    owners: dict[int, set[int]] | None = None
    while loop.time() < deadline:
        for replica in replicas:
            if replica.process.poll() is not None:
                raise FailoverError(replica.describe_exit())
        if owners is None:
            current = await ownership(group, replicas)
            shares = list(current.values())
            if all(shares) and sorted(p for s in shares for p in s) == group.watcher.partitions:
                owners, since = current, max(since, loop.time())
        elif group.watcher.all_advanced_after(since):
            return loop.time(), owners
        await asyncio.sleep(0.5)
    raise FailoverError(f"the group did not settle within {SETTLE_TIMEOUT_SECONDS:.0f}s")


def _signal(replica: services.RunningService, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(replica.process.pid, signum)


async def measure_takeover(
    group: Group, victim: services.RunningService, survivors: Sequence[services.RunningService]
) -> dict[str, float]:
    """SIGKILL `victim`; how long until each of its partitions was processed by a survivor
    (the slowest), and the longest pause of the survivors' own partitions meanwhile."""
    before = await ownership(group, [victim, *survivors])
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    _signal(victim, signal.SIGKILL)
    await asyncio.to_thread(victim.process.wait)
    settled_at, _ = await settled(group, survivors, killed_at)
    taken_over = [
        group.watcher.resumed_at(p, killed_at, settled_at) for p in before[victim.spec.port]
    ]
    kept = {p for replica in survivors for p in before[replica.spec.port]}
    return {
        "takeover_s": max(taken_over) - killed_at,
        "survivors_stall_s": group.watcher.longest_gap(kept, killed_at, settled_at),
    }


Members = list[services.RunningService]


async def measure_change(
    group: Group, change: Callable[[Members], Awaitable[Members]], members: Members
) -> tuple[dict[str, float], Members]:
    """Runs `change` on the members (a replica joins or leaves; it returns the members
    after it) and measures the longest pause of the partitions that stayed with their owner
    ("stall") and of those that moved ("handover"); returns the figures and the members."""
    before = await ownership(group, members)
    loop = asyncio.get_running_loop()
    changed_at = loop.time()
    after_members = await change(members)
    settled_at, after = await settled(group, after_members, changed_at)
    stayed = {p for port, share in after.items() for p in share if p in before.get(port, set())}
    moved = set(group.watcher.partitions) - stayed
    return {
        "stall_s": group.watcher.longest_gap(stayed, changed_at, settled_at),
        "handover_s": group.watcher.longest_gap(moved, changed_at, settled_at),
    }, after_members


# The load: one new customer's thank-you DM per record, spread evenly over the partitions so
# that each one is processed several times a second. Thanks opens a case closed at once
# (no_action): queues stay empty, as a replica's start drains them all in one transaction.
def _message(sequence: int, run: str) -> tuple[bytes, bytes]:
    customer = f"failover-{run}-{sequence}"
    conversation = f"x:failover:{customer}"
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    body: dict[str, object] = {
        "id": message_id("x", customer),
        "platform": "x",
        "channel": "dm",
        "visibility": "private",
        "direction": "inbound",
        "event": "message",
        "account_id": "failover",
        "platform_message_id": customer,
        "conversation_id": conversation,
        "in_reply_to": None,
        "author": {"id": customer, "handle": customer, "followers": 10, "verified": False},
        "text": "thank you, great service",
        "language": "en",
        "attachments": [],
        "sent_at": now,
        "received_at": now,
    }
    return conversation.encode(), json.dumps(body).encode()


async def steady_load(bootstrap: str, topic: str, partitions: int, rate: float) -> None:
    """Produces `rate` messages a second, round-robin over the partitions, until cancelled."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    run = uuid.uuid4().hex[:8]
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        sequence = 0
        while True:
            due = int((loop.time() - started) * rate)
            while sequence < due:
                key, value = _message(sequence, run)
                await producer.send(topic, value, key=key, partition=sequence % partitions)
                sequence += 1
            await asyncio.sleep(0.02)
    finally:
        await producer.stop()


@dataclass
class Options:
    rate: float = 60.0
    rounds: int = 1
    log_dir: Path | None = None


@dataclass
class Figures:
    steady_gap_s: float = 0.0
    takeover_s: list[float] = field(default_factory=list)
    kill_stall_s: list[float] = field(default_factory=list)
    join_stall_s: list[float] = field(default_factory=list)
    join_handover_s: list[float] = field(default_factory=list)
    leave_stall_s: list[float] = field(default_factory=list)
    leave_handover_s: list[float] = field(default_factory=list)

    def report(
        self, settings: ServiceSettings, options: Options, partitions: int
    ) -> dict[str, Any]:
        measured = {
            name: {"max": round(max(values), 2), "runs": [round(v, 2) for v in values]}
            for name, values in vars(self).items()
            if isinstance(values, list) and values
        }
        return {
            "settings": {
                name: getattr(settings, name)
                for name in (
                    "consumer_session_timeout_ms",
                    "consumer_heartbeat_interval_ms",
                    "consumer_rebalance_timeout_ms",
                    "consumer_max_poll_interval_ms",
                    "consumer_group_instance_id",
                )
            },
            "load": {"messages_per_s": options.rate, "partitions": partitions},
            "steady_gap_s": round(self.steady_gap_s, 2),
            **measured,
        }


def _say(text: str) -> None:
    print(f"failover: {text}", file=sys.stderr, flush=True)


class _Routers:
    """Starts router replicas, each with its own port and log file, and stops them all."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self._env = env
        self._log_dir = log_dir
        self.started: list[services.RunningService] = []

    async def start(self) -> services.RunningService:
        # One folder per replica: services.start names the log file after the service.
        log_dir = self._log_dir / f"replica-{len(self.started) + 1}"
        log_dir.mkdir(parents=True, exist_ok=True)
        spec = services.ServiceSpec("router", stack.free_port())
        replica = services.start(spec, self._env, log_dir)
        self.started.append(replica)
        if not await services.wait_ready(replica, asyncio.Event()):
            raise FailoverError("router replica not ready")
        return replica

    async def stop(self) -> None:
        await services.stop_all(self.started)


def _consumer_settings(env: dict[str, str]) -> ServiceSettings:
    """The settings the replicas were started with (from `env`, not this process's)."""
    consumer = {
        name.removeprefix("CASEWIRE_").lower(): value
        for name, value in env.items()
        if name.startswith("CASEWIRE_CONSUMER_")
    }
    return ServiceSettings.model_validate(consumer)


async def _measure(options: Options, running: stack.Stack, log_dir: Path) -> dict[str, Any]:
    root = repo_root()
    name = f"casewire_failover_{uuid.uuid4().hex[:8]}"
    async with stack.scratch_database(running.database_url, name) as database_url:
        env = {
            **stack.LOCAL_CONSUMER_SETTINGS,
            **os.environ,  # consumer settings given here win: to compare settings
            **running.env(),
            "CASEWIRE_DATABASE_URL": database_url,
            "CASEWIRE_ROUTER_RULES": str(root / "config" / "rules.yaml"),
            "CASEWIRE_ROUTER_SAVED_REPLIES": str(root / "config" / "saved-replies.yaml"),
            "CASEWIRE_ROUTER_AGENTS": str(root / "config" / "agents.yaml"),
            "CASEWIRE_ROUTER_CONSUMER_GROUP": ROUTER_GROUP,
            "CASEWIRE_LOG_LEVEL": "WARNING",
        }
        await services.migrate("router", env, log_dir)
        routers = _Routers(env, log_dir)
        watcher = CommitWatcher(running.kafka_bootstrap_servers, topics.MESSAGES, ROUTER_GROUP)
        load: asyncio.Task[None] | None = None
        try:
            members = list(await asyncio.gather(routers.start(), routers.start()))
            _say(f"two router replicas ready; load {options.rate:g} messages/s")
            await watcher.start()
            group = Group(watcher, ROUTER_GROUP, topics.MESSAGES)
            partitions = len(watcher.partitions)
            load = asyncio.create_task(
                steady_load(
                    running.kafka_bootstrap_servers, topics.MESSAGES, partitions, options.rate
                )
            )
            loop = asyncio.get_running_loop()
            since = loop.time()
            steady_from, _ = await settled(group, members, since)
            await asyncio.sleep(5)
            figures = Figures(
                steady_gap_s=watcher.longest_gap(watcher.partitions, steady_from, loop.time())
            )

            async def join(current: Members) -> Members:
                return [*current, await routers.start()]

            async def leave(current: Members) -> Members:
                await services.stop_all([current[-1]])  # SIGTERM: it leaves the group
                return current[:-1]

            for round_number in range(1, options.rounds + 1):
                victim, survivor = members[-1], members[0]
                _say(f"round {round_number}: SIGKILL of a replica")
                taken = await measure_takeover(group, victim, [survivor])
                figures.takeover_s.append(taken["takeover_s"])
                figures.kill_stall_s.append(taken["survivors_stall_s"])
                _say(f"round {round_number}: a replica joins")
                joined, members = await measure_change(group, join, [survivor])
                figures.join_stall_s.append(joined["stall_s"])
                figures.join_handover_s.append(joined["handover_s"])
                _say(f"round {round_number}: a replica leaves (SIGTERM)")
                left, members = await measure_change(group, leave, members)
                figures.leave_stall_s.append(left["stall_s"])
                figures.leave_handover_s.append(left["handover_s"])
                if round_number < options.rounds:
                    members = await join(members)
                    await settled(group, members, loop.time())
            return figures.report(_consumer_settings(env), options, partitions)
        finally:
            if load is not None:
                load.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await load
            await watcher.stop()
            await routers.stop()


def run(options: Options) -> int:
    """`casewire-dev failover`: prints the figures as one JSON object on stdout."""
    state_dir = Path(tempfile.mkdtemp(prefix="casewire-failover-"))
    log_dir = options.log_dir or state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    _say(f"local stack in {state_dir}, logs in {log_dir}")
    running = stack.up(
        state_dir,
        kafka_port=stack.free_port(),
        postgres_port=stack.free_port(),
        database_url=os.environ.get("CASEWIRE_DATABASE_URL"),
    )
    try:
        report = asyncio.run(_measure(options, running, log_dir))
    except (FailoverError, services.ServiceError) as error:
        stack.down(state_dir)
        _say(f"{error} (logs kept in {log_dir})")
        return 1
    except BaseException:
        stack.down(state_dir)
        raise
    stack.down(state_dir, remove=True)  # with the logs when they are in it: all went well
    print(json.dumps(report, indent=2))
    return 0
