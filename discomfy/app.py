"""The process: read the configuration, wire the layers, run the bot until SIGINT/SIGTERM, close in reverse.

How it works: ``App`` is the one place that knows every layer. After the bot has logged in, ``open_stack``
builds, in order: the data directory and the SQLite ``JobStore``; the ``OutputStore`` (reconciled with the
database, caps enforced); the ComfyUI ``ServerPool`` (health checks); the workflows, checked against a
server's ``/object_info``; the ``Engine``; the bot's Discord side (``Delivery``, ``DiscordObserver``); the
``JobService``, started (it reattaches every job a previous run left); then the bot's features are installed
on the client (``GenerateCommand``, ``StudioCommands``, ``WorkflowCommands`` with its panel, ``ResultActions``)
before it connects. ``Stack.close``
undoes it in reverse: the service stops dispatching (jobs at ComfyUI keep running and are reattached next start),
the editors stop, the pool, the store, the HTTP session. Nothing below ``bot/`` knows Discord exists; the bot
only receives what it needs. With ``ops.http_port`` set, the health and metrics endpoint (``ops_http.py``) is
bound before the stack opens (a port that cannot be bound exits 1) and closed first; ``App.metrics`` is handed
to the layers' hooks (store transitions, edits, deliveries).

Exit status: 0 after a clean stop, 2 for a configuration mistake (including no token), 1 when Discord
refuses the token or cannot be reached, the data directory is unusable, or another discomfy already runs on it.
Config mistakes and login failures print a short report, never a traceback, and never the token.

Files: the process creates what it writes readable by itself alone (umask 077): the data directory 0700, the
database and the lock 0600. One bot per data directory: ``main`` holds ``flock`` on ``discomfy.lock`` in it for
the life of the process (the kernel drops it when the process dies, even by kill -9), so a second process on
the same directory exits 1 with one line instead of following the same jobs.

Never: cancel anything at ComfyUI on close, or start the service before the store is reconciled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import nextcord

from discomfy import __version__, doctor
from discomfy.bot.actions import ResultActions
from discomfy.bot.animate import AnimateCommand
from discomfy.bot.client import DiscomfyBot
from discomfy.bot.custom_ids import ComponentAction
from discomfy.bot.delivery import Delivery
from discomfy.bot.generate import GenerateCommand
from discomfy.bot.manage import StudioCommands
from discomfy.bot.observer import DiscordObserver
from discomfy.bot.pacing import Pacer
from discomfy.bot.presets import PresetCommands
from discomfy.bot.ratelimits import BucketBook
from discomfy.bot.rest import DiscordRest
from discomfy.bot.workflow_admin import WorkflowCommands
from discomfy.comfy.engine import Engine, EngineOptions
from discomfy.comfy.pool import ServerPool
from discomfy.config import Settings, load_settings, redact_url, url_credentials
from discomfy.errors import ComfyError, ConfigError, StartupError
from discomfy.jobs.admission import Limits
from discomfy.jobs.outputs import OutputStore
from discomfy.jobs.presets import PresetStore
from discomfy.jobs.runner import ServiceOptions
from discomfy.jobs.service import JobService
from discomfy.jobs.state import JobKind
from discomfy.jobs.store import JobStore, JobStoreError
from discomfy.logs import setup_logging
from discomfy.metrics import Metrics
from discomfy.ops_http import OpsServer, Probe, transition_counter
from discomfy.workflows import Kind, Registry, load_workflows

log = logging.getLogger("discomfy")

#: How long the bot may take to close its gateway and HTTP sessions after a stop signal.
SHUTDOWN_GRACE = 4.0
#: The file in the data directory whose ``flock`` one running bot holds.
LOCK_FILE = "discomfy.lock"
#: Environment variable naming library loggers to let through at our level (``logs.QUIET_LIBRARIES``, or "all").
LOG_LIBRARIES_ENV = "DISCOMFY_LOG_LIBRARIES"


class LoginProblem(Exception):
    """Discord refused the token or could not be reached; the text is printed for the operator."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description="Run the discomfy Discord bot.")
    parser.add_argument("--config", type=Path, help="TOML configuration file (default: ./discomfy.toml)")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument(
        "--check",
        action="store_true",
        help="the doctor: check the configuration, the token, the channels' permissions, each ComfyUI server and "
        "each workflow, then exit (0: the bot can start)",
    )
    parser.add_argument("--version", action="version", version=f"discomfy {__version__}")
    args = parser.parse_args(argv)
    warnings: list[str] = []
    try:
        settings = load_settings(args.config, warnings=warnings)
    except ConfigError as exc:
        if args.check:
            print("\n".join(f"✗ configuration: {problem}" for problem in exc.problems))
        print(exc.report(), file=sys.stderr)
        return 2
    if args.check:
        secrets = [settings.discord.token, *url_credentials((*settings.comfyui.servers, settings.discord.api_base))]
        setup_logging("WARNING", secrets, log_format=settings.log_format)
        return doctor.run(settings, warnings)
    if args.check_config:
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(
            f"Configuration OK: {len(settings.comfyui.servers)} ComfyUI server(s), data in {settings.storage.data_dir}"
        )
        return 0
    os.umask(0o077)
    secrets = [settings.discord.token, *url_credentials((*settings.comfyui.servers, settings.discord.api_base))]
    setup_logging(
        settings.log_level,
        secrets,
        libraries=os.environ.get(LOG_LIBRARIES_ENV, "").split(","),
        log_format=settings.log_format,
    )
    for warning in warnings:
        log.warning("%s", warning)
    try:
        lock = lock_data_dir(settings.storage.data_dir)
    except StartupError as exc:
        print(f"discomfy could not start: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(run_bot(settings))
    except LoginProblem as exc:
        print(f"discomfy could not log in to Discord: {exc}", file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"discomfy could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        os.close(lock)
    return 0


def unusable_data_dir(data_dir: Path, exc: BaseException) -> StartupError:
    return StartupError(
        f"the data directory {data_dir} cannot be used ({type(exc).__name__}: {exc}). "
        "Check that it exists or can be created, is writable and has free space, "
        "or point DISCOMFY_DATA_DIR elsewhere."
    )


def make_data_dir(data_dir: Path) -> None:
    """The data directory, created 0700 (with any missing parents); one that exists and that group or others
    may enter draws a warning (it is left as the operator made it)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = data_dir.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "the data directory %s can be read by other users (mode %04o); it holds prompts and results: chmod 700 %s",
            data_dir,
            mode,
            data_dir,
        )


def lock_data_dir(data_dir: Path) -> int:
    """Create the data directory and hold an exclusive ``flock`` on its ``discomfy.lock`` (returns the file
    descriptor: the lock lasts until it is closed or the process ends). ``StartupError`` when another process
    holds it or the directory cannot be used."""
    path = data_dir / LOCK_FILE
    try:
        make_data_dir(data_dir)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise unusable_data_dir(data_dir, exc) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.read(fd, 20).decode("ascii", "replace").strip()
        os.close(fd)
        who = f"another discomfy (pid {holder})" if holder.isdigit() else "another discomfy"
        raise StartupError(
            f"{who} is already running on the data directory {data_dir} (it holds {path}). "
            "Stop it first, or give this bot its own DISCOMFY_DATA_DIR."
        ) from exc
    try:
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as exc:
        os.close(fd)
        raise unusable_data_dir(data_dir, exc) from exc
    return fd


@dataclass
class Stack:
    """Everything behind the bot, opened in order by ``open_stack``; ``close`` undoes it in reverse."""

    settings: Settings
    session: aiohttp.ClientSession
    store: JobStore
    outputs: OutputStore
    pool: ServerPool
    engine: Engine
    observer: DiscordObserver
    service: JobService
    #: Called with the new registry after each reload (the bot re-registers ``/generate``'s bounds).
    reloaded: list[Callable[[Registry], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        await self.service.close()
        await self.observer.close()
        await self.engine.close()
        await self.pool.close()
        await self.store.close()
        await self.session.close()

    async def reload_workflows(self) -> list[str]:
        """Read the workflows folder again and check it against a server (SIGHUP); returns the problems found.

        Jobs already queued keep the workflow they were bound with; new jobs use the reloaded ones. A folder
        that now loads nothing at all is refused and the old workflows stay."""
        registry, problems = await load_and_check_workflows(self.settings, self.pool)
        if not registry.names():
            old = len(self.service.registry.names())
            log.error("reloading the workflows found none; keeping the %d loaded before", old)
            return [*problems, "no workflow could be loaded"]
        self.service.registry = registry
        for hook in self.reloaded:
            try:
                await hook(registry)
            except Exception:
                log.exception("after reloading the workflows, %s failed", getattr(hook, "__name__", hook))
                problems.append("the slash commands could not be updated; they will be at the next start")
        return problems


class App:
    """The bot and what runs behind it. ``bot.start(token)`` runs it all; ``bot.close()`` closes it all."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine_options: EngineOptions | None = None,
        service_options: ServiceOptions | None = None,
        editor_interval: float | None = None,
        book: BucketBook | None = None,
        health_interval: float | None = None,
    ) -> None:
        self.settings = settings
        #: Seconds between the ComfyUI pool's health checks (None: the pool's default).
        self.health_interval = health_interval
        self.engine_options = engine_options
        self.service_options = service_options
        self.editor_interval = editor_interval if editor_interval is not None else settings.discord.progress_interval
        self.book = book or BucketBook()
        self.started_at = time.monotonic()
        self.stack: Stack | None = None
        self.bot = DiscomfyBot(settings.discord, on_login=self._open, on_close=self._close)
        #: This bot's metrics (a registry of its own), served with /healthz when ``ops.http_port`` is set.
        self.metrics = Metrics()
        self.ops: OpsServer | None = None

    async def _open(self, bot: DiscomfyBot) -> None:
        data_dir = self.settings.storage.data_dir
        if self.settings.ops.http_port:
            self.ops = await OpsServer.start(self.settings.ops, self.metrics, self._probe(bot))
        try:
            self.stack = await self._open_stack(bot)
        except (OSError, JobStoreError) as exc:
            raise unusable_data_dir(data_dir, exc) from exc

    async def _open_stack(self, bot: DiscomfyBot) -> Stack:
        settings = self.settings
        settings.storage.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        store = await JobStore.open(settings.storage.database_path)
        store.on_transition = transition_counter(self.metrics)
        session = aiohttp.ClientSession()
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
                max_download=settings.comfyui.max_download_bytes,
                **({} if self.health_interval is None else {"health_interval": self.health_interval}),
            )
            await pool.start()
            registry, _ = await load_and_check_workflows(settings, pool)
            engine = Engine(pool, self.engine_options)
            rest = DiscordRest(session, base=settings.discord.api_base, token=settings.discord.token, book=self.book)
            delivery = Delivery(
                store,
                outputs,
                session,
                bot.uploads,
                offers=lambda: runnable_actions(service.registry),
                on_fit=self.metrics.delivered,
                extends=lambda job: can_extend(service.registry, job.workflow),
            )
            observer = DiscordObserver(
                rest,
                store,
                delivery,
                application_id=lambda: bot.application_id,
                servers_down=lambda: not any(server.healthy for server in pool.servers),
                min_interval=self.editor_interval,
                pacer=Pacer(self.book),
                on_edit=self.metrics.edited,
            )
            limits = Limits(settings.limits, settings.permissions)
            weights = {JobKind(kind): weight for kind, weight in settings.limits.weights.items()}
            options = self.service_options or ServiceOptions()
            service = JobService(
                store=store,
                engine=engine,
                registry=registry,
                outputs=outputs,
                observer=observer,
                limits=limits,
                settings=settings,
                options=ServiceOptions(**{**options.__dict__, "weights": weights}),
            )
            stack = Stack(settings, session, store, outputs, pool, engine, observer, service)
            generate = GenerateCommand(service, limits, session)
            studio = StudioCommands(
                service, store, pool, limits, settings.limits, delivery, rest, uptime=self.uptime_seconds
            )
            presets = PresetStore(store)
            workflows = WorkflowCommands(service, pool, limits, settings, session, reload=stack.reload_workflows)
            bot.install(
                [
                    generate,
                    AnimateCommand(service, limits, session),
                    studio,
                    workflows,
                    PresetCommands(service, presets, store, limits),
                ],
                ResultActions(service, store, limits, delivery, presets),
                workflows.panels(),
            )
            generate.fit_to(registry.of_kind(Kind.IMAGE))

            async def refit_generate(reloaded: Registry) -> None:
                """A reload may widen ``/generate``'s bounds (an upload allowing 150 steps): register them again,
                or Discord itself keeps refusing what the new workflow allows."""
                generate.fit_to(reloaded.of_kind(Kind.IMAGE))
                if bot.is_ready():  # where they were registered: the configured guilds, else globally
                    for guild_id in settings.discord.guild_ids or (None,):
                        await bot.sync_application_commands(guild_id=guild_id)

            stack.reloaded.append(refit_generate)
            await service.start()
        except BaseException:
            await store.close()
            await session.close()
            raise
        return stack

    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_at

    async def _close(self, bot: DiscomfyBot) -> None:
        ops, self.ops = self.ops, None
        if ops is not None:
            await ops.close()
        stack, self.stack = self.stack, None
        if stack is not None:
            await stack.close()

    def _probe(self, bot: DiscomfyBot) -> Probe:
        """What /healthz and /metrics look at: the gateway, the stack once open, Discord's 429s."""

        def gateway_up() -> bool:
            return bot.is_ready() and not bot.is_closed() and bot.ws is not None and bot.ws.open

        def parts() -> tuple[JobStore, ServerPool] | None:
            return (self.stack.store, self.stack.pool) if self.stack is not None else None

        return Probe(gateway_up, parts, lambda: self.book.refusals)

    async def reload_workflows(self) -> list[str]:
        if self.stack is None:
            log.info("SIGHUP: not started yet; the workflows are read at start")
            return []
        log.info("SIGHUP: reloading the workflows from %s", self.settings.workflows_dir)
        problems = await self.stack.reload_workflows()
        log.info("workflows reloaded with %d problem(s)", len(problems))
        return problems


def runnable_actions(registry: Registry) -> frozenset[ComponentAction]:
    """The actions on a result that a loaded workflow can run (a button for anything else would only fail)."""
    kinds = {ComponentAction.UPSCALE: Kind.UPSCALE, ComponentAction.ANIMATE: Kind.VIDEO}
    return frozenset(action for action, kind in kinds.items() if registry.default(kind) is not None)


def can_extend(registry: Registry, workflow: str) -> bool:
    """Whether results of ``workflow`` get an Extend button (its manifest's ``extend_max_frames``)."""
    found = registry.find(workflow)
    return found is not None and found.extend_max_frames is not None


async def load_and_check_workflows(settings: Settings, pool: ServerPool) -> tuple[Registry, list[str]]:
    """The workflows folder, checked against the first healthy server's ``/object_info``; every problem is
    logged in plain words and returned."""
    registry = load_workflows(settings.workflows_dir, settings.models, uploads=settings.storage.uploaded_workflows_dir)
    problems = list(registry.problems)
    for problem in registry.problems:
        log.warning("workflows: %s", problem)
    for server in pool.servers:
        if not server.healthy:
            continue
        try:
            info = await pool.http(server.url).object_info()
        except ComfyError as exc:
            log.info("could not read /object_info of %s to check the workflows: %s", redact_url(server.url), exc)
            continue
        for problem in registry.validate(info):
            log.warning("workflows on %s: %s", redact_url(server.url), problem)
            problems.append(problem)
        break
    else:
        log.warning("no ComfyUI server answered, so the workflows were not checked against one (SIGHUP re-checks)")
    log.info("workflows loaded: %s", ", ".join(registry.names()) or "none")
    return registry, problems


async def run_bot(settings: Settings) -> None:
    """Log in, serve until a stop signal, then close. Raises ``LoginProblem`` for a bad token or no Discord."""
    # nextcord reads its REST base from this class attribute; the gateway URL then comes from GET /gateway.
    nextcord.http.Route.BASE = settings.discord.api_base
    app = App(settings)
    bot = app.bot
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[list[str]]] = set()

    def reload() -> None:
        # SIGHUP: read the workflows folder again and check it against a server (problems are logged).
        task = asyncio.create_task(app.reload_workflows(), name="reload-workflows")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    log.info("discomfy %s starting; Discord API at %s", __version__, redact_url(settings.discord.api_base))
    runner = asyncio.create_task(bot.start(settings.discord.token), name="discord-client")
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()
        else:
            log.info("stop signal received, shutting down")
    except nextcord.LoginFailure as exc:
        raise LoginProblem("Discord rejected the bot token. Check DISCORD_TOKEN (reset it if needed).") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise LoginProblem(
            f"Discord's API at {settings.discord.api_base} could not be reached ({type(exc).__name__})."
        ) from exc
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        stopper.cancel()
        for task in list(reloads):
            task.cancel()
        await _close(bot, runner)
    log.info("discomfy stopped")


async def _close(bot: DiscomfyBot, runner: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(bot.close(), SHUTDOWN_GRACE)
    except TimeoutError:
        log.warning("closing the Discord connection took over %.0f s; giving up on it", SHUTDOWN_GRACE)
    if not runner.done():
        runner.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await runner
