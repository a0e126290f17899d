"""``/animate image:<attachment> [prompt] [frames] [workflow]``: a video from any uploaded picture.

How it works: like ``/generate`` with a picture (``generate.py``). The gate of every command (``Limits.admit``,
in ``cog_application_command_check``) runs first; then, before answering, the video workflow that will run is
chosen once (``JobService.runnable``: the named one, or the video default, or the first of its fallbacks whose
models a healthy server has — a server without any video model is refused there, naming what is missing) and
named in the request, the attachment's metadata is checked (``check_attachment``) and the request is checked
against that workflow's manifest (``JobService.check``), so a prompt the workflow does not take (SVD) or frames
out of its bounds are an ephemeral first response and nothing is queued. Then it defers within Discord's 3
seconds (the deferred message becomes the job's live progress message), fetches the picture and submits.

nextcord evaluates the callbacks' annotations at runtime, so every name in them is imported for real.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import aiohttp
import nextcord
from nextcord import Interaction, SlashOption

from discomfy.bot.attachments import AttachmentInfo, check_attachment, fetch_image
from discomfy.bot.failures import delete_thinking, report_failure
from discomfy.bot.interactions import GatedCog, actor_of, interaction_ref
from discomfy.bot.render_job import escape_user_text
from discomfy.errors import BadInputError
from discomfy.jobs.admission import Limits
from discomfy.jobs.service import JobRequest, JobService
from discomfy.jobs.state import JobAction
from discomfy.workflows import Kind

log = logging.getLogger(__name__)


class AnimateCommand(GatedCog):
    def __init__(self, service: JobService, limits: Limits, session: aiohttp.ClientSession) -> None:
        self.service = service
        self.limits = limits
        self.session = session

    @nextcord.slash_command(name="animate", description="Make a short video from a picture, with live progress.")
    async def animate(
        self,
        interaction: Interaction[Any],
        image: nextcord.Attachment = SlashOption(description="The picture to animate"),
        prompt: str | None = SlashOption(
            description="The motion: what moves and how (workflows that take text)", required=False, max_length=1500
        ),
        frames: int | None = SlashOption(description="Number of frames", required=False, min_value=1, max_value=257),
        workflow: str | None = SlashOption(
            description="Which video workflow (default: the best available)", required=False
        ),
    ) -> None:
        try:
            await self._animate(interaction, image, workflow, {"prompt": prompt, "frames": frames})
        except Exception as exc:
            await report_failure(interaction, exc, doing="/animate")

    @animate.on_autocomplete("workflow")
    async def animate_workflow(self, interaction: Interaction[Any], workflow: str) -> None:
        names = [w.name for w in self.service.registry.for_guild(interaction.guild_id).of_kind(Kind.VIDEO)]
        typed = (workflow or "").lower()
        await interaction.response.send_autocomplete([n for n in names if typed in n.lower()][:25])

    async def _animate(
        self,
        interaction: Interaction[Any],
        image: nextcord.Attachment,
        workflow: str | None,
        options: dict[str, Any],
    ) -> None:
        actor = actor_of(interaction)
        names = [w.name for w in self.service.registry.for_guild(interaction.guild_id).of_kind(Kind.VIDEO)]
        if workflow is not None and workflow not in names:
            raise BadInputError(
                f"There is no video workflow called '{escape_user_text(workflow, 60)}'. "
                f"Pick one of: {', '.join(names) or 'none installed'}."
            )
        # once: what is checked is what runs
        chosen = self.service.runnable(Kind.VIDEO, workflow, guild_id=interaction.guild_id)
        request = JobRequest(
            owner_id=actor.user_id,
            guild_id=interaction.guild_id,
            channel_id=actor.channel_id,
            interaction=interaction_ref(interaction),
            workflow=chosen.name,
            kind=Kind.VIDEO,
            action=JobAction.ANIMATE,
            params={k: v for k, v in options.items() if v is not None and v != ""},
        )
        info = AttachmentInfo(image.filename, image.content_type, image.size, image.url)
        check_attachment(info)
        self.service.check(request, pictures=1)
        await interaction.response.defer()
        try:
            request = replace(request, inputs=(await fetch_image(self.session, info),))
            job = await self.service.submit(request, actor)
        except Exception:
            await delete_thinking(interaction)
            raise
        log.info("job %s queued for %s (%s, animate)", job.id, actor.user_id, job.workflow)
