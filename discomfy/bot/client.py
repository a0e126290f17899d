"""The nextcord client: owns the shared aiohttp session and the command cogs, and closes everything it opened.

Only guild events are needed (interactions arrive regardless of intents), so no privileged intents are asked.
"""

from __future__ import annotations

import logging
import time

import aiohttp
import nextcord

from discomfy.config import Settings

log = logging.getLogger(__name__)

#: Send Messages, Embed Links, Attach Files, Read Message History: all the bot needs in a channel.
INVITE_PERMISSIONS = nextcord.Permissions(
    send_messages=True, embed_links=True, attach_files=True, read_message_history=True
)


def invite_url(application_id: int) -> str:
    return nextcord.utils.oauth_url(
        application_id, permissions=INVITE_PERMISSIONS, scopes=("bot", "applications.commands")
    )


class DiscomfyBot(nextcord.Client):
    def __init__(self, settings: Settings) -> None:
        intents = nextcord.Intents.none()
        intents.guilds = True
        super().__init__(
            intents=intents,
            default_guild_ids=list(settings.discord.guild_ids) or None,
            allowed_mentions=nextcord.AllowedMentions.none(),
        )
        self.settings = settings
        self.started_at = time.monotonic()
        self._session: aiohttp.ClientSession | None = None
        # Imported here: the cogs import this module for typing.
        from discomfy.bot.commands import CoreCommands

        self.add_cog(CoreCommands(self))

    @property
    def session(self) -> aiohttp.ClientSession:
        """One aiohttp session for everything the bot fetches (ComfyUI, attachments), created on first use."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_at

    async def on_ready(self) -> None:
        user = self.user
        log.info("connected to Discord as %s (id %s) in %d guild(s)", user, user.id if user else "?", len(self.guilds))
        if self.application_id:
            log.info("invite link: %s", invite_url(self.application_id))

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        await super().close()
