"""The whole bot end to end: the real nextcord client against the Discord emulator, the ComfyUI emulator behind.

``studio`` (a fixture of ``tests/e2e/conftest.py``) starts a ComfyUI emulator and a ``DiscomfyBot`` whose settings
point at both emulators, with its data in ``tmp_path``. ``studio.restart()`` closes the bot (jobs at ComfyUI keep
running) and starts a new one on the same data directory, as a process restart would.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from discomfy.app import App, Stack
from discomfy.bot.client import DiscomfyBot
from discomfy.comfy.engine import EngineOptions
from discomfy.config import ComfySettings, DiscordSettings, LimitSettings, Settings, StorageSettings
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner
from tests.peers.discord.interactions import InteractionRecord
from tests.peers.discord.messages import StoredMessage
from tests.support import FAST_STREAM, WORKFLOWS

T = TypeVar("T")
#: The bot's jobs may wait a little longer for an unreachable server than the engine's own fault tests.
E2E_STREAM = {**FAST_STREAM, "unreachable_timeout": 3.0}
#: The bot's progress cadence here (1 s in production), on the same scale as Discord's limits.
E2E_PROGRESS_INTERVAL = 0.15


def studio_settings(discord: DiscordEmulator, comfy: ComfyEmulator, data_dir: Path, **limits: Any) -> Settings:
    return Settings(
        discord=DiscordSettings(token=discord.bot_token, api_base=discord.api_base, guild_ids=(discord.guild.id,)),
        comfyui=ComfySettings(servers=(comfy.url,), request_timeout=5.0, max_jobs_per_server=1),
        storage=StorageSettings(data_dir=data_dir),
        limits=replace(LimitSettings(), **limits),
        workflows_dir=WORKFLOWS,
    )


@dataclass
class Studio:
    discord: DiscordEmulator
    comfy: ComfyEmulator
    runner: NextcordRunner
    settings: Settings
    editor_interval: float = E2E_PROGRESS_INTERVAL
    app: App | None = None
    bots: list[DiscomfyBot] = field(default_factory=list)

    @property
    def bot(self) -> DiscomfyBot | None:
        return self.app.bot if self.app is not None else None

    @property
    def stack(self) -> Stack:
        """What runs behind the bot (store, pool, service …) while it runs."""
        assert self.app is not None and self.app.stack is not None, "the bot is not running"
        return self.app.stack

    async def start(self) -> DiscomfyBot:
        app = App(
            self.settings,
            engine_options=EngineOptions(stream=E2E_STREAM, server_wait=1.5),
            editor_interval=self.editor_interval,
        )
        self.app = app
        self.bots.append(app.bot)
        await self.runner(app.bot, timeout=20.0)
        return app.bot

    async def stop(self) -> None:
        if self.app is not None:
            await self.runner.close(self.app.bot)
            self.app = None

    async def restart(self) -> DiscomfyBot:
        await self.stop()
        return await self.start()

    async def until(self, condition: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:  # noqa: ASYNC109
        """Polls a condition on either side (bot or emulators) until it holds."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {timeout}s: {what or condition}")
            await asyncio.sleep(0.02)

    def message(self, interaction: InteractionRecord) -> StoredMessage | None:
        """The job message of an interaction: its own response, or — for an action on a result, answered with
        an ephemeral "started … (job `id`)" — the bot's message (a reply to the result) that shows that job."""
        original = self.discord.original_message(interaction)
        if original is None or not original.ephemeral:
            return original
        found = re.search(r"job `([0-9a-f]{32})`", original.content)
        if found is None:
            return original
        for message in self.discord.messages(interaction.channel.id):
            if not message.ephemeral and any(found.group(1) in str(e.get("footer")) for e in message.embeds):
                return message
        return None

    async def result(self, interaction: InteractionRecord, timeout: float = 30.0) -> StoredMessage:  # noqa: ASYNC109
        """The interaction's message once it carries the finished result (its attachments and buttons)."""

        def done() -> StoredMessage | None:
            message = self.message(interaction)
            title = message.embeds[0].get("title", "") if message and message.embeds else ""
            return message if message and "Done" in title and message.attachments else None

        return await self.until(done, timeout, "a result message")

    def responses_429(self) -> list[Any]:
        return [r for r in self.discord.requests if r.status == 429]
