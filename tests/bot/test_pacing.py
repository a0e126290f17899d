"""The pacer: turns per Discord bucket as the bucket book allows them, the most urgent waiter first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from discomfy.bot.pacing import Pacer, PacerClosedError, Priority
from discomfy.bot.ratelimits import Answer, BucketBook, RouteKey

pytestmark = pytest.mark.timeout(10)

EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
HOOK = "PATCH /webhooks/{application_id}/{token}/messages/@original"


def fixed(priority: int) -> Callable[[], int]:
    return lambda: priority


class Discord:
    """Discord's side of one bucket, as its docs describe it: a window of ``limit`` requests that opens with the
    first request and resets ``period`` seconds later; every answer says so in its headers."""

    def __init__(self, book: BucketBook, key: RouteKey, limit: int, period: float) -> None:
        self.book, self.key, self.limit, self.period = book, key, limit, period
        self.reset_at = 0.0
        self.count = 0

    def answer(self) -> None:
        """One request arrives and is answered (the book hears it)."""
        now = time.monotonic()
        if now >= self.reset_at:
            self.reset_at, self.count = now + self.period, 0
        self.count += 1
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - self.count)),
            "X-RateLimit-Reset-After": f"{self.reset_at - now:.4f}",
            "X-RateLimit-Bucket": "b",
        }
        self.book.learn(self.key, Answer(200, headers), now)


def primed(key: RouteKey, limit: int, period: float) -> tuple[BucketBook, Discord]:
    """A book that has heard one answer for ``key`` (the window it opened has closed again)."""
    book = BucketBook()
    discord = Discord(book, key, limit, period)
    book.reserve(key, time.monotonic())
    discord.answer()
    discord.reset_at = 0.0
    book.bucket(key).remaining, book.bucket(key).reset_at = limit, None
    return book, discord


async def test_no_more_than_the_bucket_allows_is_granted_per_window() -> None:
    key = RouteKey.channel(EDIT, 1)
    book, discord = primed(key, 2, 0.1)
    pacer = Pacer(book)
    granted: list[float] = []

    async def edit() -> None:
        await pacer.turn(key, fixed(Priority.PROGRESS))
        granted.append(time.monotonic())
        discord.answer()

    await asyncio.gather(*(edit() for _ in range(6)))
    await pacer.close()
    granted.sort()
    # Each window lets two through; the third waits for the reset (10 ms slack for resuming).
    assert all(later - earlier >= 0.09 for earlier, later in zip(granted, granted[2:], strict=False))


async def test_a_final_state_then_a_phase_change_go_before_progress_that_waited_longer() -> None:
    key = RouteKey.channel(EDIT, 1)
    book, discord = primed(key, 1, 0.1)
    book.reserve(key, time.monotonic())  # the window's one request is taken: everyone below waits
    discord.answer()
    pacer = Pacer(book)
    order: list[str] = []

    async def edit(name: str, priority: Priority) -> None:
        await pacer.turn(key, fixed(priority))
        order.append(name)
        discord.answer()

    waiters = [asyncio.create_task(edit("progress", Priority.PROGRESS))]
    await asyncio.sleep(0.01)
    waiters.append(asyncio.create_task(edit("phase", Priority.PHASE)))
    waiters.append(asyncio.create_task(edit("final", Priority.FINAL)))
    await asyncio.gather(*waiters)
    await pacer.close()
    assert order == ["final", "phase", "progress"]


async def test_progress_that_waited_too_long_is_served_like_a_phase_change() -> None:
    key = RouteKey.channel(EDIT, 1)
    book, discord = primed(key, 1, 0.05)
    pacer = Pacer(book, starve_after=0.12)
    order: list[str] = []
    stop = asyncio.Event()

    async def edit(name: str, priority: Priority) -> None:
        await pacer.turn(key, fixed(priority))
        order.append(name)
        discord.answer()

    async def busy() -> None:  # a stream of phase changes that would otherwise always win
        while not stop.is_set():
            await edit("phase", Priority.PHASE)

    streams = [asyncio.create_task(busy()) for _ in range(3)]
    starving = asyncio.create_task(edit("progress", Priority.PROGRESS))
    await asyncio.wait_for(starving, 2.0)
    stop.set()
    for stream in streams:
        stream.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    await pacer.close()
    assert "progress" in order


async def test_separate_interaction_messages_do_not_wait_for_each_other() -> None:
    a, b = RouteKey.webhook(HOOK, 9, "token-a"), RouteKey.webhook(HOOK, 9, "token-b")
    book, discord = primed(a, 1, 5.0)
    book.reserve(a, time.monotonic())  # a's bucket is spent for five seconds
    discord.answer()
    pacer = Pacer(book)
    blocked = asyncio.create_task(pacer.turn(a, fixed(Priority.PROGRESS)))
    await asyncio.wait_for(pacer.turn(b, fixed(Priority.PROGRESS)), 1.0)
    assert not blocked.done()
    await pacer.close()
    with pytest.raises(PacerClosedError):
        await blocked


async def test_a_waiter_that_gives_up_leaves_the_line_and_a_granted_slot_not_used_is_returned() -> None:
    key = RouteKey.channel(EDIT, 1)
    book, _ = primed(key, 1, 0.2)
    pacer = Pacer(book)
    await pacer.turn(key, fixed(Priority.PROGRESS))
    leaving = asyncio.create_task(pacer.turn(key, fixed(Priority.PROGRESS)))
    await asyncio.sleep(0.01)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert pacer.waiting(key) == 0
    book.release(key)  # the first turn was not used either
    await asyncio.wait_for(pacer.turn(key, fixed(Priority.PROGRESS)), 0.1)
    await pacer.close()


async def test_close_tells_whoever_is_still_waiting_and_later_callers() -> None:
    key = RouteKey.channel(EDIT, 1)
    pacer = Pacer(primed(key, 1, 30.0)[0])
    await pacer.turn(key, fixed(Priority.PROGRESS))
    waiting = asyncio.create_task(pacer.turn(key, fixed(Priority.FINAL)))
    await asyncio.sleep(0)
    await pacer.close()
    with pytest.raises(PacerClosedError):
        await waiting
    with pytest.raises(PacerClosedError):
        await pacer.turn(key, fixed(Priority.FINAL))
