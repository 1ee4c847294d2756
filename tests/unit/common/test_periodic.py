import asyncio

from casewire_common.periodic import Periodic


async def _rounds_of(action_outcomes: list[BaseException | None], *, round_timeout: float) -> int:
    """Runs a Periodic whose rounds raise (or hang on) the given outcomes; returns how many
    rounds ran before the outcomes ran out and one more round passed."""
    rounds = 0
    done = asyncio.Event()

    async def action() -> None:
        nonlocal rounds
        rounds += 1
        if rounds > len(action_outcomes):
            done.set()
            return
        outcome = action_outcomes[rounds - 1]
        if outcome is None:
            await asyncio.sleep(3600)  # hangs
        else:
            raise outcome

    task = Periodic("test", 0.001, action, round_timeout=round_timeout)
    task.start()
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await task.stop()
    return rounds


async def test_a_failing_round_is_logged_and_the_next_one_runs() -> None:
    failures: list[BaseException | None] = [
        AssertionError("Partition is not assigned"),
        RuntimeError("boom"),
    ]
    assert await _rounds_of(failures, round_timeout=1) == 3


async def test_a_cancelled_future_inside_a_round_does_not_end_the_task() -> None:
    assert await _rounds_of([asyncio.CancelledError()], round_timeout=1) == 2


async def test_a_hanging_round_is_cut_off_and_the_next_one_runs() -> None:
    assert await _rounds_of([None], round_timeout=0.05) == 2


async def test_stop_ends_the_task_even_inside_a_hanging_round() -> None:
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = Periodic("test", 0.001, hang)
    task.start()
    await started.wait()
    await asyncio.wait_for(task.stop(), 1)
