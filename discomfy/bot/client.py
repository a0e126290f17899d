"""The nextcord client: owns the shared aiohttp session, the services behind the bot and the command cogs, and
closes everything it opened.

Start: ``start(token)`` logs in, opens the services (store, output store, ComfyUI pool, workflows, job service —
which reattaches the jobs a previous run left), then connects to the gateway. Component presses and modal
submits whose custom_id is ours go to ``components.handle_component``; everything else to nextcord's own
application-command processing. Only guild events are needed (interactions arrive regardless of intents), so no
privileged intents are asked.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import nextcord

from discomfy.bot.custom_ids import decode
from discomfy.comfy.engine import EngineOptions
from discomfy.config import Settings
from discomfy.errors import StartupError, UserError

if TYPE_CHECKING:
    from discomfy.bot.jobs_cog import JobCommands
    from discomfy.bot.services import Services

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
    def __init__(
        self,
        settings: Settings,
        *,
        engine_options: EngineOptions | None = None,
        editor_interval: float = 1.5,
    ) -> None:
        intents = nextcord.Intents.none()
        intents.guilds = True
        super().__init__(
            intents=intents,
            default_guild_ids=list(settings.discord.guild_ids) or None,
            allowed_mentions=nextcord.AllowedMentions.none(),
        )
        self.settings = settings
        self.started_at = time.monotonic()
        self.services: Services | None = None
        #: Guild id → upload limit in bytes, from the interactions Discord sends.
        self.upload_limits: dict[int, int] = {}
        self._engine_options = engine_options
        self._editor_interval = editor_interval
        self._session: aiohttp.ClientSession | None = None
        # Imported here: the cogs import this module for typing.
        from discomfy.bot.commands import CoreCommands
        from discomfy.bot.jobs_cog import JobCommands

        self.add_cog(CoreCommands(self))
        self.job_commands: JobCommands = JobCommands(self)
        self.add_cog(self.job_commands)

    @property
    def session(self) -> aiohttp.ClientSession:
        """One aiohttp session for everything the bot fetches (ComfyUI, attachments), created on first use."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_at

    def upload_limit(self, guild_id: int | None) -> int:
        """Bytes a message may upload in that guild: what Discord last said (``attachment_size_limit``, larger in
        boosted servers), else the configured default."""
        learned = self.upload_limits.get(guild_id) if guild_id is not None else None
        return learned or self.settings.discord.upload_limit_bytes

    def get_interaction(self, data: Any, *, cls: Any = nextcord.Interaction) -> Any:
        """nextcord builds every interaction here; we note the guild's ``attachment_size_limit`` on the way."""
        limit, guild_id = data.get("attachment_size_limit"), data.get("guild_id")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 and guild_id is not None:
            self.upload_limits[int(guild_id)] = limit
        return super().get_interaction(data, cls=cls)

    def require_services(self) -> Services:
        if self.services is None:
            raise UserError("I'm still starting up; please try again in a few seconds.")
        return self.services

    async def start(self, token: str, *, reconnect: bool = True) -> None:
        await self.login(token)
        from discomfy.bot.services import Services
        from discomfy.jobs.store import JobStoreError

        data_dir = self.settings.storage.data_dir
        try:
            self.services = await Services.open(
                self.settings,
                self,
                self.session,
                engine_options=self._engine_options,
                editor_interval=self._editor_interval,
            )
        except (OSError, JobStoreError) as exc:
            raise StartupError(
                f"the data directory {data_dir} cannot be used ({type(exc).__name__}: {exc}). "
                "Check that it exists or can be created, is writable and has free space, "
                "or point DISCOMFY_DATA_DIR elsewhere."
            ) from exc
        self._fit_commands_to_workflows()
        await self.connect(reconnect=reconnect)

    def _fit_commands_to_workflows(self) -> None:
        """Before the commands are registered (on connect): their bounds from the loaded manifests."""
        from discomfy.bot.jobs_cog import fit_generate_options
        from discomfy.workflows import Kind

        if self.services is None:
            return
        for command in self.get_all_application_commands():
            if command.name == "generate":
                fit_generate_options(command, list(self.services.registry.of_kind(Kind.IMAGE)))

    async def on_ready(self) -> None:
        user = self.user
        log.info("connected to Discord as %s (id %s) in %d guild(s)", user, user.id if user else "?", len(self.guilds))
        if self.application_id:
            log.info("invite link: %s", invite_url(self.application_id))

    async def on_interaction(self, interaction: nextcord.Interaction[Any]) -> None:
        if interaction.type in (nextcord.InteractionType.component, nextcord.InteractionType.modal_submit):
            data: Any = interaction.data if isinstance(interaction.data, dict) else {}
            ref = decode(data.get("custom_id"))
            if ref is not None:
                from discomfy.bot.components import handle_component

                await handle_component(self, interaction, ref)
                return
        await self.process_application_commands(interaction)

    async def on_application_command_error(
        self, interaction: nextcord.Interaction[Any], exception: nextcord.ApplicationError
    ) -> None:
        """The one error handler for commands: our errors as their messages, anything else with a reference id."""
        from discomfy.bot.failures import report_failure

        cause = exception.original if isinstance(exception, nextcord.ApplicationInvokeError) else exception
        await report_failure(interaction, cause, doing="a command")

    async def close(self) -> None:
        if self.services is not None:
            services, self.services = self.services, None
            try:
                await services.close()
            except Exception:
                log.exception("closing the services failed")
        if self._session is not None and not self._session.closed:
            await self._session.close()
        await super().close()
