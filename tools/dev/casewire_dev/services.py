"""The three Casewire services as local processes: migrate, start, wait until ready, stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
LOG_TAIL_LINES = 15


class ServiceError(RuntimeError):
    """A service or a migration failed; the message says where to look."""


def console_script(name: str) -> Path:
    """A console script of this environment (`.venv/bin/<name>` for `make run`)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise ServiceError(f"{name} not found next to {sys.executable}: run `make setup`")
    return path


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def migrate(service: str, env: Mapping[str, str], log_dir: Path) -> None:
    """`casewire-<service> migrate`, its output in `<log_dir>/<service>-migrate.log`."""
    log_path = log_dir / f"{service}-migrate.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            console_script(f"casewire-{service}"),
            "migrate",
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches it through us, after it has finished
        )
        code = await process.wait()
    if code != 0:
        raise ServiceError(
            f"casewire-{service} migrate failed (exit {code}); see {log_path}:\n"
            f"{log_tail(log_path)}"
        )


@dataclass(frozen=True)
class ServiceSpec:
    """One service to run: its name, HTTP port and its own settings."""

    name: str
    port: int
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RunningService:
    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def exited_cleanly(self) -> bool:
        """Exit code 0, or death by the SIGTERM it was sent: uvicorn re-raises the signal once
        its graceful shutdown is complete, so -SIGTERM is how a clean stop looks."""
        return self.process.returncode in (0, -signal.SIGTERM)

    def describe_exit(self) -> str:
        return (
            f"{self.spec.name} exited with code {self.process.returncode}; "
            f"see {self.log_path}:\n{log_tail(self.log_path)}"
        )


def serve_process(
    service: str, port: int, env: Mapping[str, str], log_path: Path, *, append: bool = False
) -> subprocess.Popen[bytes]:
    """`casewire-<service> serve` on 127.0.0.1:`port`, in its own session (so a terminal
    Ctrl-C does not reach it before what feeds it has stopped), its JSON logs in `log_path`
    (with `append`, after the earlier ones: a restarted replica keeps its log)."""
    with log_path.open("ab" if append else "wb") as log:
        return subprocess.Popen(
            [str(console_script(f"casewire-{service}")), "serve"],
            env={**env, "CASEWIRE_HTTP_HOST": "127.0.0.1", "CASEWIRE_HTTP_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start(spec: ServiceSpec, env: Mapping[str, str], log_dir: Path) -> RunningService:
    """`casewire-<name> serve` (`serve_process`), its logs in `<log_dir>/<name>.log`."""
    log_path = log_dir / f"{spec.name}.log"
    process = serve_process(spec.name, spec.port, {**env, **spec.settings}, log_path)
    return RunningService(spec, process, log_path)


async def poll_ready(
    url: str,
    *,
    exited: Callable[[], str | None],
    late: Callable[[], str],
    timeout: float,
    interval: float,
    stop: asyncio.Event | None = None,
) -> bool:
    """Poll `url` (a `/readyz`) until it answers 200: True; False if `stop` is set first.
    ServiceError, saying `exited()`, as soon as that is not None (the process ended), or
    saying `late()` after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        while stop is None or not stop.is_set():
            failure = exited()
            if failure is not None:
                raise ServiceError(failure)
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return True
            if loop.time() > deadline:
                raise ServiceError(late())
            await asyncio.sleep(interval)
    return False


async def wait_ready(
    service: RunningService, stop: asyncio.Event, timeout: float = READY_TIMEOUT_SECONDS
) -> bool:
    """Poll `/readyz` until it answers 200; False if `stop` was set first."""
    url = f"http://127.0.0.1:{service.spec.port}/readyz"
    return await poll_ready(
        url,
        exited=lambda: service.describe_exit() if service.process.poll() is not None else None,
        late=lambda: (
            f"{service.spec.name} not ready on {url} within {timeout:.0f}s; "
            f"see {service.log_path}:\n{log_tail(service.log_path)}"
        ),
        timeout=timeout,
        interval=0.3,
        stop=stop,
    )


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


async def stop_all(
    services: Sequence[RunningService], timeout: float = STOP_TIMEOUT_SECONDS
) -> list[str]:
    """SIGTERM every service, SIGKILL those still running after `timeout`; returns the names of
    the services that had to be killed."""
    running = [service for service in services if service.process.poll() is None]
    for service in running:
        _signal_group(service.process, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and any(s.process.poll() is None for s in running):
        await asyncio.sleep(0.1)
    killed = [service for service in running if service.process.poll() is None]
    for service in killed:
        _signal_group(service.process, signal.SIGKILL)
        await asyncio.to_thread(service.process.wait)
    return [service.spec.name for service in killed]
