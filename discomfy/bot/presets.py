"""``/preset``: save a result's workflow and settings under a name, run it again, list, share, unshare, delete.

How it works: every subcommand first passes ``cog_application_command_check`` (``Limits.admit``: the allow-lists and
the rate limit, as every command); presets belong to a server, so each also needs the interaction's guild (a
direct message is refused) and asks ``PresetStore`` (``jobs/presets.py``) only about that guild.

- ``/preset save name [job] [keep_seed]`` (and the "Save preset" button of a result's Info answer, handled in
  ``actions.py`` through ``save_result``): the job named by its id (any finished result of this server: Info shows
  its settings to anyone there), or the member's latest finished one here; its parameters without input pictures
  and, unless ``keep_seed``, without the seed (``preset_params``). The prompt is kept.
- ``/preset use name [prompt]``: the member's own preset of that name, else the one shared in this server; its
  workflow must still be installed (else a plain message naming it); its stored values, with the new prompt, go
  through ``JobService.check`` against the workflow's manifest as it is now, like ``/generate`` (a value now out
  of bounds is refused, naming the preset), then defer and ``JobService.submit``: a normal job with a live message.
- ``/preset list``: mine and those shared here, escaped, capped (``render_presets.py``).
- ``/preset share`` / ``unshare`` / ``delete``: the owner's own preset; ``delete`` also takes a preset shared in
  this server from a member with Manage Server (checked here, from the interaction's permissions).
- The ``name`` autocompletes list the member's presets here (and for ``use`` the shared ones); they pass the
  allow-lists too (an autocomplete cannot show a refusal, so a refused one offers nothing).

nextcord evaluates the callbacks' annotations at runtime, so every name in them is imported for real.

Never: show or use a preset of another guild (the store is asked with this interaction's guild only); echo what
a member typed unescaped; run a stored value without checking it against the manifest in force.
"""

from __future__ import annotations

import logging
from typing import Any

import nextcord
from nextcord import Interaction, SlashOption

from discomfy.bot.failures import delete_thinking, report_failure
from discomfy.bot.interactions import GatedCog, actor_of, interaction_ref
from discomfy.bot.render_job import escape_user_text
from discomfy.bot.render_presets import presets_embed, saved_words
from discomfy.errors import BadInputError, PermissionDeniedError, UserError
from discomfy.jobs.admission import Actor, Limits
from discomfy.jobs.presets import MAX_LISTED, MAX_NAME, Preset, PresetStore, preset_name, preset_params, shown_name
from discomfy.jobs.service import JobRequest, JobService
from discomfy.jobs.state import JOB_ID_SHAPE, GuildId, Job, JobAction, JobState
from discomfy.jobs.store import JobStore

log = logging.getLogger(__name__)

#: A job id as ``state.new_job_id`` makes them (UUID4 hex); anything else is refused before the store is asked.


def guild_of(interaction: Interaction[Any]) -> GuildId:
    """The server a preset command is about; presets belong to one, so a direct message is refused."""
    if not interaction.guild_id:
        raise UserError("Presets belong to a server: use `/preset` there.")
    return GuildId(interaction.guild_id)


def manages_server(interaction: Interaction[Any]) -> bool:
    """Discord's Manage Server permission, from the interaction's own ``member.permissions``."""
    permissions = interaction.permissions
    return bool(interaction.guild_id and permissions and permissions.manage_guild)


def workflow_gone(preset: Preset) -> UserError:
    return UserError(
        f"The preset {shown_name(preset.name)} uses the workflow '{escape_user_text(preset.workflow, 60)}', "
        "which is not installed any more. `/workflow list` shows the workflows there are; "
        "save a new preset from a fresh result, and delete this one with `/preset delete`."
    )


async def save_result(
    service: JobService, presets: PresetStore, actor: Actor, job: Job, name: str, *, keep_seed: bool
) -> Preset:
    """A preset of ``actor``'s from the finished ``job`` (already checked to be of the actor's guild)."""
    name = preset_name(name)
    if actor.guild_id is None or job.guild_id != actor.guild_id:
        raise PermissionDeniedError("Presets are made from results of this server, in this server.")
    if job.state is not JobState.DELIVERED:
        raise UserError(f"That job is {job.state.value}; only a finished result can become a preset.")
    workflow = service.registry.for_guild(actor.guild_id).find(job.workflow)
    if workflow is None:
        raise UserError(
            f"That result's workflow '{escape_user_text(job.workflow, 60)}' is not installed any more, "
            "so it can't become a preset. `/workflow list` shows the workflows there are."
        )
    params = preset_params(job, workflow, keep_seed=keep_seed)
    most = service.settings.limits.max_presets_per_user
    guild_id, owner_id = actor.guild_id, actor.user_id
    preset = await presets.save(guild_id, owner_id, name, workflow.name, params, most=most, source_job=job.id)
    log.info("preset %d saved by %s in guild %s from job %s", preset.id, actor.user_id, actor.guild_id, job.id)
    return preset


class PresetCommands(GatedCog):
    def __init__(self, service: JobService, presets: PresetStore, store: JobStore, limits: Limits) -> None:
        self.service = service
        self.presets = presets
        self.store = store
        self.limits = limits

    @nextcord.slash_command(name="preset", description="Saved settings: save, use, list, share and delete presets.")
    async def preset(self, interaction: Interaction[Any]) -> None:
        """Never called: Discord runs the subcommands."""

    @preset.subcommand(name="save", description="Keep a result's workflow and settings under a name.")
    async def save(
        self,
        interaction: Interaction[Any],
        name: str = SlashOption(description="Letters, digits, spaces, - _ .", max_length=MAX_NAME),
        job: str | None = SlashOption(
            description="The job id (in the result's footer or Info); default: your latest result here",
            required=False,
            max_length=64,
        ),
        keep_seed: bool | None = SlashOption(
            description="Keep the seed too (default: a new one each time)", required=False
        ),
    ) -> None:
        try:
            actor = actor_of(interaction)
            guild_id = guild_of(interaction)
            preset_name(name)  # a bad name is refused before anything is read
            if job is not None and job.strip():
                if not JOB_ID_SHAPE.fullmatch(job.strip()):
                    raise BadInputError(
                        "That is not a job id: it is the 32 letters and digits after 'job' in a result's footer."
                    )
                source = await self.store.get(job.strip())
                self.limits.check_place(actor, source)
            else:
                found = await self.presets.latest_result(guild_id, actor.user_id)
                if found is None:
                    raise UserError(
                        "You have no finished result in this server yet: make one with `/generate`, "
                        "or give a job id (it is in a result's footer)."
                    )
                source = found
            preset = await save_result(self.service, self.presets, actor, source, name, keep_seed=bool(keep_seed))
            await interaction.response.send_message(saved_words(preset), ephemeral=True)
        except Exception as exc:
            await report_failure(interaction, exc, doing="/preset save")

    @preset.subcommand(name="use", description="Run a preset (yours or one shared here), perhaps with a new prompt.")
    async def use(
        self,
        interaction: Interaction[Any],
        name: str = SlashOption(description="The preset", max_length=MAX_NAME, autocomplete=True),
        prompt: str | None = SlashOption(
            description="A new prompt (default: the preset's)", required=False, max_length=2000
        ),
    ) -> None:
        try:
            await self._use(interaction, name, prompt)
        except Exception as exc:
            await report_failure(interaction, exc, doing="/preset use")

    async def _use(self, interaction: Interaction[Any], name: str, prompt: str | None) -> None:
        actor = actor_of(interaction)
        guild_id = guild_of(interaction)
        preset = await self.presets.usable(guild_id, actor.user_id, name)
        if preset is None:
            raise UserError(
                f"There is no preset called {shown_name(name)} of yours or shared in this server; "
                "`/preset list` shows them."
            )
        workflow = self.service.registry.for_guild(guild_id).find(preset.workflow)  # never another server's upload
        if workflow is None:
            raise workflow_gone(preset)
        params = dict(preset.params)
        if prompt is not None and prompt.strip():
            if "prompt" not in workflow.params:
                shown = escape_user_text(workflow.name, 60)
                raise BadInputError(f"The {shown} workflow of this preset takes no prompt; leave the prompt empty.")
            most = self.service.settings.limits.max_prompt_length
            if len(prompt.strip()) > most:
                raise BadInputError(f"The prompt is {len(prompt.strip())} characters; the most is {most}.")
            params["prompt"] = prompt.strip()
        request = JobRequest(
            owner_id=actor.user_id,
            guild_id=guild_id,
            channel_id=actor.channel_id,
            interaction=interaction_ref(interaction),
            workflow=workflow.name,
            kind=workflow.kind,
            action=JobAction.GENERATE,
            params=params,
        )
        try:
            self.service.check(request, pictures=0)
        except BadInputError as exc:
            raise BadInputError(
                f"The preset {shown_name(preset.name)} no longer fits the {escape_user_text(workflow.name, 60)} "
                f"workflow as it is now: {exc.user_message} Save a new preset from a fresh result."
            ) from exc
        await interaction.response.defer()
        try:
            job = await self.service.submit(request, actor)
        except Exception:
            await delete_thinking(interaction)
            raise
        log.info("job %s queued for %s from preset %d", job.id, actor.user_id, preset.id)

    @preset.subcommand(name="list", description="Your presets and those shared in this server.")
    async def list_presets(self, interaction: Interaction[Any]) -> None:
        try:
            actor = actor_of(interaction)
            mine, shared = await self.presets.visible(guild_of(interaction), actor.user_id)
            most = self.service.settings.limits.max_presets_per_user
            embed = nextcord.Embed.from_dict(presets_embed(mine, shared, most=most))
            await interaction.response.send_message(embed=embed, ephemeral=True)
        except Exception as exc:
            await report_failure(interaction, exc, doing="/preset list")

    @preset.subcommand(name="share", description="Let everyone in this server use one of your presets.")
    async def share(
        self,
        interaction: Interaction[Any],
        name: str = SlashOption(description="Your preset", max_length=MAX_NAME, autocomplete=True),
    ) -> None:
        await self._set_shared(interaction, name, True)

    @preset.subcommand(name="unshare", description="Stop sharing one of your presets with this server.")
    async def unshare(
        self,
        interaction: Interaction[Any],
        name: str = SlashOption(description="Your preset", max_length=MAX_NAME, autocomplete=True),
    ) -> None:
        await self._set_shared(interaction, name, False)

    async def _set_shared(self, interaction: Interaction[Any], name: str, shared: bool) -> None:
        try:
            actor = actor_of(interaction)
            preset = await self.presets.set_shared(guild_of(interaction), actor.user_id, name, shared)
            shown = escape_user_text(preset.name, 40)
            text = (
                f"**{shown}** is shared: anyone here can run it with `/preset use`."
                if shared
                else f"**{shown}** is yours alone again."
            )
            await interaction.response.send_message(text, ephemeral=True)
        except Exception as exc:
            await report_failure(interaction, exc, doing="/preset share")

    @preset.subcommand(name="delete", description="Delete one of your presets (Manage Server: a shared one).")
    async def delete(
        self,
        interaction: Interaction[Any],
        name: str = SlashOption(description="The preset", max_length=MAX_NAME, autocomplete=True),
    ) -> None:
        try:
            actor = actor_of(interaction)
            guild_id = guild_of(interaction)
            preset = await self.presets.delete(guild_id, actor.user_id, name, as_admin=manages_server(interaction))
            whose = "" if preset.owner_id == actor.user_id else f" (shared by <@{preset.owner_id}>)"
            log.info("preset %d deleted by %s in guild %s", preset.id, actor.user_id, guild_id)
            await interaction.response.send_message(
                f"Deleted the preset **{escape_user_text(preset.name, 40)}**{whose}.", ephemeral=True
            )
        except Exception as exc:
            await report_failure(interaction, exc, doing="/preset delete")

    # -- autocomplete --------------------------------------------------------------------------------------

    @use.on_autocomplete("name")
    async def use_names(self, interaction: Interaction[Any], name: str) -> None:
        await self._complete(interaction, name, shared=True)

    @share.on_autocomplete("name")
    async def share_names(self, interaction: Interaction[Any], name: str) -> None:
        await self._complete(interaction, name, shared=False)

    @unshare.on_autocomplete("name")
    async def unshare_names(self, interaction: Interaction[Any], name: str) -> None:
        await self._complete(interaction, name, shared=False)

    @delete.on_autocomplete("name")
    async def delete_names(self, interaction: Interaction[Any], name: str) -> None:
        await self._complete(interaction, name, shared=manages_server(interaction))

    async def _complete(self, interaction: Interaction[Any], typed: str | None, *, shared: bool) -> None:
        """The member's preset names here (and the shared ones), containing what was typed; nothing when refused
        (outside the allow-lists, a direct message) or when the store fails (logged)."""
        names: list[str] = []
        try:
            actor = actor_of(interaction)
            self.limits.check_place(actor)
            if interaction.guild_id:
                guild_id = GuildId(interaction.guild_id)
                names = await self.presets.matching(guild_id, actor.user_id, typed or "", shared=shared)
        except UserError:
            names = []
        except Exception:
            log.exception("preset autocomplete failed")
            names = []
        await interaction.response.send_autocomplete(names[:MAX_LISTED])
