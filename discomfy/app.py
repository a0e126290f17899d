"""Process entry point: read the configuration, run the bot until SIGINT/SIGTERM, close everything cleanly.

Exit status: 0 after a clean stop, 2 for a configuration mistake (including no token), 1 when Discord
refuses the token or cannot be reached. Config mistakes and login failures print a short report, never a
traceback, and never the token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import nextcord

from discomfy import __version__
from discomfy.bot.client import DiscomfyBot
from discomfy.config import Settings, load_settings
from discomfy.errors import ConfigError, StartupError
from discomfy.logs import setup_logging

log = logging.getLogger("discomfy")

#: How long the bot may take to close its gateway and HTTP sessions after a stop signal.
SHUTDOWN_GRACE = 4.0


class LoginProblem(Exception):
    """Discord refused the token or could not be reached; the text is printed for the operator."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description="Run the discomfy Discord bot.")
    parser.add_argument("--config", type=Path, help="TOML configuration file (default: ./discomfy.toml)")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--version", action="version", version=f"discomfy {__version__}")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    if args.check_config:
        print(
            f"Configuration OK: {len(settings.comfyui.servers)} ComfyUI server(s), data in {settings.storage.data_dir}"
        )
        return 0
    setup_logging(settings.log_level, secrets=[settings.discord.token])
    try:
        asyncio.run(run_bot(settings))
    except LoginProblem as exc:
        print(f"discomfy could not log in to Discord: {exc}", file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"discomfy could not start: {exc}", file=sys.stderr)
        return 1
    return 0


async def run_bot(settings: Settings) -> None:
    """Log in, serve until a stop signal, then close. Raises ``LoginProblem`` for a bad token or no Discord."""
    # nextcord reads its REST base from this class attribute; the gateway URL then comes from GET /gateway.
    nextcord.http.Route.BASE = settings.discord.api_base
    bot = DiscomfyBot(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[None]] = set()

    def reload() -> None:
        # SIGHUP: read the workflows folder again and check it against a server (problems are logged).
        task = asyncio.create_task(_reload_workflows(bot), name="reload-workflows")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    log.info("discomfy %s starting; Discord API at %s", __version__, settings.discord.api_base)
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


async def _reload_workflows(bot: DiscomfyBot) -> None:
    if bot.services is None:
        log.info("SIGHUP: not started yet; the workflows are read at start")
        return
    log.info("SIGHUP: reloading the workflows from %s", bot.settings.workflows_dir)
    problems = await bot.services.reload_workflows()
    log.info("workflows reloaded with %d problem(s)", len(problems))


async def _close(bot: DiscomfyBot, runner: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(bot.close(), SHUTDOWN_GRACE)
    except TimeoutError:
        log.warning("closing the Discord connection took over %.0f s; giving up on it", SHUTDOWN_GRACE)
    if not runner.done():
        runner.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await runner
