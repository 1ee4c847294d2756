"""Stopping and watching service processes: graceful first, killed if need be, failures
reported with their log."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from casewire_dev import services

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def python_process(code: str, log_path: Path, name: str = "fake") -> services.RunningService:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return services.RunningService(services.ServiceSpec(name, 1), process, log_path)


async def wait_for_line(path: Path, text: str) -> None:
    async with asyncio.timeout(10):
        while text not in await asyncio.to_thread(path.read_text):
            await asyncio.sleep(0.02)


async def test_a_process_that_stops_on_sigterm_is_not_killed(tmp_path: Path) -> None:
    service = python_process("import time; time.sleep(60)", tmp_path / "calm.log")
    assert await services.stop_all([service], timeout=5) == []
    assert service.exited_cleanly


async def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    service = python_process(IGNORES_SIGTERM, tmp_path / "stubborn.log", "stubborn")
    await wait_for_line(service.log_path, "ready")
    assert await services.stop_all([service], timeout=0.3) == ["stubborn"]
    assert service.process.returncode == -9
    assert not service.exited_cleanly


async def test_waiting_for_a_service_that_died_reports_its_log(tmp_path: Path) -> None:
    service = python_process("print('no database'); raise SystemExit(3)", tmp_path / "dead.log")
    service.process.wait()
    with pytest.raises(services.ServiceError) as error:
        await services.wait_ready(service, asyncio.Event(), timeout=5)
    message = str(error.value)
    assert "exited with code 3" in message
    assert str(service.log_path) in message
    assert "no database" in message


async def test_waiting_stops_when_the_demo_is_stopped(tmp_path: Path) -> None:
    service = python_process("import time; time.sleep(60)", tmp_path / "slow.log")
    stop = asyncio.Event()
    stop.set()
    try:
        assert await services.wait_ready(service, stop) is False
    finally:
        await services.stop_all([service])


def test_a_missing_console_script_points_at_setup() -> None:
    with pytest.raises(services.ServiceError, match="make setup"):
        services.console_script("casewire-no-such-service")
