"""A background task that does one thing every few seconds while a service runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


class Periodic:
    """Runs `action` every `interval` seconds (first after one interval when `wait_first`)
    until stopped. A failing round is logged and the next one still runs: a metrics read or
    a file check must never stop the service."""

    def __init__(
        self,
        name: str,
        interval: float,
        action: Callable[[], Awaitable[object]],
        *,
        wait_first: bool = False,
    ) -> None:
        self._name = name
        self._interval = interval
        self._action = action
        self._wait_first = wait_first
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        if self._wait_first:
            await asyncio.sleep(self._interval)
        while True:
            try:
                await self._action()
            except Exception:  # logged; the next round runs regardless
                log.warning("periodic task failed", task=self._name, exc_info=True)
            await asyncio.sleep(self._interval)
