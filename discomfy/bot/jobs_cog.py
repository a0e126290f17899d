"""Slash commands that make and manage jobs: /generate, /jobs, /show.

How it works: every handler reads who is asking (``actor_of``), runs the cheap checks (channel / role, rate
limit, the attachment's metadata, the values against the workflow's manifest) *before* answering, so a refusal
is an ephemeral first response and nothing is queued; then it defers within Discord's 3 seconds, and the
deferred message becomes the job's live progress message, edited by the observer's ``MessageEditor``.
A refusal met after deferring (a cap reached meanwhile, a picture that turns out unreadable) deletes the
"thinking…" message and says why ephemerally. Buttons and modals are in ``components.py``.

nextcord evaluates the callbacks' annotations at runtime, so every name in them is imported for real; option
bounds registered with Discord are broad, the manifest of the chosen workflow is what is enforced (``bind``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import nextcord
from nextcord import Interaction, SlashOption

from discomfy.bot.attachments import AttachmentInfo, check_attachment, fetch_image
from discomfy.bot.client import DiscomfyBot
from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.bot.failures import delete_thinking, report_failure
from discomfy.bot.limits import Actor
from discomfy.bot.render import truncate
from discomfy.comfy.engine import InputImage
from discomfy.errors import BadInputError, UserError
from discomfy.jobs.service import JobRequest
from discomfy.jobs.state import ApplicationId, ChannelId, InteractionRef, Job, JobAction, JobState, UserId
from discomfy.workflows import Kind, ParamType, Workflow, bind

log = logging.getLogger(__name__)


def actor_of(interaction: Interaction[Any]) -> Actor:
    user = interaction.user
    roles = frozenset(role.id for role in getattr(user, "roles", ()) if role is not None)
    permissions = interaction.permissions
    return Actor(
        user_id=UserId(user.id if user else 0),
        channel_id=ChannelId(interaction.channel_id or 0),
        role_ids=roles,
        can_manage_messages=bool(permissions and permissions.manage_messages),
    )


def interaction_ref(interaction: Interaction[Any]) -> InteractionRef:
    return InteractionRef(
        application_id=ApplicationId(interaction.application_id),
        token=interaction.token,
        created_at=interaction.created_at.timestamp(),
    )


def message_link(guild_id: int | None, channel_id: int, message_id: int | None) -> str | None:
    if message_id is None:
        return None
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


#: /generate's numeric options whose registered bounds follow the loaded image workflows' manifests.
BOUNDED_OPTIONS = ("width", "height", "steps", "cfg", "batch")


def fit_generate_options(command: Any, workflows: list[Workflow]) -> None:
    """Register ``/generate``'s bounds from the manifests, so Discord itself offers the allowed range.

    Across several image workflows the union of their ranges is registered (a value one workflow allows must
    not be blocked by Discord); the chosen workflow's own bounds are enforced when the job is bound. The
    description gains the default workflow's default ("Sampling steps (20 by default)").
    """
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


class JobCommands(nextcord.ClientCog):
    def __init__(self, bot: DiscomfyBot) -> None:
        self.bot = bot

    @nextcord.slash_command(name="generate", description="Make pictures from a prompt, with live progress.")
    async def generate(
        self,
        interaction: Interaction[DiscomfyBot],
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
        try:
            await self._generate(
                interaction,
                workflow,
                {
                    "prompt": prompt,
                    "negative": negative,
                    "width": width,
                    "height": height,
                    "steps": steps,
                    "cfg": cfg,
                    "seed": seed,
                    "batch": batch,
                },
                image,
            )
        except Exception as exc:
            await self._refuse(interaction, exc, doing="/generate")

    @generate.on_autocomplete("workflow")
    async def generate_workflow(self, interaction: Interaction[DiscomfyBot], workflow: str) -> None:
        services = self.bot.services
        names = [w.name for w in services.registry.of_kind(Kind.IMAGE)] if services else []
        typed = (workflow or "").lower()
        await interaction.response.send_autocomplete([n for n in names if typed in n.lower()][:25])

    async def _generate(
        self,
        interaction: Interaction[DiscomfyBot],
        workflow_name: str | None,
        options: dict[str, Any],
        image: nextcord.Attachment | None,
    ) -> None:
        services = self.bot.require_services()
        actor = actor_of(interaction)
        services.limits.admit(actor, time.time())
        image_workflows = [w.name for w in services.registry.of_kind(Kind.IMAGE)]
        if workflow_name and workflow_name not in image_workflows:
            raise BadInputError(
                f"There is no image workflow called '{truncate(workflow_name, 60)}'. "
                f"Pick one of: {', '.join(image_workflows) or 'none installed'}."
            )
        workflow = services.registry.get(workflow_name) if workflow_name else services.registry.default(Kind.IMAGE)
        if workflow is None:
            raise UserError("No image workflow is installed; ask an admin to add one.")
        if workflow.kind is not Kind.IMAGE:
            raise BadInputError(f"The {workflow.name} workflow makes {workflow.kind.value}; /generate makes images.")
        params = {k: v for k, v in options.items() if v is not None and k in workflow.params}
        ignored = sorted(k for k, v in options.items() if v is not None and k not in workflow.params)
        if ignored:
            raise BadInputError(
                f"The {workflow.name} workflow has no '{ignored[0]}' option; it takes: {', '.join(workflow.params)}."
            )
        if len(options["prompt"]) > services.settings.limits.max_prompt_length:
            raise BadInputError(
                f"The prompt is {len(options['prompt'])} characters; the most is "
                f"{services.settings.limits.max_prompt_length}."
            )
        image_params = [p.name for p in workflow.params.values() if p.type is ParamType.IMAGE]
        info = None
        if image is not None:
            if not image_params:
                raise BadInputError(f"The {workflow.name} workflow takes no picture; leave the image option empty.")
            info = AttachmentInfo(image.filename, image.content_type, image.size, image.url)
            check_attachment(info)
            params[image_params[0]] = "discomfy/placeholder.png"
        elif any(workflow.params[name].required for name in image_params):
            raise BadInputError(f"The {workflow.name} workflow needs a picture: add one with the image option.")
        bind(workflow, params, services.settings.models)  # the manifest's bounds, checked before we answer
        await interaction.response.defer()
        try:
            inputs: tuple[InputImage, ...] = ()
            if info is not None:
                picture = await fetch_image(self.bot.session, info)
                params[image_params[0]] = picture.load_image_value
                inputs = (picture,)
            await self.submit(interaction, actor, workflow.name, Kind.IMAGE, JobAction.GENERATE, params, inputs)
        except Exception:
            await delete_thinking(interaction)
            raise

    async def submit(
        self,
        interaction: Interaction[DiscomfyBot],
        actor: Actor,
        workflow: str | None,
        kind: Kind,
        action: JobAction,
        params: dict[str, Any],
        inputs: tuple[InputImage, ...] = (),
        *,
        parent_id: str | None = None,
        source_index: int | None = None,
        reply_to: int | None = None,
    ) -> Job:
        """Queue a job. Its progress message is this (already deferred) interaction's response, or, with
        ``reply_to``, a message the bot posts as a reply to that message (actions on a result)."""
        services = self.bot.require_services()
        job = await services.service.submit(
            JobRequest(
                owner_id=actor.user_id,
                guild_id=interaction.guild_id,
                channel_id=actor.channel_id,
                interaction=None if reply_to is not None else interaction_ref(interaction),
                workflow=workflow,
                kind=kind,
                action=action,
                params=params,
                parent_id=parent_id,
                source_index=source_index,
                inputs=inputs,
            ),
            actor,
        )
        if reply_to is not None:
            # Set before this task yields: the job's first progress (another task) then finds it.
            services.observer.reply_to[job.id] = reply_to
        log.info("job %s queued for %s (%s)", job.id, actor.user_id, job.workflow)
        return job

    @nextcord.slash_command(name="jobs", description="Your queued and running jobs, with Cancel buttons.")
    async def jobs(self, interaction: Interaction[DiscomfyBot]) -> None:
        try:
            services = self.bot.require_services()
            actor = actor_of(interaction)
            mine = await services.store.by_owner(actor.user_id, active_only=True)
            if not mine:
                await interaction.response.send_message("You have no queued or running jobs.", ephemeral=True)
                return
            lines: list[str] = []
            buttons: list[nextcord.ui.Button[Any]] = []
            for n, job in enumerate(mine[:20], start=1):
                where = message_link(job.guild_id, job.channel_id, job.message_id)
                place = services.service.position(job.id)
                state = f"waiting (#{place} in our queue)" if place else job.state.value
                prompt = truncate(str(job.params.get("prompt") or job.workflow), 60)
                lines.append(f"**{n}.** {prompt} — {state}" + (f" · [message]({where})" if where else ""))
                if job.state in (JobState.WAITING, JobState.SUBMITTING, JobState.QUEUED, JobState.RUNNING):
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
            await self._refuse(interaction, exc, doing="/jobs")

    @nextcord.slash_command(name="show", description="Post a finished job's result here again, with its buttons.")
    async def show(
        self,
        interaction: Interaction[DiscomfyBot],
        job_id: str = SlashOption(description="The job id (in the result's footer)", max_length=64),
    ) -> None:
        try:
            services = self.bot.require_services()
            services.limits.admit(actor_of(interaction), time.time())
            job = await services.store.get(job_id.strip())
            if job.state is not JobState.DELIVERED:
                raise UserError(f"That job is {job.state.value}; only finished results can be shown.")
            await interaction.response.defer()
            from discomfy.bot.components import repost_result  # components imports this module

            await repost_result(self.bot, interaction, job)
        except Exception as exc:
            await self._refuse(interaction, exc, doing="/show")

    async def _refuse(self, interaction: Interaction[DiscomfyBot], exc: Exception, *, doing: str) -> None:
        await report_failure(interaction, exc, doing=doing)
