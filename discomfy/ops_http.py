"""The optional health and metrics endpoint: a small aiohttp server inside the bot's process.

How it works: ``OpsServer.start(settings, metrics, probe)`` listens on ``ops.http_host:ops.http_port`` (loopback
by default; off while the port is 0, which ``app.py`` checks) and answers two routes:
- ``GET /healthz``: 200 ``{"status": "ok"}`` when the Discord gateway is connected, at least one ComfyUI server
  passed the pool's last health check (no probing per request: the pool's health loop already asks), and the
  database takes a small real write (``JobStore.check_writable``); else 503 with every reason, in words an
  operator can act on.
- ``GET /metrics``: ``Metrics.render()`` in Prometheus' text format, after ``Probe.view`` has read the state
  (jobs and outputs from the database, servers from the pool, 429s from the bucket book) into the metrics.
``Probe`` is what ``app.py`` hands over: how to see the gateway, the stack (None until it is open), and the
429 counts. ``transition_counter`` turns the store's transition hook into ``Metrics.job_moved``.

A port that cannot be bound (taken, not allowed, an unknown host) is a ``StartupError``: the process exits 1 with
one line naming the address and the setting.

Never: answer with a secret or an internal (no tokens, no paths, no exception texts: reasons are fixed phrases);
probe a ComfyUI server per request; let a slow database hold a health request for long (``DB_TIMEOUT``); log
each request (a scraper asks every few seconds).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from aiohttp import web

from discomfy.comfy.pool import ServerPool
from discomfy.config import OpsSettings, redact_url
from discomfy.errors import StartupError
from discomfy.jobs.state import Job
from discomfy.jobs.store import JobStore, JobStoreError
from discomfy.metrics import CONTENT_TYPE, Metrics, ServerView, View

log = logging.getLogger(__name__)

#: Seconds a health request waits for the database's write check before it counts as not writable.
DB_TIMEOUT = 3.0


@dataclass(frozen=True)
class Probe:
    """Where the endpoint looks; ``app.py`` fills it."""

    gateway_up: Callable[[], bool]
    #: The open store and pool, or None while the bot starts (or after it stopped).
    stack: Callable[[], tuple[JobStore, ServerPool] | None]
    #: Discord 429s by scope since start (``BucketBook.refusals``).
    refusals: Callable[[], Mapping[str, int]]

    async def problems(self) -> list[str]:
        """Why the bot is not healthy; empty when it is."""
        problems = [] if self.gateway_up() else ["the Discord gateway is not connected"]
        parts = self.stack()
        if parts is None:
            return [*problems, "the bot is starting: its job store and ComfyUI pool are not open yet"]
        store, pool = parts
        if not any(server.healthy for server in pool.servers):
            problems.append(f"no ComfyUI server answers (of {len(pool.servers)} configured)")
        try:
            async with asyncio.timeout(DB_TIMEOUT):
                await store.check_writable()
        except (JobStoreError, TimeoutError) as exc:
            log.warning("health check: the database cannot be written: %s", exc)
            problems.append("the database cannot be written (see the bot's log)")
        return problems

    async def view(self) -> View:
        """The state for a scrape; what cannot be read (the database, while it fails) is left out."""
        parts = self.stack()
        refusals = MappingProxyType(dict(self.refusals()))
        if parts is None:
            return View(refusals=refusals, gateway_up=self.gateway_up())
        store, pool = parts
        servers = tuple(
            ServerView(
                redact_url(s.url),
                s.healthy,
                s.queue_size,
                s.in_flight,
                pool.http(s.url).retries,
                pool.http(s.url).reconnects,
            )
            for s in pool.servers
        )
        try:
            stats = await store.stats()
        except JobStoreError as exc:
            log.warning("metrics: the database could not be read: %s", exc)
            return View(servers=servers, refusals=refusals, gateway_up=self.gateway_up())
        return View(stats.jobs, servers, refusals, stats.output_files, stats.output_bytes, self.gateway_up())


def transition_counter(metrics: Metrics) -> Callable[[Job, float], None]:
    """The store's ``on_transition`` hook: every state a row takes, into ``metrics``."""

    def moved(job: Job, now: float) -> None:
        metrics.job_moved(
            job.state,
            job.workflow,
            created_at=job.created_at,
            submitted_at=job.submitted_at,
            started_at=job.started_at,
            now=now,
        )

    return moved


class OpsServer:
    """The running endpoint; ``close()`` stops it."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        #: The port it listens on (the one asked for).
        self.port = port

    @classmethod
    async def start(cls, settings: OpsSettings, metrics: Metrics, probe: Probe) -> OpsServer:
        app = web.Application()
        app.router.add_get("/healthz", _healthz(probe))
        app.router.add_get("/metrics", _metrics(metrics, probe))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        host, port = settings.http_host, settings.http_port
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            reason = exc.strerror or type(exc).__name__
            raise StartupError(
                f"the health and metrics endpoint cannot listen on {host}:{port} ({reason}). "
                "Free that port, or set DISCOMFY_HTTP_PORT (ops.http_port) to another one, or to 0 to turn it off."
            ) from exc
        log.info("health and metrics endpoint on http://%s:%d (/healthz, /metrics)", host, port)
        return cls(runner, host, port)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) of every socket it listens on."""
        return [(str(address[0]), int(address[1])) for address in self._runner.addresses]

    async def close(self) -> None:
        await self._runner.cleanup()


def _healthz(probe: Probe) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def healthz(request: web.Request) -> web.StreamResponse:
        problems = await probe.problems()
        if problems:
            return web.json_response({"status": "unhealthy", "problems": problems}, status=503)
        return web.json_response({"status": "ok"})

    return healthz


def _metrics(metrics: Metrics, probe: Probe) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def scrape(request: web.Request) -> web.StreamResponse:
        metrics.observe(await probe.view())
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    return scrape
