"""``/generate``: a prompt (and options, and perhaps a picture) becomes a job whose message comes alive.

How it works: the handler reads who is asking (``actor_of``) and runs the cheap checks *before* answering — the
place, role and rate limit (``Limits.admit``, in ``cog_application_command_check``, the gate every command passes),
a workflow name that is not installed (refused with the name escaped), the attachment's metadata, and the request
against the workflow's manifest (``JobService.check``: the one definition of what a request may ask) — so a refusal
is an ephemeral first response and nothing is queued. Then it defers within Discord's 3 seconds; the deferred
message becomes the job's live progress message. A refusal met after deferring (a cap reached meanwhile, a picture
that turns out unreadable) deletes the "thinking…" message and says why ephemerally.

nextcord evaluates the callbacks' annotations at runtime, so every name in them is imported for real. The
option bounds registered with Discord are the union of the image workflows' manifests (``fit_to``); the chosen
workflow's own bounds are enforced by ``check``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
from discomfy.workflows import Kind, Workflow

log = logging.getLogger(__name__)

#: /generate's numeric options whose registered bounds follow the loaded image workflows' manifests.
BOUNDED_OPTIONS = ("width", "height", "steps", "cfg", "batch")


class GenerateCommand(GatedCog):
    def __init__(self, service: JobService, limits: Limits, session: aiohttp.ClientSession) -> None:
        self.service = service
        self.limits = limits
        self.session = session

    @nextcord.slash_command(name="generate", description="Make pictures from a prompt, with live progress.")
    async def generate(
        self,
        interaction: Interaction[Any],
        prompt: str = SlashOption(description="What to draw", max_length=2000),
        negative: str | None = SlashOption(description="What to keep out", required=False, max_length=2000),
        workflow: str | None = SlashOption(description="Which workflow (default: the server's)", required=False),
        width: int | None = SlashOption(description="Width in pixels", required=False, min_value=64, max_value=4096),
        height: int | None = SlashOption(description="Height in pixels", required=False, min_value=64, max_value=4096),
        steps: int | None = SlashOption(description="Sampling steps", required=False, min_value=1, max_value=500),
        cfg: float | None = SlashOption(
            description="Prompt strength (CFG)", required=False, min_value=0, max_value=100
        ),
        seed: int | None = SlashOption(description="Seed (empty: random)", required=False, min_value=0),
        batch: int | None = SlashOption(description="How many pictures", required=False, min_value=1, max_value=16),
        image: nextcord.Attachment | None = SlashOption(description="An input picture", required=False),
    ) -> None:
        options = {
            "prompt": prompt,
            "negative": negative,
            "width": width,
            "height": height,
            "steps": steps,
            "cfg": cfg,
            "seed": seed,
            "batch": batch,
        }
        try:
            await self._generate(interaction, workflow, options, image)
        except Exception as exc:
            await report_failure(interaction, exc, doing="/generate")

    @generate.on_autocomplete("workflow")
    async def generate_workflow(self, interaction: Interaction[Any], workflow: str) -> None:
        names = [w.name for w in self.service.registry.for_guild(interaction.guild_id).of_kind(Kind.IMAGE)]
        typed = (workflow or "").lower()
        await interaction.response.send_autocomplete([n for n in names if typed in n.lower()][:25])

    async def _generate(
        self,
        interaction: Interaction[Any],
        workflow: str | None,
        options: dict[str, Any],
        image: nextcord.Attachment | None,
    ) -> None:
        actor = actor_of(interaction)
        names = [w.name for w in self.service.registry.for_guild(interaction.guild_id).of_kind(Kind.IMAGE)]
        if workflow is not None and workflow not in names:
            raise BadInputError(
                f"There is no image workflow called '{escape_user_text(workflow, 60)}'. "
                f"Pick one of: {', '.join(names) or 'none installed'}."
            )
        request = JobRequest(
            owner_id=actor.user_id,
            guild_id=interaction.guild_id,
            channel_id=actor.channel_id,
            interaction=interaction_ref(interaction),
            workflow=workflow,
            kind=Kind.IMAGE,
            action=JobAction.GENERATE,
            params={k: v for k, v in options.items() if v is not None},
        )
        info = None
        if image is not None:
            info = AttachmentInfo(image.filename, image.content_type, image.size, image.url)
            check_attachment(info)
        self.service.check(request, pictures=int(info is not None))
        await interaction.response.defer()
        try:
            if info is not None:
                request = replace(request, inputs=(await fetch_image(self.session, info),))
            job = await self.service.submit(request, actor)
        except Exception:
            await delete_thinking(interaction)
            raise
        log.info("job %s queued for %s (%s)", job.id, actor.user_id, job.workflow)

    def fit_to(self, workflows: Sequence[Workflow]) -> None:
        """Register ``/generate``'s bounds from the manifests, so Discord itself offers the allowed range.

        Across several image workflows the union of their ranges is registered (a value one workflow allows must
        not be blocked by Discord); the chosen workflow's own bounds are enforced when the job is checked. The
        description gains the default workflow's default ("Sampling steps (20 by default)"). Call it before the
        commands are registered (on connect).
        """
        command: Any = next((c for c in self.application_commands if c.name == "generate"), None)
        if command is None:
            return
        default = next((w for w in workflows if w.default), workflows[0] if workflows else None)
        for name in BOUNDED_OPTIONS:
            option = command.options.get(name)
            params = [w.params[name] for w in workflows if name in w.params]
            if option is None or not params:
                continue
            lows = [p.minimum for p in params if p.minimum is not None]
            highs = [p.maximum for p in params if p.maximum is not None]
            cast = float if option.payload.get("type") == 10 else int
            option.min_value = cast(min(lows)) if len(lows) == len(params) else None
            option.max_value = cast(max(highs)) if len(highs) == len(params) else None
            base = option.description.split(" (")[0]
            own = default.params.get(name) if default is not None else None
            if own is not None and own.default is not None:
                option.description = f"{base} ({own.default} by default)"
