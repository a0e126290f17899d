"""Buttons and modals on progress and result messages: Cancel, Upscale, Animate, Reroll, Edit prompt, Info, Delete.

How it works: every component carries a custom_id ``dc1:<action>:<job id>[:<output>]`` (``custom_ids.py``), so a
press is understood from the custom_id and the job's row alone — buttons work forever, also after restarts,
without registering a view per message. ``DiscomfyBot.on_interaction`` hands every component press and modal
submit whose custom_id is ours to ``handle_component``. Anyone may press Upscale, Animate, Reroll, Edit and Info
(rate-limited); Cancel and Delete are checked here, on our side, against the job's owner or Manage Messages.
An action that starts a job answers with a new (deferred) message that becomes the new job's progress message;
its source image is read from our output store or, if that file was evicted, from the Discord attachment.

Never: trust that a button was hidden from someone (always check), or answer later than Discord's 3 seconds
(defer first when work follows).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import nextcord
from nextcord import Interaction

from discomfy.bot.attachments import MAX_INPUT_BYTES, download, to_input_image
from discomfy.bot.custom_ids import ComponentAction, ComponentRef, encode
from discomfy.bot.editor import EditTarget, MessageEditor
from discomfy.bot.failures import delete_thinking, report_failure
from discomfy.bot.jobs_cog import actor_of, message_link
from discomfy.bot.observer import output_filename
from discomfy.bot.render import truncate
from discomfy.bot.render_job import render_result
from discomfy.comfy.engine import UPLOAD_SUBFOLDER, InputImage
from discomfy.errors import BadInputError, UserError
from discomfy.jobs.state import Job, JobAction, JobState
from discomfy.media.fit import fit_for_discord
from discomfy.workflows import Kind, ParamType, bind

if TYPE_CHECKING:
    from discomfy.bot.client import DiscomfyBot

log = logging.getLogger(__name__)

#: Modal text inputs: (custom_id, label, placeholder / default, max length).
UPSCALE_FIELDS = (("scale", "Upscale factor (1–4)", "2", 4),)
ANIMATE_FIELDS = (
    ("frames", "Frames (1–25)", "14", 3),
    ("motion", "Motion amount (1–255)", "127", 3),
    ("strength", "Change from the picture (0–1)", "0.0", 4),
)
#: Stands in for an input picture not fetched yet, when values are checked before answering.
PLACEHOLDER_IMAGE = f"{UPLOAD_SUBFOLDER}/placeholder.png"
UPLOAD_PREFIX = f"{UPLOAD_SUBFOLDER}/"
STARTS_JOB = {ComponentAction.UPSCALE, ComponentAction.ANIMATE, ComponentAction.REROLL, ComponentAction.EDIT}


async def handle_component(bot: DiscomfyBot, interaction: Interaction[Any], ref: ComponentRef) -> None:
    try:
        if interaction.type is nextcord.InteractionType.modal_submit:
            await _modal_submitted(bot, interaction, ref, modal_values(interaction.data))
        else:
            await _pressed(bot, interaction, ref)
    except Exception as exc:
        await report_failure(interaction, exc, doing=f"the {ref.action} button")


def modal_values(data: Any) -> dict[str, str]:
    """A modal submit's text inputs, by custom_id (rows of components, each with ``custom_id`` and ``value``)."""
    values: dict[str, str] = {}
    rows = data.get("components") if isinstance(data, Mapping) else None
    for row in rows or []:
        for item in row.get("components", []) if isinstance(row, Mapping) else []:
            if isinstance(item, Mapping) and isinstance(item.get("custom_id"), str):
                values[item["custom_id"]] = str(item.get("value") or "")
    return values


async def _pressed(bot: DiscomfyBot, interaction: Interaction[Any], ref: ComponentRef) -> None:
    services = bot.require_services()
    actor = actor_of(interaction)
    job = await services.store.get(ref.job_id)
    if ref.action is ComponentAction.CANCEL:
        await interaction.response.defer(ephemeral=True, with_message=True)
        ended = await services.service.cancel(job.id, actor)
        text = {
            JobState.CANCELLED: "Cancelled.",
            JobState.DELIVERED: "Too late: it had already finished.",
        }.get(ended.state, f"It is {ended.state.value} now.")
        await interaction.followup.send(text, ephemeral=True)
        return
    if ref.action is ComponentAction.DELETE:
        services.limits.check_owner_or_moderator(actor, job.owner_id, doing="delete this result")
        if not job.terminal:
            raise UserError("This job is still running; cancel it first.")
        message = interaction.message
        await interaction.response.defer(ephemeral=True, with_message=True)
        if message is not None:
            await message.delete()
        await interaction.followup.send("Deleted.", ephemeral=True)
        return
    opens_form = ref.action in (ComponentAction.UPSCALE, ComponentAction.ANIMATE, ComponentAction.EDIT)
    services.limits.admit(actor, time.time(), count=not opens_form)
    if ref.action is ComponentAction.INFO:
        await interaction.response.send_message(embed=nextcord.Embed.from_dict(info_embed(job)), ephemeral=True)
    elif ref.action is ComponentAction.UPSCALE:
        await _send_modal(interaction, _modal("Upscale", ref, UPSCALE_FIELDS))
    elif ref.action is ComponentAction.ANIMATE:
        await _send_modal(interaction, _modal("Animate", ref, ANIMATE_FIELDS))
    elif ref.action is ComponentAction.EDIT:
        prompt = str(job.params.get("prompt") or "")
        fields = (("prompt", "Prompt", prompt, 1500),)
        await _send_modal(interaction, _modal("Edit prompt", ref, fields, prefill=True))
    elif ref.action is ComponentAction.REROLL:
        params = {k: v for k, v in job.params.items() if k != "seed"}
        await _start(bot, interaction, job, JobAction.REROLL, job.workflow, _kind(job), params)


async def _modal_submitted(
    bot: DiscomfyBot, interaction: Interaction[Any], ref: ComponentRef, values: dict[str, str]
) -> None:
    services = bot.require_services()
    job = await services.store.get(ref.job_id)
    services.limits.admit(actor_of(interaction), time.time())
    if ref.action is ComponentAction.UPSCALE:
        params: dict[str, Any] = {"scale": values.get("scale", "").strip() or "2"}
        await _start_from_output(bot, interaction, job, ref, JobAction.UPSCALE, Kind.UPSCALE, params)
    elif ref.action is ComponentAction.ANIMATE:
        params = {k: values[k].strip() for k in ("frames", "motion", "strength") if values.get(k, "").strip()}
        await _start_from_output(bot, interaction, job, ref, JobAction.ANIMATE, Kind.VIDEO, params)
    elif ref.action is ComponentAction.EDIT:
        prompt = values.get("prompt", "").strip()
        if not prompt:
            raise BadInputError("The prompt can't be empty.")
        params = {**job.params, "prompt": prompt}
        await _start(bot, interaction, job, JobAction.EDIT, job.workflow, _kind(job), params)
    else:
        raise UserError("That form is not one of ours any more.")


async def _start_from_output(
    bot: DiscomfyBot,
    interaction: Interaction[Any],
    job: Job,
    ref: ComponentRef,
    action: JobAction,
    kind: Kind,
    params: dict[str, Any],
) -> None:
    # DELIVERING too: the result message (and so this button) is up a moment before the row says delivered.
    if job.state not in (JobState.DELIVERING, JobState.DELIVERED) or ref.index is None:
        raise UserError("That result is not available any more.")
    services = bot.require_services()
    workflow = services.registry.default(kind)
    if workflow is None:
        raise UserError(f"No {kind.value} workflow is installed; ask an admin to add one.")
    image_param = next((p.name for p in workflow.params.values() if p.type is ParamType.IMAGE), "image")
    _check_values(bot, workflow.name, {**params, image_param: PLACEHOLDER_IMAGE})
    await interaction.response.defer(ephemeral=True, with_message=True)
    try:
        picture = await source_image(bot, job, ref.index)
        params[image_param] = picture.load_image_value
        started = await bot.job_commands.submit(
            interaction,
            actor_of(interaction),
            None,
            kind,
            action,
            params,
            (picture,),
            parent_id=job.id,
            source_index=ref.index,
            reply_to=_source_message(interaction, job),
        )
    except Exception:
        await delete_thinking(interaction)
        raise
    await _acknowledge(interaction, started)


async def _start(
    bot: DiscomfyBot,
    interaction: Interaction[Any],
    job: Job,
    action: JobAction,
    workflow: str,
    kind: Kind,
    params: dict[str, Any],
) -> None:
    _check_values(bot, workflow, params)
    await interaction.response.defer(ephemeral=True, with_message=True)
    try:
        inputs: tuple[InputImage, ...] = ()
        if job.parent_id is not None and job.source_index is not None:
            parent = await bot.require_services().store.get(job.parent_id)
            inputs = (await source_image(bot, parent, job.source_index),)
        started = await bot.job_commands.submit(
            interaction,
            actor_of(interaction),
            workflow,
            kind,
            action,
            params,
            inputs,
            parent_id=job.parent_id,
            source_index=job.source_index,
            reply_to=_source_message(interaction, job),
        )
    except Exception:
        await delete_thinking(interaction)
        raise
    await _acknowledge(interaction, started)


def _source_message(interaction: Interaction[Any], job: Job) -> int | None:
    """The result the button was on: the new job's progress message replies to it."""
    return interaction.message.id if interaction.message is not None else job.message_id


async def _acknowledge(interaction: Interaction[Any], job: Job) -> None:
    what = {"upscale": "Upscale", "animate": "Animation", "reroll": "Reroll", "edit": "New version"}
    await interaction.followup.send(
        f"{what.get(job.action.value, 'Job')} started: its progress is the reply under the result. (job `{job.id}`)",
        ephemeral=True,
    )


def _check_values(bot: DiscomfyBot, workflow: str, params: dict[str, Any]) -> None:
    """The manifest's bounds, checked before answering: a bad value is an ephemeral refusal, nothing is queued.

    An input picture not fetched yet is stood in for by a placeholder name (binding only checks it is a name).
    """
    services = bot.require_services()
    values = {
        k: PLACEHOLDER_IMAGE if isinstance(v, str) and v.startswith(UPLOAD_PREFIX) else v for k, v in params.items()
    }
    bind(services.registry.get(workflow), values, services.settings.models)


async def source_image(bot: DiscomfyBot, job: Job, index: int) -> InputImage:
    """Output ``index`` of ``job`` as an input image: from our store, or from its Discord attachment."""
    services = bot.require_services()
    stored = await services.outputs.source_of(job.id, index)
    if stored is None:
        raise UserError("I can't find that result any more; it may have been deleted.")
    data = await services.outputs.read(stored)
    if data is None:
        if not stored.attachment_url:
            raise UserError("That result's file is gone from the bot's storage and from Discord.")
        data = await download(bot.session, stored.attachment_url, max_bytes=MAX_INPUT_BYTES, what="the picture")
    return await asyncio.to_thread(to_input_image, data)


async def repost_result(bot: DiscomfyBot, interaction: Interaction[Any], job: Job) -> None:
    """/show: the job's result again, as this deferred interaction's message, with its buttons."""
    services = bot.require_services()
    files: list[tuple[str, bytes]] = []
    for output in await services.store.outputs(job.id):
        data = await services.outputs.read(output)
        if data is None and output.attachment_url:
            data = await download(bot.session, output.attachment_url, max_bytes=MAX_INPUT_BYTES * 4, what="a file")
        if data is not None:
            files.append((output_filename(job, output), data))
    if not files:
        raise UserError("That job's files are gone; there is nothing left to show.")
    limit = bot.upload_limit(interaction.guild_id)
    fitted = await fit_for_discord(files, per_file_limit=limit, total_limit=limit)
    editor = MessageEditor(
        bot,
        EditTarget(
            channel_id=interaction.channel_id or job.channel_id,
            message_id=None,
            application_id=interaction.application_id,
            token=interaction.token,
            token_created_at=interaction.created_at.timestamp(),
        ),
    )
    try:
        await editor.finish(render_result(job, fitted.uploads, notes=fitted.notes, now=time.time()))
    finally:
        await editor.close()


def info_embed(job: Job) -> dict[str, Any]:
    params = "\n".join(f"**{k}**: {truncate(str(v), 200)}" for k, v in sorted(job.params.items()) if k != "prompt")
    fields = [
        {"name": "Workflow", "value": job.workflow, "inline": True},
        {"name": "State", "value": job.state.value, "inline": True},
        {"name": "Seed", "value": f"`{job.seed}`" if job.seed is not None else "—", "inline": True},
        {"name": "Parameters", "value": truncate(params or "—", 1024), "inline": False},
    ]
    times = []
    if job.started_at and job.finished_at:
        times.append(f"ran {job.finished_at - job.started_at:.1f} s")
    if job.submitted_at:
        times.append(f"queued <t:{int(job.created_at)}:R>")
    if times:
        fields.append({"name": "Timing", "value": ", ".join(times), "inline": False})
    link = message_link(job.guild_id, job.channel_id, job.message_id)
    description = truncate(str(job.params.get("prompt") or ""), 3000)
    if link:
        description += f"\n[result]({link})"
    return {"title": f"Job {job.id[:12]}", "description": description, "fields": fields}


def _kind(job: Job) -> Kind:
    return Kind(job.kind.value)


async def _send_modal(interaction: Interaction[Any], modal: nextcord.ui.Modal) -> None:
    """Opens ``modal``; its submit comes back through ``on_interaction`` by its custom_id, like a button press.

    nextcord's ``send_modal`` also registers the modal in its own store, whose default callback answers the submit
    with a deferred *update* (type 6) before our handler can defer with a new message (type 5, which Discord then
    refuses with 40060). ``stop()`` takes it out of that store again; ``auto_defer=False`` covers the gap between.
    """
    await interaction.response.send_modal(modal)
    modal.stop()


def _modal(
    title: str, ref: ComponentRef, fields: tuple[tuple[str, str, str, int], ...], *, prefill: bool = False
) -> nextcord.ui.Modal:
    modal = nextcord.ui.Modal(title, custom_id=encode(ref.action, ref.job_id, ref.index), auto_defer=False)
    for custom_id, label, text, max_length in fields:
        long = max_length > 100
        modal.add_item(
            nextcord.ui.TextInput(
                label=label,
                custom_id=custom_id,
                style=nextcord.TextInputStyle.paragraph if long else nextcord.TextInputStyle.short,
                default_value=text if prefill else None,
                placeholder=None if prefill else text,
                required=prefill,
                max_length=max_length,
            )
        )
    return modal
