"""The nextcord client: logs in, routes interactions to the bot's features, reports every failure one way.

How it works: ``DiscomfyBot`` knows nothing of what lies behind it. ``app.py`` builds the features (cogs with
slash commands, and the ``ResultActions`` for our buttons and forms) on top of the job service and ``install``s
them; ``start(token)`` logs in, awaits the ``on_login`` hook (where ``app.py`` opens the store, the pool, the
engine and the job service, and installs the features) and connects to the gateway; ``close()`` awaits
``on_close`` (which closes them in reverse) before closing the gateway. Component presses and form submits
whose custom_id is ours go to ``ResultActions.handle`` (or, for an action installed as a panel, such as
``/workflow add``'s Confirm / Adjust / Cancel, to that panel's handler); everything else to nextcord's
application-command processing. Each interaction's ``attachment_size_limit`` is noted in ``UploadLimits``. Only
guild events are needed (interactions arrive regardless of intents), so no privileged intents are asked.

Never: import a feature module's internals or the job layers' wiring; let an exception from a command reach
nextcord unreported (``on_application_command_error`` is the one handler of command failures).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import nextcord

from discomfy.bot import permissions
from discomfy.bot.actions import ResultActions
from discomfy.bot.custom_ids import ComponentAction, ComponentRef, decode
from discomfy.bot.failures import report_failure
from discomfy.bot.interactions import UploadLimits
from discomfy.config import DiscordSettings

log = logging.getLogger(__name__)

Hook = Callable[["DiscomfyBot"], Awaitable[None]]
#: Handles one press or pick whose custom_id is ours but not about a job; reports its own failures.
PanelHandler = Callable[[nextcord.Interaction[Any], ComponentRef], Awaitable[None]]


def invite_url(application_id: int) -> str:
    """The invite link: scopes bot and applications.commands, the permissions in ``permissions.REQUIRED``."""
    return permissions.invite_url(application_id)


class DiscomfyBot(nextcord.Client):
    def __init__(
        self,
        settings: DiscordSettings,
        *,
        on_login: Hook | None = None,
        on_close: Hook | None = None,
    ) -> None:
        intents = nextcord.Intents.none()
        intents.guilds = True
        super().__init__(
            intents=intents,
            default_guild_ids=list(settings.guild_ids) or None,
            allowed_mentions=nextcord.AllowedMentions.none(),
        )
        self.uploads = UploadLimits(settings.upload_limit_bytes)
        self.actions: ResultActions | None = None
        #: Components that are not about a job (``/workflow add``'s summary): action → handler.
        self.panels: dict[ComponentAction, PanelHandler] = {}
        self._on_login = on_login
        self._on_close = on_close
        self._closing = False

    def install(
        self,
        cogs: Sequence[nextcord.ClientCog],
        actions: ResultActions,
        panels: Mapping[ComponentAction, PanelHandler] | None = None,
    ) -> None:
        """The features: slash-command cogs, the handler of our buttons and forms on jobs, and the handlers of
        components that are not about a job (``panels``). Before connecting."""
        for cog in cogs:
            self.add_cog(cog)
        self.actions = actions
        self.panels = dict(panels or {})

    def get_interaction(self, data: Any, *, cls: Any = nextcord.Interaction) -> Any:
        """nextcord builds every interaction here; we note the guild's ``attachment_size_limit`` on the way."""
        self.uploads.note(data)
        return super().get_interaction(data, cls=cls)

    async def start(self, token: str, *, reconnect: bool = True) -> None:
        await self.login(token)
        if self._on_login is not None:
            await self._on_login(self)
        await self.connect(reconnect=reconnect)

    async def on_ready(self) -> None:
        user = self.user
        log.info("connected to Discord as %s (id %s) in %d guild(s)", user, user.id if user else "?", len(self.guilds))
        if self.application_id:
            log.info("invite link: %s", invite_url(self.application_id))

    async def on_interaction(self, interaction: nextcord.Interaction[Any]) -> None:
        if interaction.type in (nextcord.InteractionType.component, nextcord.InteractionType.modal_submit):
            data: Any = interaction.data if isinstance(interaction.data, dict) else {}
            ref = decode(data.get("custom_id"))
            panel = self.panels.get(ref.action) if ref is not None else None
            if ref is not None and panel is not None:
                await panel(interaction, ref)
                return
            if ref is not None:
                if self.actions is None:
                    await interaction.response.send_message(
                        "I'm still starting up; please try again in a few seconds.", ephemeral=True
                    )
                    return
                await self.actions.handle(interaction, ref)
                return
        await self.process_application_commands(interaction)

    async def on_application_command_error(
        self, interaction: nextcord.Interaction[Any], exception: nextcord.ApplicationError
    ) -> None:
        """The one error handler for commands: our errors as their messages, anything else with a reference id."""
        cause = exception.original if isinstance(exception, nextcord.ApplicationInvokeError) else exception
        await report_failure(interaction, cause, doing="a command")

    async def on_error(self, event_method: str, *args: Any, **kwargs: Any) -> None:
        """An event cut short by a stop (the command sync of ``on_connect`` meeting a closed session) is not a
        failure: one line, no traceback. Anything else: nextcord's own report (the traceback in the log)."""
        if self._closing or self.is_closed():
            log.info("%s was cut short by the stop", event_method)
            return
        await super().on_error(event_method, *args, **kwargs)

    async def close(self) -> None:
        if not self._closing:
            self._closing = True
            if self._on_close is not None:
                try:
                    await self._on_close(self)
                except Exception:
                    log.exception("closing what runs behind the bot failed")
        await super().close()
