"""Background tasks a service starts with itself and cancels when it stops, and the periodic
one that does one thing every few seconds while the service runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class BackgroundTask:
    """Runs the coroutine `run` makes as one named task from `start` until `stop` cancels it
    and waits for it to end. Stopping one never started (or already stopped) does nothing."""

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Periodic:
    """Runs `action` every `interval` seconds (first after one interval when `wait_first`)
    until stopped. A failing round is logged and the next one still runs: a metrics read or
    a file check must never stop the service, nor stop for good itself. With `round_timeout`,
    a round still running after that long is cancelled (logged), for actions that can hang on
    a peer that stopped answering (aiokafka retries some requests without end)."""

    def __init__(
        self,
        name: str,
        interval: float,
        action: Callable[[], Awaitable[object]],
        *,
        wait_first: bool = False,
        round_timeout: float | None = None,
    ) -> None:
        self._name = name
        self._interval = interval
        self._action = action
        self._wait_first = wait_first
        self._round_timeout = round_timeout
        self._task = BackgroundTask(name, self._run)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        if self._wait_first:
            await asyncio.sleep(self._interval)
        while True:
            await self._one_round()
            await asyncio.sleep(self._interval)

    async def _one_round(self) -> None:
        try:
            async with asyncio.timeout(self._round_timeout):
                await self._action()
        except TimeoutError:
            log.warning("periodic task timed out", task=self._name, timeout=self._round_timeout)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # `stop`
            # A library cancelled one of its own futures under us (a consumer's assignment
            # during a rebalance): that ends this round, not the task.
            log.warning("periodic task round cancelled", task=self._name, exc_info=True)
        except Exception:  # logged; the next round runs regardless
            log.warning("periodic task failed", task=self._name, exc_info=True)
