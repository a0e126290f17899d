"""Pytest fixtures for the Discord emulator, and a runner for real nextcord clients against it.

- ``discord_emulator``: a started :class:`DiscordEmulator` (default config), stopped after the test. Mark a
  test (or a module, with ``pytestmark``) ``@pytest.mark.discord_time_scale(0.1)`` to start it with that
  ``config.time_scale`` (rate-limit windows and Retry-After ten times shorter).
- ``run_nextcord``: an :class:`NextcordRunner`; ``await run_nextcord(client)`` points nextcord at the emulator,
  starts ``client.start(token)`` as a task, waits for READY and for the client's own command sync, and at the
  end of the test closes every client, awaits its task and restores ``nextcord.http.Route.BASE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import warnings
from collections.abc import AsyncIterator

import nextcord
import pytest
from nextcord.http import Route

from .server import DiscordEmulator

# nextcord 3.2 passes a float ``timeout`` to aiohttp's ``ws_connect``, which aiohttp 3.14 deprecates; under
# ``filterwarnings = error`` that would abort the client's gateway connection. Ignored only while a client
# runs through NextcordRunner (pytest restores the filters after each test).
_NEXTCORD_WS_TIMEOUT_WARNING = "parameter 'timeout' of type 'float' is deprecated"


class NextcordRunner:
    """Runs real nextcord clients against one emulator and cleans up after them."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        self.emulator = emulator
        self._running: list[tuple[nextcord.Client, asyncio.Task[None]]] = []
        self._saved_base: str | None = None

    async def __aenter__(self) -> NextcordRunner:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def __call__(
        self,
        client: nextcord.Client,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
        fast_ready: bool = True,
        wait_for_commands: bool = True,
        exact_ratelimits: bool | None = None,
    ) -> nextcord.Client:
        return await self.start(
            client,
            timeout=timeout,
            fast_ready=fast_ready,
            wait_for_commands=wait_for_commands,
            exact_ratelimits=exact_ratelimits,
        )

    async def start(
        self,
        client: nextcord.Client,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
        fast_ready: bool = True,
        wait_for_commands: bool = True,
        exact_ratelimits: bool | None = None,
    ) -> nextcord.Client:
        """Starts ``client`` and returns once it is READY (and, by default, its commands are registered).

        ``fast_ready`` lowers the client's ``guild_ready_timeout`` (nextcord waits that long after the last
        GUILD_CREATE before READY; 2 s by default) to 50 ms.

        ``exact_ratelimits`` makes the client wait for a bucket exactly until its ``X-RateLimit-Reset``, as
        ``nextcord.Client(assume_unsync_clock=False)`` does (client and emulator share this machine's clock).
        nextcord's default (``True``) waits for a bucket at least 1 s whatever the headers say (it starts every
        bucket's estimated reset time at 1 s and only raises it), which would undo a time scale: so ``None``,
        the default, means "exact when the emulator's ``time_scale`` is not 1". Set before the client's first
        request, it is the same as the constructor argument, for clients (the bot) that do not expose it.
        """
        if self._saved_base is None:
            self._saved_base = Route.BASE
        Route.BASE = self.emulator.api_base
        warnings.filterwarnings("ignore", message=_NEXTCORD_WS_TIMEOUT_WARNING, category=DeprecationWarning)
        if fast_ready:
            state = client._connection
            state.guild_ready_timeout = min(state.guild_ready_timeout, 0.05)
        if exact_ratelimits is None:
            exact_ratelimits = self.emulator.config.time_scale != 1.0
        if exact_ratelimits:
            client.http._ratelimit_use_timestamp = True
        task = asyncio.create_task(client.start(self.emulator.bot_token), name="nextcord-client")
        self._running.append((client, task))
        ready = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait({task, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
            if task in done:
                task.result()
                raise RuntimeError("the nextcord client stopped before READY")
            raise TimeoutError(f"the nextcord client was not READY within {timeout}s")
        if wait_for_commands:
            await self._wait_for_command_sync(client, timeout)
        return client

    async def _wait_for_command_sync(self, client: nextcord.Client, timeout: float) -> None:  # noqa: ASYNC109
        """Until every application command of the client has its Discord id for each scope it targets."""
        guild_id = self.emulator.guild.id

        def synced() -> bool:
            for command in client.get_all_application_commands():
                rollout = set(command.guild_ids_to_rollout)
                scopes: set[int | None] = set({guild_id} & rollout)
                if command.force_global or not rollout:
                    scopes.add(None)
                if any(scope not in command.command_ids for scope in scopes):
                    return False
            return True

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not synced():
            if loop.time() > deadline:
                raise TimeoutError(f"the client's application commands were not registered within {timeout}s")
            await asyncio.sleep(0.01)

    async def close(self, client: nextcord.Client) -> None:
        """Closes one client and waits for its task to end."""
        for entry in [e for e in self._running if e[0] is client]:
            self._running.remove(entry)
            await self._close(*entry)

    @staticmethod
    async def _close(client: nextcord.Client, task: asyncio.Task[None]) -> None:
        if not client.is_closed():
            await client.close()
        try:
            await asyncio.wait_for(asyncio.shield(task), 5.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:
            pass

    async def aclose(self) -> None:
        while self._running:
            await self._close(*self._running.pop())
        await _cancel_leftover_nextcord_tasks()
        if self._saved_base is not None:
            Route.BASE = self._saved_base
            self._saved_base = None


async def _cancel_leftover_nextcord_tasks() -> None:
    """Cancels what a closed nextcord client leaves running.

    ``Client.close()`` leaves its rate limit reset timers (``RateLimit.reset_remaining``) sleeping, and event
    handlers or view callbacks may still be running; they would otherwise be pending when the loop closes.
    """
    root = os.path.dirname(nextcord.__file__)
    current = asyncio.current_task()

    def from_nextcord(task: asyncio.Task[object]) -> bool:
        code = getattr(task.get_coro(), "cr_code", None)
        return code is not None and code.co_filename.startswith(root)

    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done() and from_nextcord(t)]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "discord_time_scale(scale): start the discord_emulator fixture with config.time_scale = scale "
        "(real seconds per Discord second of rate limits)",
    )


@pytest.fixture
async def discord_emulator(request: pytest.FixtureRequest) -> AsyncIterator[DiscordEmulator]:
    marker = request.node.get_closest_marker("discord_time_scale")
    emulator = DiscordEmulator(time_scale=marker.args[0] if marker is not None else None)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()
    if emulator.state.errors:
        raise AssertionError(
            f"the Discord emulator itself failed: {emulator.state.errors!r}"
        ) from emulator.state.errors[0]


@pytest.fixture
async def run_nextcord(discord_emulator: DiscordEmulator) -> AsyncIterator[NextcordRunner]:
    runner = NextcordRunner(discord_emulator)
    try:
        yield runner
    finally:
        await runner.aclose()
