"""What the emulator saw: every HTTP request and gateway frame, and a way to wait for what comes next.

Times are ``time.monotonic()`` so tests can compare them with their own clock (e.g. that a retry came after
``retry_after``). :class:`Notifier` wakes waiters whenever the emulator's state changes; waiting is always
bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FileRecord:
    """One uploaded file of a multipart request (``files[n]``)."""

    field: str
    filename: str
    content_type: str | None
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class RequestRecord:
    """One HTTP request: ``route`` is the template (``/channels/{channel_id}/messages``), ``path`` the real one.

    ``json`` is the parsed JSON body, or the parsed ``payload_json`` of a multipart body. ``fault`` names the
    injected fault that answered it, if any. ``bucket`` is the ``X-RateLimit-Bucket`` it was answered with and
    ``bucket_resource`` the top-level resource that bucket was counted for (``channel:<id>``,
    ``webhook:<application id>:<token>``, ...); a 429's ``ratelimit_scope`` says which limit refused it
    (``user``, ``global`` or ``shared``, as its ``X-RateLimit-Scope``).
    """

    index: int
    time: float
    wall_time: float
    method: str
    path: str
    route: str | None
    query: dict[str, str]
    json: Any = None
    files: tuple[FileRecord, ...] = ()
    authorized: bool = False
    status: int = 0
    response: Any = None
    fault: str | None = None
    end_time: float = 0.0
    bucket: str | None = None
    bucket_resource: str | None = None
    ratelimit_scope: str | None = None

    def matches(self, method: str | None = None, route: str | None = None) -> bool:
        """``route`` is an fnmatch pattern tried against both the template and the path."""
        if method is not None and self.method != method.upper():
            return False
        if route is None:
            return True
        return fnmatch.fnmatchcase(self.path, route) or (
            self.route is not None and fnmatch.fnmatchcase(self.route, route)
        )


@dataclass(frozen=True)
class GatewayRecord:
    """One gateway frame; ``direction`` is ``"recv"`` (from the client) or ``"send"`` (to it)."""

    time: float
    connection: int
    direction: str
    op: int
    event: str | None = None
    seq: int | None = None
    data: Any = field(default=None, compare=False)


class Notifier:
    """Wakes every waiter when something changed; waiters re-check their condition."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for[T](
        self,
        condition: Callable[[], T | None],
        timeout: float,  # noqa: ASYNC109
        description: str = "condition",
    ) -> T:
        """Returns the first truthy value of ``condition()``, re-evaluated after every change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = condition()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"Discord emulator: {description} not met within {timeout:.2f}s")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)
