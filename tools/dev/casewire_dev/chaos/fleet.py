"""The services of a chaos run as processes that faults can kill, freeze and restart.

`services.py` starts one process per service; a chaos run has replicas (`router-1`,
`router-2`, ...) that must keep their port and their log across restarts, as a pod keeps its
name: each replica appends to `<log_dir>/<replica>.log`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from casewire_dev import services


@dataclass
class Replica:
    """One replica of one service: its name, port, settings and (while running) its process."""

    service: str  # ingest | router | sla
    index: int
    port: int
    settings: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Fleet:
    """Every replica of the run; starts, signals and stops them."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.replicas: list[Replica] = []

    def of(self, service: str) -> list[Replica]:
        return [replica for replica in self.replicas if replica.service == service]

    def add(self, service: str, port: int, settings: Mapping[str, str]) -> Replica:
        replica = Replica(service, len(self.of(service)) + 1, port, settings)
        self.replicas.append(replica)
        return replica

    def start(self, replica: Replica) -> None:
        """`casewire-<service> serve` in its own session, its log appended."""
        replica.process = services.serve_process(
            replica.service,
            replica.port,
            {**self.env, **replica.settings},
            self.log_path(replica),
            append=True,
        )

    async def wait_ready(self, replica: Replica, timeout: float = 60.0) -> None:
        """Until `/readyz` answers 200; ServiceError if it exits or takes too long."""
        await services.poll_ready(
            f"{replica.url}/readyz",
            exited=lambda: (
                None if replica.running else f"{replica.name} exited; {self._tail(replica)}"
            ),
            late=lambda: f"{replica.name} not ready within {timeout:.0f}s; {self._tail(replica)}",
            timeout=timeout,
            interval=0.2,
        )

    def signal(self, replica: Replica, signum: signal.Signals) -> None:
        """Send `signum` to the replica's whole process group."""
        if replica.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(replica.process.pid, signum)

    async def kill(self, replica: Replica) -> None:
        """SIGKILL, as the kernel's OOM killer or a lost node would."""
        self.signal(replica, signal.SIGKILL)
        if replica.process is not None:
            await asyncio.to_thread(replica.process.wait)

    async def restart(self, replica: Replica) -> None:
        replica.restarts += 1
        self.start(replica)
        await self.wait_ready(replica)

    async def stop(self, replica: Replica, timeout: float = services.STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM (after SIGCONT, should it be frozen), SIGKILL after `timeout`."""
        if not replica.running or replica.process is None:
            return
        self.signal(replica, signal.SIGCONT)
        self.signal(replica, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(replica.process.wait), timeout)
        except TimeoutError:
            await self.kill(replica)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(replica) for replica in self.replicas))

    async def metrics(self, replica: Replica) -> str | None:
        """The replica's Prometheus text, or None while it does not answer."""
        try:
            async with httpx.AsyncClient(timeout=3.0) as client:
                response = await client.get(f"{replica.url}/metrics")
        except httpx.TransportError:
            return None
        return response.text if response.status_code == 200 else None

    def log_path(self, replica: Replica) -> Path:
        return self.log_dir / f"{replica.name}.log"

    def _tail(self, replica: Replica) -> str:
        path = self.log_path(replica)
        return f"see {path}:\n{services.log_tail(path)}"
