"""CPU accounting from /proc: how many cores each watched process (and this one, the client)
used over a measured window, and how busy the whole machine was meanwhile, so that a figure
measured while other work ran can say so."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from casewire_dev import stack

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), from /proc; None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def _machine_jiffies() -> tuple[int, int]:
    """Busy and total jiffies of all CPUs since boot."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


# The processes to account for, by name, found again at each snapshot (PostgreSQL's
# backends come and go).
Watch = Callable[[], Mapping[str, Sequence[int]]]


@dataclass(frozen=True)
class CpuSnapshot:
    client: float
    processes: dict[str, dict[int, float]]
    machine: tuple[int, int]

    @staticmethod
    def take(watch: Watch) -> CpuSnapshot:
        processes: dict[str, dict[int, float]] = {}
        for name, pids in watch().items():
            seconds = {pid: process_cpu_seconds(pid) for pid in pids}
            processes[name] = {pid: value for pid, value in seconds.items() if value is not None}
        return CpuSnapshot(time.process_time(), processes, _machine_jiffies())


@dataclass(frozen=True)
class CpuUse:
    """CPU used over a window, in cores (1.0 = one core busy the whole window)."""

    client: float
    processes: dict[str, float]
    machine: float  # every process on the machine, this client included

    @staticmethod
    def between(before: CpuSnapshot, after: CpuSnapshot, seconds: float) -> CpuUse:
        def cores(value: float) -> float:
            return value / seconds if seconds > 0 else 0.0

        processes = {
            name: cores(
                sum(
                    value - before.processes.get(name, {}).get(pid, 0.0)
                    for pid, value in now.items()
                )
            )
            for name, now in after.processes.items()
        }
        busy = after.machine[0] - before.machine[0]
        total = after.machine[1] - before.machine[1]
        machine = (os.cpu_count() or 1) * busy / total if total > 0 else 0.0
        return CpuUse(cores(after.client - before.client), processes, machine)

    @property
    def others(self) -> float:
        """What the rest of the machine used meanwhile (another benchmark, a build...)."""
        return max(0.0, self.machine - self.client - sum(self.processes.values()))

    def describe(self) -> str:
        parts = [f"client {self.client:.2f}"]
        parts += [f"{name} {value:.2f}" for name, value in self.processes.items()]
        parts.append(f"everything else {self.others:.2f}")
        return ", ".join(parts) + f"; machine {self.machine:.2f} of {os.cpu_count()} cores busy"


def postgres_pids(data: str | None) -> list[int]:
    if data is None:
        return []
    try:
        postmaster = int((Path(data) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return []
    return [postmaster, *_children(postmaster)]


def stack_processes(running: stack.Stack) -> dict[str, list[int]]:
    """The local stack's processes to watch: the broker, and PostgreSQL's (none when it is an
    external server)."""
    return {
        "broker": [running.broker_pid] if running.broker_pid else [],
        "postgres": postgres_pids(running.postgres_data),
    }
