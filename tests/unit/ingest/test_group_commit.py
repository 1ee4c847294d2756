"""Group commit: concurrent callers share one write, each gets its own result or the write's
error, and nobody is answered before the write holding their item is done."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from casewire_ingest.adapters.group_commit import GroupCommit


class SlowDoubler:
    """A write that takes a while (like a round trip) and records each group it was given."""

    def __init__(self, fail_first: int = 0) -> None:
        self.groups: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_first = fail_first

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        await self.release.wait()
        if len(self.groups) <= self.fail_first:
            raise ConnectionError("broker down")
        return [item * 2 for item in items]


async def test_concurrent_callers_share_one_write_and_get_their_own_results() -> None:
    write = SlowDoubler()
    write.release.set()
    group = GroupCommit(write)
    results = await asyncio.gather(*(group.submit(n) for n in range(5)))
    assert results == [0, 2, 4, 6, 8]
    assert write.groups == [[0, 1, 2, 3, 4]]


async def test_items_arriving_during_a_write_go_together_in_the_next_one() -> None:
    write = SlowDoubler()
    group = GroupCommit(write, max_writes=1)
    first = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0)  # the first write is now in the air
    later = [asyncio.ensure_future(group.submit(n)) for n in (2, 3)]
    await asyncio.sleep(0)
    assert write.groups == [[1]]
    assert not first.done()  # nobody is answered before its write is done
    write.release.set()
    assert await first == 2
    assert await asyncio.gather(*later) == [4, 6]
    assert write.groups == [[1], [2, 3]]


async def test_a_second_write_may_leave_while_one_is_in_the_air_but_no_third() -> None:
    write = SlowDoubler()
    group = GroupCommit(write, max_writes=2)
    callers = []
    for n in range(4):
        callers.append(asyncio.ensure_future(group.submit(n)))
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert write.groups == [[0], [1]]  # 2 and 3 wait for a free write
    write.release.set()
    assert await asyncio.gather(*callers) == [0, 2, 4, 6]
    assert write.groups == [[0], [1], [2, 3]]


async def test_an_item_queued_just_after_the_last_write_is_still_written() -> None:
    write = SlowDoubler()
    write.release.set()
    group = GroupCommit(write, max_writes=1)
    assert await group.submit(1) == 2
    # The writer has just finished: a lone caller must get a writer of its own.
    assert await asyncio.wait_for(group.submit(2), timeout=1) == 4


async def test_a_failed_write_fails_every_caller_of_its_group_and_only_them() -> None:
    write = SlowDoubler(fail_first=1)
    group = GroupCommit(write)
    failing = [asyncio.ensure_future(group.submit(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    succeeding = asyncio.ensure_future(group.submit(3))
    write.release.set()
    for caller in failing:
        with pytest.raises(ConnectionError):
            await caller
    assert await succeeding == 6


async def test_a_caller_that_gave_up_does_not_stop_the_others_of_its_group() -> None:
    write = SlowDoubler()
    group = GroupCommit(write)
    impatient = asyncio.ensure_future(asyncio.wait_for(group.submit(1), timeout=0.01))
    patient = asyncio.ensure_future(group.submit(2))
    with pytest.raises(TimeoutError):
        await impatient
    write.release.set()
    assert await patient == 4
    assert sorted(item for items in write.groups for item in items) == [1, 2]


async def test_a_burst_is_cut_into_groups_of_at_most_max_items() -> None:
    write = SlowDoubler()
    write.release.set()
    group = GroupCommit(write, max_items=2)
    assert await asyncio.gather(*(group.submit(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert write.groups == [[0, 1], [2, 3], [4]]


async def test_a_write_returning_the_wrong_number_of_results_fails_its_callers() -> None:
    async def short(items: Sequence[int]) -> list[int]:
        return list(items)[:-1]

    group = GroupCommit(short)
    with pytest.raises(RuntimeError, match="2 results for a group of 3"):
        await asyncio.gather(*(group.submit(n) for n in range(3)))


def test_a_group_holds_at_least_one_item() -> None:
    async def write(items: Sequence[int]) -> list[int]:
        return list(items)

    with pytest.raises(ValueError, match="at least one item"):
        GroupCommit(write, max_items=0)


async def test_a_lingering_write_gathers_what_comes_meanwhile() -> None:
    write = SlowDoubler()
    write.release.set()
    group = GroupCommit(write, max_writes=1, linger_seconds=0.05)
    first = group.enqueue(1)
    await asyncio.sleep(0.01)  # well inside the linger: no write yet
    assert write.groups == []
    second = group.enqueue(2)
    assert list(await asyncio.gather(first, second)) == [2, 4]
    assert write.groups == [[1, 2]]


async def test_drain_returns_once_everything_queued_is_written_or_failed() -> None:
    write = SlowDoubler(fail_first=1)
    group = GroupCommit(write, max_writes=1, linger_seconds=0.01)
    failed = group.enqueue(1)
    await asyncio.sleep(0.02)  # the first write is in the air
    written = group.enqueue(2)
    draining = asyncio.ensure_future(group.drain())
    await asyncio.sleep(0.05)
    assert not draining.done()  # the write in the air holds it
    write.release.set()
    await asyncio.wait_for(draining, 1)
    assert isinstance(failed.exception(), ConnectionError)
    assert written.result() == 4
    assert write.groups == [[1], [2]]
