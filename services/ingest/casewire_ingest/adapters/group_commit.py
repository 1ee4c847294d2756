"""Group commit: what concurrent requests write goes out together, in one Kafka produce (one
record batch per partition) or one SQL statement, instead of one round trip per request.

Callers `submit` their item and wait; while the allowed writes are in the air the next group
gathers, so under load a group holds what arrived during a round trip, and an idle service
writes at once (no timer, no added latency). Each caller is answered only once the write holding
its item succeeded, and sees that write's error otherwise. Writes nobody waits for may linger,
so that more items share them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar, cast

Item = TypeVar("Item")
Result = TypeVar("Result")

# Bounds one write (a produce request, an SQL statement): a burst is cut into several.
DEFAULT_MAX_ITEMS = 512
# Writes in the air at once. With one, every request waits for the write before its own; a
# second lets the work of some overlap the I/O of others. Where each write is costly (a Kafka
# produce request), one in the air and larger groups do better: the publisher measured it.
DEFAULT_MAX_WRITES = 2


class GroupCommit(Generic[Item, Result]):
    """Writes the items of concurrent callers with one `write` call per group.

    `write` gets the group's items in arrival order and returns one result per item.
    """

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_writes: int = DEFAULT_MAX_WRITES,
        linger_seconds: float = 0.0,
    ) -> None:
        if max_items < 1:
            raise ValueError("a group holds at least one item")
        if max_writes < 1:
            raise ValueError("at least one write must be allowed at a time")
        self._write = write
        self._linger_seconds = linger_seconds
        self._max_items = max_items
        self._max_writes = max_writes
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._starting = False  # a writer was started and has not taken its group yet

    def enqueue(self, item: Item) -> asyncio.Future[Result]:
        """Queue `item` for the next group; the future holds its result once written (no task
        needed to wait for it next to other work)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if not self._starting and len(self._writers) < self._max_writes:
            # Starts on the next loop turn: requests handled in this turn join its group.
            self._starting = True
            self._writers.add(asyncio.create_task(self._write_groups()))
        return future

    async def submit(self, item: Item) -> Result:
        """Write `item` with whatever else is waiting; its result once written."""
        return await self.enqueue(item)

    async def drain(self) -> None:
        """Return once every item queued so far was written (or failed): before shutdown."""
        while self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)

    async def _write_groups(self) -> None:
        self._starting = False
        try:
            if self._linger_seconds:
                await asyncio.sleep(self._linger_seconds)  # items queued meanwhile join
            while self._waiting:
                group = self._waiting[: self._max_items]
                del self._waiting[: self._max_items]
                await self._write_group(group)
        finally:
            # At once, not in a done callback: an item queued before that callback ran
            # would find every writer slot taken and wait for the next caller.
            self._writers.discard(cast("asyncio.Task[None]", asyncio.current_task()))

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
