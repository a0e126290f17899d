"""The channel pacer: a shared edit budget per channel, the most urgent waiter first."""

from __future__ import annotations

import asyncio
import time

import pytest

from discomfy.bot.pacing import ChannelPacer, PacerClosedError, Priority

pytestmark = pytest.mark.timeout(10)


def fixed(priority: int):  # type: ignore[no-untyped-def]
    return lambda: priority


async def test_no_more_than_the_limit_is_granted_in_any_period() -> None:
    pacer = ChannelPacer(limit=2, period=0.1)
    granted: list[float] = []

    async def edit() -> None:
        await pacer.turn(1, fixed(Priority.PROGRESS))
        granted.append(time.monotonic())

    await asyncio.gather(*(edit() for _ in range(7)))
    await pacer.close()

    granted.sort()
    # Times are taken when each waiter resumes, a hair after its grant: 10 ms of slack for that, no more.
    assert all(later - earlier >= 0.09 for earlier, later in zip(granted, granted[2:], strict=False))


async def test_a_final_state_goes_before_progress_that_waited_longer() -> None:
    pacer = ChannelPacer(limit=1, period=0.1)
    order: list[str] = []

    async def edit(name: str, priority: Priority) -> None:
        await pacer.turn(1, fixed(priority))
        order.append(name)

    await pacer.turn(1, fixed(Priority.PROGRESS))  # uses up the budget: the rest must wait in line
    tasks = [asyncio.create_task(edit(f"progress {n}", Priority.PROGRESS)) for n in range(3)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(edit("first look", Priority.FIRST)))
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(edit("final", Priority.FINAL)))
    await asyncio.gather(*tasks)
    await pacer.close()

    assert order == ["final", "first look", "progress 0", "progress 1", "progress 2"]


async def test_priority_is_asked_when_the_turn_comes_up() -> None:
    pacer = ChannelPacer(limit=1, period=0.1)
    order: list[str] = []
    finished = {"late": False}

    async def edit(name: str) -> None:
        await pacer.turn(1, lambda: Priority.FINAL if finished[name] else Priority.PROGRESS)
        order.append(name)

    finished["early"] = False
    await pacer.turn(1, fixed(Priority.PROGRESS))
    tasks = [asyncio.create_task(edit("early")), asyncio.create_task(edit("late"))]
    await asyncio.sleep(0)
    finished["late"] = True  # its job ended while it waited at progress priority
    await asyncio.gather(*tasks)
    await pacer.close()

    assert order == ["late", "early"]


async def test_channels_have_their_own_budgets() -> None:
    pacer = ChannelPacer(limit=1, period=30.0)
    await pacer.turn(1, fixed(Priority.PROGRESS))

    await asyncio.wait_for(pacer.turn(2, fixed(Priority.PROGRESS)), 1.0)

    assert pacer.waiting(1) == 0
    await pacer.close()


async def test_a_cancelled_waiter_leaves_the_line_without_using_a_turn() -> None:
    pacer = ChannelPacer(limit=1, period=0.2)
    await pacer.turn(1, fixed(Priority.PROGRESS))
    gone = asyncio.create_task(pacer.turn(1, fixed(Priority.FINAL)))
    await asyncio.sleep(0)
    stays = asyncio.create_task(pacer.turn(1, fixed(Priority.PROGRESS)))
    await asyncio.sleep(0)

    gone.cancel()
    await asyncio.wait_for(stays, 1.0)

    assert gone.cancelled() and pacer.waiting(1) == 0
    await pacer.close()


async def test_close_tells_whoever_is_still_waiting_and_later_callers() -> None:
    pacer = ChannelPacer(limit=1, period=30.0)
    await pacer.turn(1, fixed(Priority.PROGRESS))
    waiting = asyncio.create_task(pacer.turn(1, fixed(Priority.FINAL)))
    await asyncio.sleep(0)

    await pacer.close()

    with pytest.raises(PacerClosedError):
        await waiting
    with pytest.raises(PacerClosedError):
        await pacer.turn(1, fixed(Priority.FINAL))
