"""Group commit: what concurrent requests write goes out together, in one Kafka produce (one
record batch per partition) or one SQL statement, instead of one round trip per request.

Callers `submit` their item and wait; while one write is in the air the next group gathers,
so under load a group holds what arrived during one round trip, and an idle service writes
at once (no timer, no added latency). Each caller is answered only once the write holding
its item succeeded, and sees that write's error otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Bounds one write (a produce request, an SQL statement): a burst is cut into several.
DEFAULT_MAX_ITEMS = 512


class GroupCommit(Generic[Item, Result]):
    """Writes the items of concurrent callers with one `write` call per group.

    `write` gets the group's items in arrival order and returns one result per item.
    """

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        if max_items < 1:
            raise ValueError("a group holds at least one item")
        self._write = write
        self._max_items = max_items
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Write `item` with whatever else is waiting; its result once written."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            # Starts on the next loop turn: requests handled in this turn join the group.
            self._writer = asyncio.create_task(self._write_groups())
        return await future

    async def _write_groups(self) -> None:
        try:
            while self._waiting:
                group = self._waiting[: self._max_items]
                del self._waiting[: self._max_items]
                await self._write_group(group)
        finally:
            self._writer = None

    async def _write_group(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._write([item for item, _ in group])
            if len(results) != len(group):
                raise RuntimeError(f"{len(results)} results for a group of {len(group)}")
        except Exception as error:
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:  # cancelled (shutdown): no caller may take its item for written
            for _, future in [*group, *self._waiting]:
                if not future.done():
                    future.cancel()
            self._waiting.clear()
            raise
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():  # its caller may have given up (timeout)
                future.set_result(result)
