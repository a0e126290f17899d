"""Slash commands that do not start jobs: /help and /status.

nextcord evaluates the callbacks' annotations at runtime, so every name in them is imported for real.
"""

from __future__ import annotations

import asyncio
import logging

import nextcord
from nextcord import Interaction

from discomfy.bot.client import DiscomfyBot
from discomfy.bot.render import ServerStatus, help_embed, status_embed
from discomfy.comfy.http import ComfyHTTP
from discomfy.errors import ComfyError

log = logging.getLogger(__name__)

#: /status must answer well inside Discord's 15-minute token; a dead server should not hold it up long.
STATUS_TIMEOUT = 5.0


class CoreCommands(nextcord.ClientCog):
    def __init__(self, bot: DiscomfyBot) -> None:
        self.bot = bot

    @nextcord.slash_command(name="help", description="What discomfy does: commands, buttons and your limits.")
    async def help(self, interaction: Interaction[DiscomfyBot]) -> None:
        embed = nextcord.Embed.from_dict(help_embed(self.bot.settings.limits))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @nextcord.slash_command(name="status", description="ComfyUI servers (up/down, version, queue) and our queue.")
    async def status(self, interaction: Interaction[DiscomfyBot]) -> None:
        await interaction.response.defer(ephemeral=True)
        servers = await asyncio.gather(*(self._probe(url) for url in self.bot.settings.comfyui.servers))
        services = self.bot.services
        queued = (await services.store.counts()).total if services is not None else None
        embed = status_embed(servers, uptime_seconds=self.bot.uptime_seconds, queued_jobs=queued)
        await interaction.edit_original_message(embed=nextcord.Embed.from_dict(embed))

    async def _probe(self, url: str) -> ServerStatus:
        client = ComfyHTTP(url, self.bot.session, timeout=STATUS_TIMEOUT, attempts=1)
        try:
            stats, queue = await asyncio.gather(client.system_stats(), client.queue())
        except ComfyError as exc:
            # The details (internal host names) go to the log, not to Discord.
            log.warning("status probe of %s failed: %s", url, exc)
            return ServerStatus(url=url, up=False, error="not reachable")
        return ServerStatus(url=url, up=True, version=stats.comfyui_version, queue_size=queue.size)
