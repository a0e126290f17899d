"""The /object_info cache: kept for its time, one fetch shared by concurrent callers, failures never kept."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from discomfy.bot.object_info_cache import ObjectInfoCache
from discomfy.errors import ComfyError


class Server:
    """A fetch that counts its calls and answers when released (or fails when told to)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = asyncio.Event()
        self.fail = False

    async def fetch(self, url: str) -> Mapping[str, Any]:
        self.calls.append(url)
        await self.release.wait()
        if self.fail:
            raise ComfyError(f"{url} is down")
        return {"KSampler": {"n": len(self.calls)}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_callers_share_one_fetch_per_server() -> None:
    server = Server()
    cache = ObjectInfoCache(server.fetch, 60.0, Clock())
    waiting = [asyncio.ensure_future(cache.get(url)) for url in ("http://a", "http://a", "http://b", "http://a")]
    await asyncio.sleep(0)
    server.release.set()
    answers = await asyncio.gather(*waiting)
    assert sorted(server.calls) == ["http://a", "http://b"]
    assert answers[0] is answers[1] is answers[3]


async def test_an_answer_is_kept_for_its_time_then_fetched_again() -> None:
    server, clock = Server(), Clock()
    server.release.set()
    cache = ObjectInfoCache(server.fetch, 60.0, clock)
    first = await cache.get("http://a")
    clock.now += 59.0
    assert await cache.get("http://a") is first and len(server.calls) == 1
    clock.now += 1.0
    assert await cache.get("http://a") == {"KSampler": {"n": 2}} and len(server.calls) == 2
    cache.forget()
    await cache.get("http://a")
    assert len(server.calls) == 3


async def test_a_failure_is_not_kept() -> None:
    server = Server()
    server.release.set()
    server.fail = True
    cache = ObjectInfoCache(server.fetch, 60.0, Clock())
    with pytest.raises(ComfyError, match="down"):
        await cache.get("http://a")
    server.fail = False
    assert await cache.get("http://a") == {"KSampler": {"n": 2}}


async def test_a_caller_that_gives_up_leaves_the_fetch_to_the_others() -> None:
    server = Server()
    cache = ObjectInfoCache(server.fetch, 60.0, Clock())
    quitter = asyncio.ensure_future(cache.get("http://a"))
    stayer = asyncio.ensure_future(cache.get("http://a"))
    await asyncio.sleep(0)
    quitter.cancel()
    await asyncio.sleep(0)
    server.release.set()
    assert await stayer == {"KSampler": {"n": 1}} and server.calls == ["http://a"]
    assert quitter.cancelled()
