"""Several ComfyUI servers sharing the load.

How it works: each server has a ``ServerState`` refreshed by a health check (``/system_stats`` for life and
version, ``/queue`` for its load, ``/object_info`` once per (re)connection for the model files it has). A job
asks the pool for a server with ``acquire(needed_models)``; ``pick_server`` (pure) chooses the least-loaded
healthy server that has every model the workflow needs and a free in-flight slot. When none is free, the
caller waits in FIFO order; a release or a health change wakes the waiters. The health loop asks every
``health_interval`` seconds, every ``down_interval`` while a server is down (a job finding a server down wakes
it), and outlives any error of its own: an unexpected one is logged with its traceback once per kind, and the
server it came from counts as down until a check passes again.

Never: hand out more than ``capacity`` slots of one server, or a server whose last health check failed; let
the health loop end before ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import aiohttp

from discomfy.comfy.http import DEFAULT_MAX_DOWNLOAD, ComfyHTTP
from discomfy.errors import ComfyError, ComfyUnavailableError
from discomfy.outcome import Failure
from discomfy.workflows import models_on_server

log = logging.getLogger(__name__)


@dataclass
class ServerState:
    url: str
    healthy: bool = False
    version: str = ""
    #: Jobs we have on it now (submitted or about to be).
    in_flight: int = 0
    #: ComfyUI's own queue (running + pending, everyone's), from the last health check.
    queue_size: int = 0
    models: frozenset[str] = frozenset()
    last_error: str = ""
    failures: int = 0

    @property
    def load(self) -> int:
        return self.queue_size + self.in_flight


def pick_server(servers: Sequence[ServerState], needed_models: Iterable[str], capacity: int) -> ServerState | None:
    """The least-loaded healthy server with a free slot and every needed model; ties go to the first listed."""
    needed = frozenset(needed_models)
    candidates = [s for s in servers if s.healthy and s.in_flight < capacity and needed <= s.models]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (s.load, servers.index(s)))


@dataclass
class Lease:
    """One in-flight slot on one server; give it back with ``release()`` (idempotent)."""

    pool: ServerPool
    server: ServerState
    http: ComfyHTTP
    _released: bool = field(default=False, repr=False)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.server.in_flight -= 1
            self.pool._wake()


class NoServerError(ComfyUnavailableError):
    """No server can take the job. With ``missing`` (see ``missing_models``): servers are up and none has those
    model files — waiting will not help, an admin must install them (or fix the configuration), and the words
    and the detail say so and name them."""

    user_message = "No image server that can run this workflow is available right now. Please try again later."

    def __init__(self, message: str, *, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)
        if self.missing:
            names = ", ".join(self.missing)
            self.user_message = f"No image server has the model file(s) this workflow needs ({names}); ask an admin."
            self.shown_detail = f"not installed on any image server: {names}; ask an admin"
            self.failure = Failure.MISSING_MODEL


def missing_models(servers: Sequence[ServerState], needed_models: Iterable[str]) -> tuple[str, ...]:
    """The needed models the best healthy server lacks (fewest missing; () when one has them all or none is
    healthy: then nothing is known to be missing)."""
    needed = frozenset(needed_models)
    gaps: list[tuple[str, ...]] = [tuple(sorted(needed - s.models)) for s in servers if s.healthy]
    return min(gaps, key=len) if gaps else ()


class ServerPool:
    def __init__(
        self,
        urls: Sequence[str],
        session: aiohttp.ClientSession,
        *,
        capacity: int = 2,
        timeout: float = 30.0,
        health_interval: float = 15.0,
        down_interval: float = 2.0,
        max_download: int = DEFAULT_MAX_DOWNLOAD,
    ) -> None:
        self.servers = [ServerState(url) for url in urls]
        self.capacity = capacity
        self.health_interval = health_interval
        #: While a server is down it is asked this often, so jobs waiting for it start soon after it is back.
        self.down_interval = down_interval
        self._http = {
            s.url: ComfyHTTP(s.url, session, timeout=timeout, max_download=max_download) for s in self.servers
        }
        #: Set (and replaced) whenever a slot frees up or health changes; waiters then look again.
        self._changed = asyncio.Event()
        self._health_task: asyncio.Task[None] | None = None
        #: Set when a job found a server down: the health loop stops waiting and starts asking it often.
        self._marked_down = asyncio.Event()
        #: Where → kinds of unexpected errors already logged there with a traceback (not again until it works).
        self._unexpected: dict[str, set[str]] = {}

    def http(self, url: str) -> ComfyHTTP:
        return self._http[url]

    async def start(self) -> None:
        await self.check_all()
        self._health_task = asyncio.create_task(self._health_loop(), name="comfy-health")
        self._health_task.add_done_callback(_health_loop_ended)

    async def close(self) -> None:
        if self._health_task is not None:
            task, self._health_task = self._health_task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(server) for server in self.servers))
        self._wake()

    async def acquire(
        self, needed_models: Iterable[str] = (), *, wait: float | None = None, wait_for_health: float = 0.0
    ) -> Lease:
        """A slot on the best server; waits (up to ``wait`` seconds, None = forever) while all are busy.

        Raises ``NoServerError`` when no healthy server has the models at all — at once, or after waiting up to
        ``wait_for_health`` seconds for one to come (back) up: with ``missing`` set (an admin must act, the
        message names the files) when servers are up and lack them, plain ``NoServerError`` when none is up.
        """
        needed = frozenset(needed_models)
        loop = asyncio.get_running_loop()
        deadline = None if wait is None else loop.time() + wait
        health_deadline = loop.time() + wait_for_health
        while True:
            server = pick_server(self.servers, needed, self.capacity)
            if server is not None:
                server.in_flight += 1
                return Lease(self, server, self._http[server.url])
            if not any(s.healthy and needed <= s.models for s in self.servers):
                left = health_deadline - loop.time()
                if left <= 0:
                    missing = missing_models(self.servers, needed)
                    if missing:
                        raise NoServerError(
                            f"no healthy ComfyUI server has the models this workflow needs: {', '.join(missing)}",
                            missing=missing,
                        )
                    raise NoServerError(f"no ComfyUI server is up to run this workflow ({', '.join(sorted(needed))})")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
                continue
            try:
                await asyncio.wait_for(self._changed.wait(), None if deadline is None else deadline - loop.time())
            except TimeoutError as exc:
                raise NoServerError("every ComfyUI server stayed busy") from exc

    def try_acquire(self, needed_models: Iterable[str] = ()) -> Lease | None:
        """A slot on the best server right now, or None when none is free; never waits.

        For a scheduler that keeps its own queue (``jobs/service.py``): it decides the order, then takes the
        slot in the same step, so no other waiter can take it in between.
        """
        server = pick_server(self.servers, needed_models, self.capacity)
        if server is None:
            return None
        server.in_flight += 1
        return Lease(self, server, self._http[server.url])

    def mark_down(self, url: str, reason: str) -> None:
        """A job could not reach this server: stop sending jobs there until a health check finds it up again."""
        for server in self.servers:
            if server.url == url and server.healthy:
                log.warning("ComfyUI server %s is down: %s", url, reason)
                server.healthy, server.last_error = False, reason
                server.failures += 1
                self._marked_down.set()
        self._wake()

    def lease_on(self, url: str) -> Lease:
        """A slot on one given server, whatever its load: for a job already there (reattached after a restart)."""
        server = next((s for s in self.servers if s.url == url), None)
        if server is None:
            raise NoServerError(f"{url} is no longer in the configured ComfyUI servers")
        server.in_flight += 1
        return Lease(self, server, self._http[server.url])

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _health_loop(self) -> None:
        """Checks until cancelled; no error of a round ends it (``_check`` already keeps a server's errors)."""
        while True:
            all_up = all(s.healthy for s in self.servers)
            interval = self.health_interval if all_up else min(self.health_interval, self.down_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._marked_down.wait(), interval)
            if self._marked_down.is_set():
                self._marked_down.clear()
                continue  # a server went down meanwhile: ask it again after ``down_interval``, not later
            try:
                await self.check_all()
            except Exception as exc:
                self._unexpected_error(_ROUND, exc)
            else:
                self._unexpected.pop(_ROUND, None)

    async def _check(self, server: ServerState) -> None:
        http = self._http[server.url]
        try:
            stats = await http.system_stats()
            queue = await http.queue()
            if not server.healthy or not server.models:
                server.models = models_on_server(await http.object_info())
        except ComfyError as exc:
            if server.healthy:
                log.warning("ComfyUI server %s is down: %s", server.url, exc)
            server.healthy, server.last_error = False, str(exc)
            server.failures += 1
            return
        except Exception as exc:
            # A bug of ours, or an answer we never imagined: not knowing the server's state, do not use it.
            self._unexpected_error(_check_of(server), exc)
            server.healthy, server.last_error = False, f"health check failed: {type(exc).__name__}: {exc}"
            server.failures += 1
            return
        if not server.healthy:
            log.info("ComfyUI server %s is up (ComfyUI %s)", server.url, stats.comfyui_version)
        server.healthy, server.version, server.queue_size = True, stats.comfyui_version, queue.size
        server.last_error, server.failures = "", 0
        self._unexpected.pop(_check_of(server), None)

    def _unexpected_error(self, where: str, exc: Exception) -> None:
        """Log an unexpected error with its traceback the first time its kind is seen, then only at DEBUG."""
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        seen = self._unexpected.setdefault(where, set())
        if kind in seen:
            log.debug("%s failed again: %r", where, exc)
            return
        seen.add(kind)
        log.error("%s failed unexpectedly (logged once until it works again); going on", where, exc_info=exc)


_ROUND = "a health-check round"


def _check_of(server: ServerState) -> str:
    return f"the health check of {server.url}"


def _health_loop_ended(task: asyncio.Task[None]) -> None:
    """The loop only ends by ``close()`` (cancelled): any other end is a bug, and must not pass in silence."""
    if not task.cancelled():
        log.critical("the ComfyUI health loop ended: servers are no longer checked", exc_info=task.exception())
