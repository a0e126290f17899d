"""Commands about the studio and one's jobs: /help, /status, /jobs, /show.

How it works: every command here first passes ``cog_application_command_check`` (``Limits.admit``: the
channel and role allow-lists and the rate limit, the same gate as ``/generate`` and the buttons). ``/help`` and
``/status`` answer from what the bot already knows — the configured limits, the
server pool's last health check (``ServerPool`` tracks every server; nothing is probed from here), our own
queue's size. ``/jobs`` lists the asker's active jobs made in this guild (or this DM) with Cancel buttons
(their presses come back through ``actions.ResultActions`` by custom_id), the prompts escaped. ``/show`` posts
a finished result again through the one delivery path (``Delivery.post``), as this interaction's message, only
in the job's own guild (``check_place`` with the job).

nextcord evaluates the callbacks' annotations at runtime, so every name in them is imported for real.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nextcord
from nextcord import Interaction, SlashOption

from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.bot.delivery import Delivery
from discomfy.bot.editor import EditTarget, MessageEditor
from discomfy.bot.failures import report_failure
from discomfy.bot.interactions import GatedCog, actor_of
from discomfy.bot.render import ServerStatus, help_embed, message_link, status_embed
from discomfy.bot.render_job import escape_user_text
from discomfy.bot.rest import DiscordRest
from discomfy.comfy.pool import ServerPool
from discomfy.config import LimitSettings, redact_url
from discomfy.errors import UserError
from discomfy.jobs.admission import Limits, job_place_refusal
from discomfy.jobs.service import JobService
from discomfy.jobs.state import JobState
from discomfy.jobs.store import JobStore


class StudioCommands(GatedCog):
    def __init__(
        self,
        service: JobService,
        store: JobStore,
        pool: ServerPool,
        limits: Limits,
        limit_settings: LimitSettings,
        delivery: Delivery,
        rest: DiscordRest,
        *,
        uptime: Callable[[], float],
    ) -> None:
        self.rest = rest
        self.service = service
        self.store = store
        self.pool = pool
        self.limits = limits
        self.limit_settings = limit_settings
        self.delivery = delivery
        self.uptime = uptime

    @nextcord.slash_command(name="help", description="What discomfy does: commands, buttons and your limits.")
    async def help(self, interaction: Interaction[Any]) -> None:
        embed = nextcord.Embed.from_dict(help_embed(self.limit_settings))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @nextcord.slash_command(name="status", description="ComfyUI servers (up/down, version, queue) and our queue.")
    async def status(self, interaction: Interaction[Any]) -> None:
        try:
            servers = [
                ServerStatus(url=redact_url(s.url), up=True, version=s.version, queue_size=s.queue_size)
                if s.healthy
                else ServerStatus(url=redact_url(s.url), up=False, error="not reachable")  # details stay in the log
                for s in self.pool.servers
            ]
            queued = (await self.store.counts()).total
            embed = status_embed(servers, uptime_seconds=self.uptime(), queued_jobs=queued)
            await interaction.response.send_message(embed=nextcord.Embed.from_dict(embed), ephemeral=True)
        except Exception as exc:
            await report_failure(interaction, exc, doing="/status")

    @nextcord.slash_command(name="jobs", description="Your queued and running jobs, with Cancel buttons.")
    async def jobs(self, interaction: Interaction[Any]) -> None:
        try:
            actor = actor_of(interaction)
            # Only this guild's (or this DM's) jobs: their Cancel buttons work only where the job was made.
            mine = [
                job
                for job in await self.store.by_owner(actor.user_id, active_only=True)
                if job_place_refusal(actor, job) is None
            ]
            if not mine:
                await interaction.response.send_message("You have no queued or running jobs.", ephemeral=True)
                return
            lines: list[str] = []
            buttons: list[nextcord.ui.Button[Any]] = []
            for n, job in enumerate(mine[:20], start=1):
                where = message_link(job.guild_id, job.channel_id, job.message_id)
                place = self.service.position(job.id)
                state = f"waiting (#{place} in our queue)" if place else job.state.value
                prompt = escape_user_text(str(job.params.get("prompt") or job.workflow), 60)
                lines.append(f"**{n}.** {prompt} — {state}" + (f" · [message]({where})" if where else ""))
                if job.cancellable:
                    buttons.append(
                        nextcord.ui.Button(
                            label=f"Cancel {n}",
                            style=nextcord.ButtonStyle.danger,
                            custom_id=encode(ComponentAction.CANCEL, job.id),
                        )
                    )
            # Only a carrier for the buttons: their presses come to ``on_interaction`` by custom_id. A view nextcord
            # keeps (``prevent_update``) would answer every press itself with a deferred update (type 6) first.
            view = nextcord.ui.View(timeout=None, auto_defer=False, prevent_update=False)
            for button in buttons[:25]:
                view.add_item(button)
            embed = nextcord.Embed(title="Your jobs", description="\n".join(lines)[:4000])
            await interaction.response.send_message(embed=embed, view=view, ephemeral=True)
        except Exception as exc:
            await report_failure(interaction, exc, doing="/jobs")

    @nextcord.slash_command(name="show", description="Post a finished job's result here again, with its buttons.")
    async def show(
        self,
        interaction: Interaction[Any],
        job_id: str = SlashOption(description="The job id (in the result's footer)", max_length=64),
    ) -> None:
        try:
            job = await self.store.get(job_id.strip())
            self.limits.check_place(actor_of(interaction), job)
            if job.state is not JobState.DELIVERED:
                raise UserError(f"That job is {job.state.value}; only finished results can be shown.")
            await interaction.response.defer()
            editor = MessageEditor(
                self.rest,
                EditTarget(
                    channel_id=interaction.channel_id or job.channel_id,
                    message_id=None,
                    application_id=interaction.application_id,
                    token=interaction.token,
                    token_created_at=interaction.created_at.timestamp(),
                ),
            )
            try:
                await self.delivery.post(job, editor)
            finally:
                await editor.close()
        except Exception as exc:
            await report_failure(interaction, exc, doing="/show")
