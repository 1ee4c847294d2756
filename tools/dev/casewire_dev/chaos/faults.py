"""Faults injected on a schedule relative to the run's start, and what they cost.

Names as in `capture.Fault`: kill-ingest, kill-router, kill-sla (SIGKILL, restarted a few
seconds later like Kubernetes would), stop-postgres (`pg_ctl stop -m immediate`, started
again), freeze-broker (SIGSTOP/SIGCONT of Tansu: it keeps everything in memory, so it is
never killed), freeze-router (SIGSTOP longer than the first-response target, so replies sent
before their deadline are processed after it), rebalance (a third router replica joins, then
leaves).

Takeover and stall times come from the router group's committed offsets on the messages
topic, sampled twice a second: after a kill or a membership change, how long until every
partition moved again (traffic reaches every partition several times a second).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from casewire_common import topics

from casewire_dev import stack as local_stack
from casewire_dev.chaos.capture import Fault
from casewire_dev.chaos.fleet import Fleet, Replica

FAULT_NAMES = (
    "kill-ingest",
    "kill-router",
    "kill-sla",
    "stop-postgres",
    "freeze-broker",
    "freeze-router",
    "rebalance",
)
RESTART_AFTER_SECONDS = 3.0  # how long a killed replica stays down
POSTGRES_DOWN_SECONDS = 5.0
BROKER_FROZEN_SECONDS = 10.0
REPLICA_STAYS_SECONDS = 15.0  # how long the replica that joins stays before it leaves
SAMPLE_SECONDS = 0.5


@dataclass(frozen=True)
class ScheduledFault:
    at: float  # seconds after the run's start
    name: str


def schedule(names: Sequence[str], duration: float) -> list[ScheduledFault]:
    """When each chosen fault happens over a run whose traffic lasts `duration` seconds.
    Kills happen twice (each replica in turn); the broker stall comes last, when the
    services have recovered from the rest."""
    slots = {
        "kill-ingest": (0.15,),
        "kill-router": (0.2, 0.62),
        "kill-sla": (0.3, 0.72),
        "freeze-router": (0.42,),
        "stop-postgres": (0.5,),
        "freeze-broker": (0.8,),
        "rebalance": (0.05,),
    }
    unknown = [name for name in names if name not in slots]
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULT_NAMES)}")
    return sorted(
        (ScheduledFault(fraction * duration, name) for name in names for fraction in slots[name]),
        key=lambda fault: fault.at,
    )


class OffsetSampler:
    """The router group's committed offset of every messages partition, over time."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self._bootstrap = bootstrap
        self._group = group
        self.samples: list[tuple[float, dict[int, int]]] = []  # (monotonic time, offsets)

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=self._group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            await consumer.topics()
            partitions = [
                TopicPartition(topics.MESSAGES, partition)
                for partition in sorted(consumer.partitions_for_topic(topics.MESSAGES) or ())
            ]
            consumer.assign(partitions)  # manual: reads commits, never joins the group
            while True:
                try:
                    offsets = {
                        partition.partition: (await consumer.committed(partition)) or 0
                        for partition in partitions
                    }
                    self.samples.append((time.monotonic(), offsets))
                except KafkaError:
                    pass  # the broker is frozen or busy: a gap in the samples
                await asyncio.sleep(SAMPLE_SECONDS)
        finally:
            await consumer.stop()

    def resumed_after(self, instant: float) -> float | None:
        """Seconds from `instant` until every partition's committed offset had moved past
        where it stood then; None if some partition never moved again."""
        before = [offsets for at, offsets in self.samples if at <= instant]
        if not before:
            return None
        start = before[-1]
        waiting = set(start)
        latest = instant
        for at, offsets in self.samples:
            if at <= instant:
                continue
            for partition in [p for p in waiting if offsets.get(p, 0) > start[p]]:
                waiting.discard(partition)
                latest = at
            if not waiting:
                return latest - instant
        return None


@dataclass
class FaultRun:
    """What the faults act on, and what they leave behind (the capture's faults and timings)."""

    fleet: Fleet
    stack: local_stack.Stack
    first_response_seconds: float
    extra_router_port: int
    sampler: OffsetSampler | None = None
    faults: list[Fault] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    _turns: dict[str, int] = field(default_factory=dict)
    # Monotonic instants after which every partition should move again: router kills, and
    # a replica joining or leaving.
    _router_kills: list[float] = field(default_factory=list)
    _joins: list[float] = field(default_factory=list)
    _leaves: list[float] = field(default_factory=list)
    # One fault at a time on a replica: a kill waits for the freeze of the same replica.
    _busy: dict[str, asyncio.Lock] = field(default_factory=dict)

    def _lock(self, replica: Replica) -> asyncio.Lock:
        return self._busy.setdefault(replica.name, asyncio.Lock())

    async def inject(self, name: str) -> None:
        actions: dict[str, Callable[[], Awaitable[str | None]]] = {
            "kill-ingest": lambda: self._kill("ingest"),
            "kill-router": lambda: self._kill("router"),
            "kill-sla": lambda: self._kill("sla"),
            "stop-postgres": self._stop_postgres,
            "freeze-broker": self._freeze_broker,
            "freeze-router": self._freeze_router,
            "rebalance": self._rebalance,
        }
        started = datetime.now(UTC)
        detail = await actions[name]()
        if detail is not None:
            self.faults.append(Fault(name, started, datetime.now(UTC), detail))

    async def run_schedule(self, planned: Sequence[ScheduledFault], started: float) -> None:
        """Inject each fault at its time (`started`: the run's start, loop time); a fault
        that lasts (a freeze, a replica's stay) does not hold back the next one."""
        loop = asyncio.get_running_loop()

        async def at_its_time(fault: ScheduledFault) -> None:
            await asyncio.sleep(max(0.0, started + fault.at - loop.time()))
            print(f"  fault at {loop.time() - started:5.1f}s: {fault.name}", flush=True)
            await self.inject(fault.name)

        await asyncio.gather(*(at_its_time(fault) for fault in planned))

    def measure(self) -> None:
        """Takeover and stall times into `timings`, once the samples cover the faults."""
        if self.sampler is None:
            return
        for key, instants in (
            ("takeover_s", self._router_kills),
            ("rebalance_join_stall_s", self._joins),
            ("rebalance_leave_stall_s", self._leaves),
        ):
            figures = [self.sampler.resumed_after(instant) for instant in instants]
            measured = [figure for figure in figures if figure is not None]
            if measured:
                self.timings[key] = max(measured)

    def _next_replica(self, service: str) -> Replica:
        """The replicas a kill or a freeze picks, in turn (never the one a rebalance adds)."""
        replicas = [r for r in self.fleet.of(service) if r.port != self.extra_router_port]
        count = self._turns.get(service, 0)
        self._turns[service] = count + 1
        return replicas[count % len(replicas)]

    async def _kill(self, service: str) -> str:
        replica = self._next_replica(service)
        async with self._lock(replica):
            killed_at = time.monotonic()
            await self.fleet.kill(replica)
            await asyncio.sleep(RESTART_AFTER_SECONDS)
            if service == "router":
                self._router_kills.append(killed_at)
            await self.fleet.restart(replica)
            back = time.monotonic() - killed_at
        return (
            f"{replica.name} SIGKILLed, restarted after {RESTART_AFTER_SECONDS:.0f}s,"
            f" ready {back:.1f}s after the kill"
        )

    async def _stop_postgres(self) -> str | None:
        if self.stack.postgres_data is None:
            self.skipped.append("stop-postgres: PostgreSQL is an external server, not ours to stop")
            print(f"  skipped: {self.skipped[-1]}", flush=True)
            return None
        data = Path(self.stack.postgres_data)
        port = int(self.stack.database_url.rsplit(":", 1)[1].split("/", 1)[0])
        await asyncio.to_thread(local_stack.stop_postgres, data, "immediate")
        await asyncio.sleep(POSTGRES_DOWN_SECONDS)
        await asyncio.to_thread(local_stack.start_postgres, Path(self.stack.state_dir), port)
        return f"pg_ctl stop -m immediate, started again after {POSTGRES_DOWN_SECONDS:.0f}s"

    async def _freeze_broker(self) -> str:
        pid = self.stack.broker_pid
        if pid is None:
            raise RuntimeError("the stack has no broker process to freeze")
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(BROKER_FROZEN_SECONDS)
        finally:
            os.kill(pid, signal.SIGCONT)
        return f"broker SIGSTOPped for {BROKER_FROZEN_SECONDS:.0f}s"

    async def _freeze_router(self) -> str:
        replica = self._next_replica("router")
        seconds = self.first_response_seconds + 5.0
        async with self._lock(replica):
            self.fleet.signal(replica, signal.SIGSTOP)
            try:
                await asyncio.sleep(seconds)
            finally:
                self.fleet.signal(replica, signal.SIGCONT)
        return f"{replica.name} SIGSTOPped for {seconds:.0f}s"

    async def _rebalance(self) -> str:
        template = self.fleet.of("router")[0]
        replica = self.fleet.add("router", self.extra_router_port, template.settings)
        self._joins.append(time.monotonic())
        self.fleet.start(replica)
        await self.fleet.wait_ready(replica)
        await asyncio.sleep(REPLICA_STAYS_SECONDS)
        self._leaves.append(time.monotonic())
        await self.fleet.stop(replica)
        return f"{replica.name} joined, left after {REPLICA_STAYS_SECONDS:.0f}s"
