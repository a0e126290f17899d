"""Each ComfyUI server's ``/object_info``, fetched once and reused for a while, one fetch shared by all who ask.

How it works: ``get(url)`` returns the answer fetched less than ``ttl`` seconds ago (by ``clock``); otherwise it
starts one fetch for that server (``fetch(url)``) and every caller that asks meanwhile awaits that same fetch.
A fetch that fails is not kept: the next call tries again. ``/object_info`` is several MB on a server with many
custom nodes and changes only when nodes or model files are installed, so ``/workflow list``, ``info`` and
``add`` read it through here instead of from every server on every call.

Never: keep a failed answer, let one caller's cancellation cancel the fetch others wait for, or run more than
one fetch per server at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

ObjectInfo = Mapping[str, Any]


class ObjectInfoCache:
    def __init__(
        self,
        fetch: Callable[[str], Awaitable[ObjectInfo]],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self._clock = clock
        self._fresh: dict[str, tuple[float, ObjectInfo]] = {}
        self._pending: dict[str, asyncio.Task[ObjectInfo]] = {}

    async def get(self, url: str) -> ObjectInfo:
        kept = self._fresh.get(url)
        if kept is not None and self._clock() - kept[0] < self.ttl:
            return kept[1]
        task = self._pending.get(url)
        if task is None:
            task = asyncio.ensure_future(self._fetch_and_keep(url))
            self._pending[url] = task
            task.add_done_callback(lambda done: self._settled(url, done))
        # shield: a caller that gives up (its interaction failed, the bot stops) leaves the fetch to the others.
        return await asyncio.shield(task)

    def forget(self, url: str | None = None) -> None:
        """Drop what is kept for ``url`` (None: every server), so the next ``get`` fetches."""
        if url is None:
            self._fresh.clear()
        else:
            self._fresh.pop(url, None)

    async def _fetch_and_keep(self, url: str) -> ObjectInfo:
        started = self._clock()
        info = await self._fetch(url)
        self._fresh[url] = (started, info)
        return info

    def _settled(self, url: str, done: asyncio.Task[ObjectInfo]) -> None:
        if self._pending.get(url) is done:
            del self._pending[url]
        if not done.cancelled():
            done.exception()  # retrieved: a failure every caller gave up on is not reported as never retrieved
