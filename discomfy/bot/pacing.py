"""One edit budget per channel, shared by the editors of all the messages in it: results first.

Why: Discord counts message edits per channel (about five per five seconds), not per message. One editor per
message keeps itself to one edit per 1.5 s, but twenty jobs in one channel are twenty editors: without a shared
budget their requests pile up inside nextcord's bucket lock, each holding the state it picked before waiting
(a "waiting, #12 in line" sent after the job is done) in no useful order, and the results come last.

How it works: an editor awaits ``ChannelPacer.turn(channel_id, priority)`` before each request, then picks its
latest state (so a long wait costs nothing but the states it coalesced away). Per channel, one grant task hands
out turns within a sliding window (``limit`` requests in any ``period`` seconds, ``RateLimiter`` from
``limits.py``), to the waiter with the lowest ``priority()`` — asked at grant time, so an editor whose job
finished while it waited goes ahead — first come first served among equals. ``Priority``: a final state
(a result, a failure) before the first look of a message (still "thinking…"), before progress.

Never: hand out more than ``limit`` turns in any ``period`` per channel, or leave a waiter hanging after
``close()`` (it gets ``PacerClosedError``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from discomfy.errors import DiscomfyError
from discomfy.jobs.admission import RateLimiter

__all__ = ["ChannelPacer", "PacerClosedError", "Priority"]

#: Discord's edit bucket is five per five seconds per channel; the margin absorbs our requests' travel time.
EDIT_LIMIT = 5
EDIT_PERIOD = 5.25


class PacerClosedError(DiscomfyError):
    """The pacer was closed (the bot is stopping): no more turns; an editor waiting for one stops."""


class Priority(IntEnum):
    FINAL = 0
    FIRST = 1
    PROGRESS = 2


@dataclass(order=True)
class _Waiter:
    seq: int
    priority: Callable[[], int] = field(compare=False)
    granted: asyncio.Future[None] = field(compare=False)


class ChannelPacer:
    def __init__(
        self,
        *,
        limit: int = EDIT_LIMIT,
        period: float = EDIT_PERIOD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = RateLimiter(limit, period)
        self._clock = clock
        self._waiters: dict[int, list[_Waiter]] = {}
        self._grants: dict[int, asyncio.Task[None]] = {}
        self._seq = itertools.count()
        self._closed = False

    async def turn(self, channel_id: int, priority: Callable[[], int]) -> None:
        """Returns when this channel's budget allows one more request (``PacerClosedError`` after close)."""
        if self._closed:
            raise PacerClosedError("the channel pacer is closed")
        waiter = _Waiter(next(self._seq), priority, asyncio.get_running_loop().create_future())
        self._waiters.setdefault(channel_id, []).append(waiter)
        grants = self._grants.get(channel_id)
        if grants is None or grants.done():
            self._grants[channel_id] = asyncio.create_task(self._grant(channel_id), name=f"edit-pacer-{channel_id}")
        try:
            await waiter.granted
        finally:
            if not waiter.granted.done():
                waiter.granted.cancel()  # our caller was cancelled: leave the line

    def waiting(self, channel_id: int) -> int:
        return sum(1 for w in self._waiters.get(channel_id, ()) if not w.granted.done())

    async def _grant(self, channel_id: int) -> None:
        line = self._waiters[channel_id]
        try:
            while True:
                line[:] = [w for w in line if not w.granted.done()]
                if not line:
                    return
                retry_at = self._window.hit(channel_id, self._clock())
                if retry_at is not None:
                    await asyncio.sleep(max(retry_at - self._clock(), 0.0))
                    continue
                # Only now, with a turn in hand, is the line looked at: whoever is most urgent *now* goes.
                chosen = min(line, key=lambda w: (w.priority(), w.seq))
                line.remove(chosen)
                chosen.granted.set_result(None)
        finally:
            if not line:
                self._waiters.pop(channel_id, None)

    async def close(self) -> None:
        self._closed = True
        for line in self._waiters.values():
            for waiter in line:
                if not waiter.granted.done():
                    waiter.granted.set_exception(PacerClosedError("the channel pacer is closed"))
        tasks = list(self._grants.values())
        self._grants.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._waiters.clear()
