"""Who edits next: turns handed out per Discord bucket, from what Discord's answers say, most urgent first.

Why: Discord limits requests per route and top-level resource (``ratelimits.py``). Every interaction's message
has its own bucket, but messages the bot edits with its own token share their channel's, and every bot-token
request shares the global limit. When several editors wait on one bucket, the order matters: a result or a job
whose phase changed (waiting → running) is news, a bar that moved a little is not.

How it works: an editor awaits ``Pacer.turn(key, priority)`` right before a request. Waiters are lined up per
bucket (route bucket and resource); one grant task per line asks ``BucketBook.reserve`` for the most urgent
waiter — ``priority()`` is asked at grant time, so an editor whose job finished while it waited goes ahead — and
sleeps only as long as the book says. ``Priority``: a final state, then a phase change or a first look, then
progress; among equals, first come first served. A progress waiter that has waited ``starve_after`` seconds
counts as a phase change, so no message starves however busy its bucket.

Never: grant a request the book does not allow, or leave a waiter hanging after ``close()`` (it gets
``PacerClosedError``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from discomfy.bot.ratelimits import BucketBook, RouteKey
from discomfy.errors import DiscomfyError

__all__ = ["Pacer", "PacerClosedError", "Priority"]

#: A progress edit that has waited this long is served like a phase change.
STARVE_AFTER = 3.0


class PacerClosedError(DiscomfyError):
    """The pacer was closed (the bot is stopping): no more turns; an editor waiting for one stops."""


class Priority(IntEnum):
    FINAL = 0
    PHASE = 1
    PROGRESS = 2


@dataclass
class _Waiter:
    seq: int
    key: RouteKey
    since: float
    priority: Callable[[], int] = field(compare=False)
    granted: asyncio.Future[None] = field(compare=False)


class Pacer:
    def __init__(
        self,
        book: BucketBook,
        *,
        clock: Callable[[], float] = time.monotonic,
        starve_after: float = STARVE_AFTER,
    ) -> None:
        self.book = book
        self._clock = clock
        self._starve_after = starve_after
        self._lines: dict[tuple[str, str], list[_Waiter]] = {}
        self._grants: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._seq = itertools.count()
        self._closed = False

    async def turn(self, key: RouteKey, priority: Callable[[], int]) -> None:
        """Returns when a request on ``key`` may be sent (its slot taken); ``PacerClosedError`` after close."""
        if self._closed:
            raise PacerClosedError("the pacer is closed")
        line_id = (key.route, key.resource)
        waiter = _Waiter(next(self._seq), key, self._clock(), priority, asyncio.get_running_loop().create_future())
        self._lines.setdefault(line_id, []).append(waiter)
        grants = self._grants.get(line_id)
        if grants is None or grants.done():
            self._grants[line_id] = asyncio.create_task(self._grant(line_id), name="edit-pacer")
        try:
            await waiter.granted
        except BaseException:
            granted = waiter.granted
            if not granted.done():
                granted.cancel()  # our caller was cancelled: leave the line
            elif not granted.cancelled() and granted.exception() is None:
                self.book.release(key)  # granted, but the caller went away before using it
            raise

    def waiting(self, key: RouteKey) -> int:
        return sum(1 for w in self._lines.get((key.route, key.resource), ()) if not w.granted.done())

    def _rank(self, waiter: _Waiter, now: float) -> tuple[int, int]:
        priority = waiter.priority()
        if priority > Priority.PHASE and now - waiter.since >= self._starve_after:
            priority = Priority.PHASE
        return priority, waiter.seq

    async def _grant(self, line_id: tuple[str, str]) -> None:
        line = self._lines[line_id]
        try:
            while True:
                line[:] = [w for w in line if not w.granted.done()]
                if not line:
                    return
                now = self._clock()
                # Only now, with the bucket about to be asked, is the line looked at: the most urgent goes.
                chosen = min(line, key=lambda w: self._rank(w, now))
                wait = self.book.reserve(chosen.key, now)
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                line.remove(chosen)
                chosen.granted.set_result(None)
        finally:
            if not line:
                self._lines.pop(line_id, None)

    async def close(self) -> None:
        self._closed = True
        for line in self._lines.values():
            for waiter in line:
                if not waiter.granted.done():
                    waiter.granted.set_exception(PacerClosedError("the pacer is closed"))
        tasks = list(self._grants.values())
        self._grants.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lines.clear()
