"""Everything behind the bot, built at start and closed at stop, in order.

How it works: ``Services.open(settings, client, session)`` opens the SQLite store, reconciles the output store
with it (and enforces its caps), starts the ComfyUI server pool (health checks), loads the workflows and checks
each against every healthy server's ``/object_info`` (problems are logged in plain words; a broken workflow
never stops the others), builds the engine and the job service, and starts the service — which reattaches
every job that was queued, running or being delivered when the bot last stopped. ``close()`` undoes it in
reverse: the service stops dispatching (jobs at ComfyUI keep running and are reattached next start), the
editors stop, the pool, the store.

Never: cancel anything at ComfyUI on close, or start the service before the store is reconciled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from discomfy.bot.limits import Limits
from discomfy.comfy.engine import Engine, EngineOptions
from discomfy.comfy.pool import ServerPool
from discomfy.config import Settings
from discomfy.errors import ComfyError
from discomfy.jobs.outputs import OutputStore
from discomfy.jobs.runner import ServiceOptions
from discomfy.jobs.service import JobService
from discomfy.jobs.state import JobKind
from discomfy.jobs.store import JobStore
from discomfy.workflows import Registry, load_workflows

if TYPE_CHECKING:
    from discomfy.bot.client import DiscomfyBot
    from discomfy.bot.observer import DiscordObserver

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: JobStore
    outputs: OutputStore
    pool: ServerPool
    registry: Registry
    engine: Engine
    limits: Limits
    service: JobService = field(init=False)
    observer: DiscordObserver = field(init=False)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        client: DiscomfyBot,
        session: aiohttp.ClientSession,
        *,
        engine_options: EngineOptions | None = None,
        editor_interval: float = 1.5,
    ) -> Services:
        from discomfy.bot.observer import DiscordObserver  # the observer imports this module for typing

        settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
        store = await JobStore.open(settings.storage.database_path)
        try:
            outputs = OutputStore.from_settings(settings.storage, store)
            report = await outputs.reconcile()
            if report.changed:
                log.info("output store reconciled with the database: %s", report)
            await outputs.enforce_caps()
            pool = ServerPool(
                settings.comfyui.servers,
                session,
                capacity=settings.comfyui.max_jobs_per_server,
                timeout=settings.comfyui.request_timeout,
            )
            await pool.start()
            registry, _ = await load_and_check_workflows(settings, pool)
            services = cls(
                settings=settings,
                store=store,
                outputs=outputs,
                pool=pool,
                registry=registry,
                engine=Engine(pool, engine_options),
                limits=Limits(settings.limits, settings.permissions),
            )
            services.observer = DiscordObserver(client, services, min_interval=editor_interval)
            services.service = JobService(
                store=store,
                engine=services.engine,
                registry=registry,
                outputs=outputs,
                observer=services.observer,
                limits=services.limits,
                settings=settings,
                options=ServiceOptions(
                    weights={JobKind(kind): weight for kind, weight in settings.limits.weights.items()}
                ),
            )
            await services.service.start()
        except BaseException:
            await store.close()
            raise
        return services

    async def reload_workflows(self) -> list[str]:
        """Read the workflows folder again and check it against a server (SIGHUP); returns the problems found.

        Jobs already queued keep the workflow they were bound with; new jobs use the reloaded ones. A folder
        that now loads nothing at all is refused and the old workflows stay."""
        registry, problems = await load_and_check_workflows(self.settings, self.pool)
        if not registry.names():
            log.error("reloading the workflows found none; keeping the %d loaded before", len(self.registry.names()))
            return [*problems, "no workflow could be loaded"]
        self.registry = registry
        self.service.registry = registry
        return problems

    async def close(self) -> None:
        await self.service.close()
        await self.observer.close()
        await self.pool.close()
        await self.store.close()


async def load_and_check_workflows(settings: Settings, pool: ServerPool) -> tuple[Registry, list[str]]:
    """The workflows folder, checked against the first healthy server's ``/object_info``; every problem is
    logged in plain words and returned."""
    registry = load_workflows(settings.workflows_dir, settings.models)
    problems = list(registry.problems)
    for problem in registry.problems:
        log.warning("workflows: %s", problem)
    for server in pool.servers:
        if not server.healthy:
            continue
        try:
            info = await pool.http(server.url).object_info()
        except ComfyError as exc:
            log.info("could not read /object_info of %s to check the workflows: %s", server.url, exc)
            continue
        for problem in registry.validate(info):
            log.warning("workflows on %s: %s", server.url, problem)
            problems.append(problem)
        break
    else:
        log.warning("no ComfyUI server answered, so the workflows were not checked against one (SIGHUP re-checks)")
    log.info("workflows loaded: %s", ", ".join(registry.names()) or "none")
    return registry, problems
