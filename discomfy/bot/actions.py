"""Buttons and forms on progress and result messages: Cancel, Upscale, Animate, Reroll, Edit prompt, Extend, Info,
Delete.

How it works: every component carries a custom_id ``dc1:<action>:<job id>[:<output>]`` (``custom_ids.py``), so a
press is understood from the custom_id and the job's row alone — buttons work forever, also after restarts,
without registering a view per message. The client hands every press and form submit whose custom_id is ours
to ``ResultActions.handle``, the one gate of every press and submit, which then calls the one handler of that
action (``PRESSED`` / ``SUBMITTED`` tables). The gate (rules in ``jobs/admission.py``): the allow-lists before
anything is read; the job's own place (its guild, or its DM: never another guild, never a DM for a guild job);
the job's own message (``check_origin``: the message its row names, or one of ours carrying that very button);
then the rate limit, except for Cancel and Delete, which never start work. Anyone may press Upscale, Animate,
Reroll, Edit and Info there; Cancel and Delete are checked on our side against the job's owner or Manage
Messages, and Delete removes only the message its row names or a copy of ours. An action that starts a job
parses its form's numbers against the manifest, checks the request (``JobService.check``), then defers with a
private note, and the new job's progress is posted as a reply to the result the button was on; its source
picture comes from ``Delivery.source_picture``. Animate's form is the one of the video workflow that will run
(``JobService.runnable``, asked when the button is pressed); its submit asks again (the custom_id carries no
workflow), refuses a value the workflow in force then does not take, and names that workflow in the request.
Info on a finished result whose workflow can be a preset (no picture needed) carries "Save preset": its form asks
a name (and whether to keep the seed) and its submit saves the preset through ``presets.save_result``, for the
member who submits, in the job's guild (the gate above has checked that guild).

Extend (on a video result whose workflow's manifest has ``extend_max_frames``) starts the same workflow with the
same options and a new seed from the video's last frame (``Delivery.last_frame``), checked by
``JobService.check_extend`` against that bound; the runner joins the new part after the video.

Never: trust that a button was hidden from someone (always check), or answer later than Discord's 3 seconds
(defer first when work follows).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import nextcord
from nextcord import Interaction

from discomfy.bot.custom_ids import ComponentAction, ComponentRef, encode
from discomfy.bot.delivery import Delivery
from discomfy.bot.failures import delete_thinking, report_failure
from discomfy.bot.interactions import actor_of, modal_values, origin_of
from discomfy.bot.presets import save_result
from discomfy.bot.render_job import render_info
from discomfy.bot.render_presets import saved_words
from discomfy.errors import BadInputError, UserError
from discomfy.jobs.admission import Limits, check_origin
from discomfy.jobs.presets import MAX_NAME, PresetStore, can_be_preset
from discomfy.jobs.service import JobRequest, JobService
from discomfy.jobs.state import Job, JobAction, JobKind, JobState
from discomfy.jobs.store import JobStore
from discomfy.media.picture import Picture
from discomfy.workflows import Kind, ParamType, Workflow

log = logging.getLogger(__name__)

#: Form text inputs: (custom_id, label, placeholder / default, max length). For Upscale and Animate the label
#: gains the manifest's range and the placeholder is the manifest's default (``_manifest_fields``); a field the
#: workflow does not take is left out. Animate's form is the one of the video workflow that will run
#: (``JobService.runnable``): Wan 2.2 takes a motion prompt, frames and fps; LTX-Video also the picture's
#: strength; SVD frames, fps, motion and strength but no prompt.
Fields = tuple[tuple[str, str, str, int], ...]
UPSCALE_FIELDS: Fields = (("scale", "Upscale factor", "2", 4),)
ANIMATE_FIELDS: Fields = (
    ("prompt", "Motion prompt", "What moves and how (the camera too)", 1500),
    ("frames", "Frames", "14", 3),
    ("fps", "Frames per second", "6", 3),
    ("motion", "Motion amount", "127", 3),
    ("strength", "Change from the picture", "0.0", 4),
    ("image_strength", "Keep the picture", "1.0", 4),
)
#: "Save preset" (from Info): the name, and whether the seed is kept (bot/presets.py says what a preset keeps).
PRESET_FIELDS: Fields = (
    ("name", "Preset name (letters, digits, spaces, - _ .)", "my style", MAX_NAME),
    ("keep_seed", "Keep the seed? (yes / no, default no)", "no", 3),
)
#: Form fields that are text, not numbers.
TEXT_FIELDS = frozenset({"prompt"})
ACKNOWLEDGED = {
    JobAction.UPSCALE: "Upscale",
    JobAction.ANIMATE: "Animation",
    JobAction.REROLL: "Reroll",
    JobAction.EDIT: "New version",
    JobAction.EXTEND: "Extension",
}

#: Presses that never start work: the allow-lists and the job's place apply, the rate limit does not.
UNMETERED = frozenset({ComponentAction.CANCEL, ComponentAction.DELETE})
#: Presses that only open a form: they look at the rate limit; the form's submit is what counts.
OPENS_FORM = frozenset({ComponentAction.UPSCALE, ComponentAction.ANIMATE, ComponentAction.EDIT, ComponentAction.PRESET})
#: A form field's text, at most: the longest number anyone means, far under what Python would parse slowly.
NUMBER_CHARS = 32

Handler = Callable[["ResultActions", Interaction[Any], ComponentRef, Job], Awaitable[None]]


class ResultActions:
    def __init__(
        self,
        service: JobService,
        store: JobStore,
        limits: Limits,
        delivery: Delivery,
        presets: PresetStore | None = None,
    ) -> None:
        self.service = service
        self.store = store
        self.limits = limits
        self.delivery = delivery
        #: Presets (bot/presets.py): with them, Info on a finished result offers "Save preset".
        self.presets = presets

    async def handle(self, interaction: Interaction[Any], ref: ComponentRef) -> None:
        submitted = interaction.type is nextcord.InteractionType.modal_submit
        handler = (SUBMITTED if submitted else PRESSED).get(ref.action)
        try:
            if handler is None:
                raise UserError("That form is not one of ours any more.")
            actor = actor_of(interaction)
            self.limits.check_place(actor)  # the allow-lists, before anything about the job is read
            job = await self.store.get(ref.job_id)
            self.limits.check_place(actor, job)
            message_id, carried = origin_of(interaction, ref.encode())
            check_origin(job, message_id, carried)
            if ref.action not in UNMETERED:
                opens_form = not submitted and ref.action in OPENS_FORM
                self.limits.admit(actor, time.time(), job=job, count=not opens_form)
            await handler(self, interaction, ref, job)
        except Exception as exc:
            await report_failure(interaction, exc, doing=f"the {ref.action} button")

    # -- presses ---------------------------------------------------------------------------------------------

    async def cancel(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        # Checked again by the service; here so that a refusal is the first (and only) answer.
        self.limits.check_owner_or_moderator(actor_of(interaction), job.owner_id)
        await interaction.response.defer(ephemeral=True, with_message=True)
        ended = await self.service.cancel(job.id, actor_of(interaction))
        text = {
            JobState.CANCELLED: "Cancelled.",
            JobState.DELIVERED: "Too late: it had already finished.",
        }.get(ended.state, f"It is {ended.state.value} now.")
        await interaction.followup.send(text, ephemeral=True)

    async def delete(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        self.limits.check_owner_or_moderator(actor_of(interaction), job.owner_id, doing="delete this result")
        if not job.terminal:
            raise UserError("This job is still running; cancel it first.")
        message = interaction.message
        message_id, carried = origin_of(interaction, ref.encode())
        # The gate already refused a message that is neither; a copy of ours must also not be ephemeral.
        if message is None or (message_id != job.message_id and not carried) or message.flags.ephemeral:
            raise UserError("There is nothing here to delete.")
        await interaction.response.defer(ephemeral=True, with_message=True)
        await message.delete()
        await interaction.followup.send("Deleted.", ephemeral=True)

    async def info(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        embed = nextcord.Embed.from_dict(render_info(job))
        workflow = self.service.registry.find(job.workflow)
        if self.presets is None or job.state is not JobState.DELIVERED or not (workflow and can_be_preset(workflow)):
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        # Only a carrier for the button (see manage.py's /jobs): its press comes back to ``handle`` by custom_id,
        # and the gate's origin check accepts this answer because it is ours and carries that very button.
        view = nextcord.ui.View(timeout=None, auto_defer=False, prevent_update=False)
        view.add_item(
            nextcord.ui.Button(
                label="Save preset",
                style=nextcord.ButtonStyle.secondary,
                custom_id=encode(ComponentAction.PRESET, job.id),
            )
        )
        await interaction.response.send_message(embed=embed, view=view, ephemeral=True)

    async def preset_form(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        if self.presets is None:
            raise UserError("Presets are not available here.")
        await self._form(interaction, ref, "Save as a preset", PRESET_FIELDS)

    async def reroll(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        params = {k: v for k, v in job.params.items() if k != "seed"}
        await self._rerun(interaction, job, JobAction.REROLL, params)

    async def extend(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        """The video continued from its last frame: the same workflow, prompt and options, a new seed; the new
        part is joined after this video when it is done (``jobs/runner.py``)."""
        if job.kind is not JobKind.VIDEO or job.state not in (JobState.DELIVERING, JobState.DELIVERED):
            raise UserError("Only a finished video can be extended.")
        await self._extend(interaction, job, ref.index or 0, job.params, reply_to=None)

    async def _extend(
        self,
        interaction: Interaction[Any],
        video: Job,
        index: int,
        params: Mapping[str, Any],
        *,
        reply_to: Job | None,
    ) -> None:
        """A job continuing output ``index`` of ``video`` with ``params`` (their seed and picture left out).
        Reroll and Edit prompt of an extension come here too: ``video`` is then the video it extended, and
        ``reply_to`` the extension."""
        workflow = self.service.registry.find(video.workflow)
        images = {n for n, p in workflow.params.items() if p.type is ParamType.IMAGE} if workflow else set()
        params = {k: v for k, v in params.items() if k != "seed" and k not in images}
        request = self._request(
            interaction,
            reply_to or video,
            JobAction.EXTEND,
            Kind.VIDEO,
            video.workflow,
            params,
            parent=video,
            index=index,
        )
        self.service.check(request, pictures=1)  # refused before anything is read (and before the defer)
        await interaction.response.defer(ephemeral=True, with_message=True)
        try:
            picture, frames = await self.delivery.last_frame(video, index)
            self.service.check_extend(request, frames.frames)
            started = await self.service.submit(replace(request, inputs=(picture,)), actor_of(interaction))
        except Exception:
            await delete_thinking(interaction)
            raise
        log.info(
            "job %s queued for %s (extend of %s, %d frames)", started.id, started.owner_id, video.id, frames.frames
        )
        await interaction.followup.send(
            f"Extension started: its progress is the reply under the video. (job `{started.id}`)", ephemeral=True
        )

    async def upscale_form(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        self._check_output(job, ref)
        workflow = self.service.registry.for_guild(job.guild_id).default(Kind.UPSCALE)
        await self._form(interaction, ref, "Upscale", self._manifest_fields(workflow, UPSCALE_FIELDS))

    async def animate_form(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        self._check_output(job, ref)
        # The one that will run (for this job's server): its fields, bounds and defaults.
        workflow = self.service.runnable(Kind.VIDEO, guild_id=job.guild_id)
        await self._form(interaction, ref, "Animate", self._manifest_fields(workflow, ANIMATE_FIELDS))

    async def edit_form(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        most = self.service.settings.limits.max_prompt_length
        fields = (("prompt", "Prompt", str(job.params.get("prompt") or "")[:most], min(most, 4000)),)
        await self._form(interaction, ref, "Edit prompt", fields, prefill=True)

    # -- forms submitted -------------------------------------------------------------------------------------

    async def upscale(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        workflow = self.service.registry.for_guild(job.guild_id).default(Kind.UPSCALE)
        params = self._numbers(workflow, UPSCALE_FIELDS, modal_values(interaction.data))
        await self._from_output(interaction, job, ref, JobAction.UPSCALE, Kind.UPSCALE, params)

    async def animate(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        # The custom_id carries no workflow: the one in force now is checked and named in the request (the service
        # does not pick again). A value for a field it does not take — the form was opened for another — is refused.
        workflow = self.service.runnable(Kind.VIDEO, guild_id=job.guild_id)
        values = modal_values(interaction.data)
        for name, label, _, _ in ANIMATE_FIELDS:
            if values.get(name, "").strip() and name not in workflow.params:
                raise BadInputError(
                    f"The video workflow is now {workflow.name}, which takes no '{label}'; "
                    "press Animate again for its form."
                )
        params = self._numbers(workflow, ANIMATE_FIELDS, values)
        await self._from_output(interaction, job, ref, JobAction.ANIMATE, Kind.VIDEO, params, workflow=workflow.name)

    async def edit(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        prompt = modal_values(interaction.data).get("prompt", "").strip()
        if not prompt:
            raise BadInputError("The prompt can't be empty.")
        await self._rerun(interaction, job, JobAction.EDIT, {**job.params, "prompt": prompt})

    async def save_preset(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        if self.presets is None:
            raise UserError("Presets are not available here.")
        values = modal_values(interaction.data)
        keep = values.get("keep_seed", "").strip().lower()
        if keep not in ("", "yes", "no", "y", "n"):
            raise BadInputError("Keep the seed: answer yes or no.")
        actor = actor_of(interaction)
        preset = await save_result(
            self.service, self.presets, actor, job, values.get("name", ""), keep_seed=keep in ("yes", "y")
        )
        await interaction.response.send_message(saved_words(preset), ephemeral=True)

    def _numbers(self, workflow: Workflow | None, fields: Fields, values: Mapping[str, str]) -> dict[str, Any]:
        """A form's values: each field present, not empty and taken by ``workflow``; numbers parsed as its manifest
        parameter's type, text fields kept as typed (stripped). The bounds are the manifest's, checked by
        ``JobService.check``; a value that is not a number is refused here, without repeating what was typed."""
        params: dict[str, Any] = {}
        for name, label, _, _ in fields:
            text = values.get(name, "").strip()
            param = workflow.params.get(name) if workflow is not None else None
            if not text or (workflow is not None and param is None):
                continue
            if name in TEXT_FIELDS:
                params[name] = text
                continue
            whole = param is not None and param.type is ParamType.INT
            number = _parse_number(text, whole=whole)
            if number is None:
                raise BadInputError(f"{label} must be {'a whole number' if whole else 'a number'}{_range(param)}.")
            params[name] = number
        return params

    def _manifest_fields(self, workflow: Workflow | None, fields: Fields) -> Fields:
        """The form's fields as ``workflow`` takes them: its range (and step) in the label, its default as the
        placeholder; fields it does not take are left out."""
        if workflow is None:
            return fields
        shown: list[tuple[str, str, str, int]] = []
        for name, label, default, max_length in fields:
            param = workflow.params.get(name)
            if param is None:
                continue
            if name in TEXT_FIELDS:
                most = min(max_length, self.service.settings.limits.max_prompt_length, param.max_length or max_length)
                shown.append((name, label, default, most))
                continue
            bounds = _range(param).replace(" between ", " (").replace(" and ", "–")
            if bounds and param.step and param.step > 1 and param.minimum is not None:
                bounds += f", {param.step}n+{_fmt(param.minimum % param.step)}"
            placeholder = _fmt(param.default) if isinstance(param.default, int | float) else default
            shown.append((name, label + (f"{bounds})" if bounds else ""), placeholder, max_length))
        return tuple(shown)

    # -- starting a job from a result ------------------------------------------------------------------------

    @staticmethod
    def _check_output(job: Job, ref: ComponentRef) -> None:
        """Upscale and Animate: a picture of a finished job, at an index it has."""
        # DELIVERING too: the result message (and so this button) is up a moment before the row says delivered.
        if job.state not in (JobState.DELIVERING, JobState.DELIVERED) or ref.index is None:
            raise UserError("That result is not available any more.")
        if job.kind is JobKind.VIDEO:
            raise UserError("That result is a video; Upscale and Animate take a picture.")

    async def _from_output(
        self,
        interaction: Interaction[Any],
        job: Job,
        ref: ComponentRef,
        action: JobAction,
        kind: Kind,
        params: dict[str, Any],
        *,
        workflow: str | None = None,
    ) -> None:
        self._check_output(job, ref)
        index = ref.index or 0
        request = self._request(interaction, job, action, kind, workflow, params, parent=job, index=index)
        await self._start(interaction, request, job, index)

    async def _rerun(self, interaction: Interaction[Any], job: Job, action: JobAction, params: dict[str, Any]) -> None:
        """The same workflow again (a new seed, a new prompt), from the same source picture if it had one. An
        extension is made again as an extension of the same video (a new part after it)."""
        kind = Kind(job.kind.value)
        parent = await self.store.get(job.parent_id) if job.parent_id is not None else None
        if job.action is JobAction.EXTEND and parent is not None:
            await self._extend(interaction, parent, job.source_index or 0, params, reply_to=job)
            return
        index = job.source_index if parent is not None else None
        request = self._request(interaction, job, action, kind, job.workflow, params, parent=parent, index=index)
        await self._start(interaction, request, parent, index)

    def _request(
        self,
        interaction: Interaction[Any],
        job: Job,
        action: JobAction,
        kind: Kind,
        workflow: str | None,
        params: Mapping[str, Any],
        *,
        parent: Job | None,
        index: int | None,
    ) -> JobRequest:
        actor = actor_of(interaction)
        return JobRequest(
            owner_id=actor.user_id,
            guild_id=interaction.guild_id,
            channel_id=actor.channel_id,
            interaction=None,
            workflow=workflow,
            kind=kind,
            action=action,
            params=params,
            parent_id=parent.id if parent is not None else None,
            source_index=index,
            # The result the button was on: the new job's progress message replies to it.
            reply_to=interaction.message.id if interaction.message is not None else job.message_id,
        )

    async def _start(
        self, interaction: Interaction[Any], request: JobRequest, source: Job | None, index: int | None
    ) -> None:
        from_picture = source is not None and index is not None
        self.service.check(request, pictures=int(from_picture))
        await interaction.response.defer(ephemeral=True, with_message=True)
        try:
            pictures: tuple[Picture, ...] = ()
            if source is not None and index is not None:
                pictures = (await self.delivery.source_picture(source, index),)
            started = await self.service.submit(replace(request, inputs=pictures), actor_of(interaction))
        except Exception:
            await delete_thinking(interaction)
            raise
        log.info("job %s queued for %s (%s of %s)", started.id, started.owner_id, started.action, source or "-")
        what = ACKNOWLEDGED.get(started.action, "Job")
        await interaction.followup.send(
            f"{what} started: its progress is the reply under the result. (job `{started.id}`)", ephemeral=True
        )

    async def _form(
        self, interaction: Interaction[Any], ref: ComponentRef, title: str, fields: Fields, *, prefill: bool = False
    ) -> None:
        """Opens a form; its submit comes back through ``handle`` by its custom_id, like a button press. Opening
        a form only looks at the rate limit (``handle``); the submit is what counts.

        nextcord's ``send_modal`` also registers the modal in its own store, whose default callback answers the
        submit with a deferred *update* (type 6) before our handler can defer with a new message (type 5, which
        Discord then refuses with 40060). ``stop()`` takes it out of that store again; ``auto_defer=False``
        covers the gap between."""
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
        await interaction.response.send_modal(modal)
        modal.stop()


def _parse_number(text: str, *, whole: bool) -> int | float | None:
    """Plain decimal digits (a sign, one point or comma for a fraction), nothing Python alone would also take
    (``1_000``, ``nan``, ``inf``, other scripts' digits, thousands of digits)."""
    if len(text) > NUMBER_CHARS or not re.fullmatch(r"[+-]?[0-9]+(?:[.,][0-9]*)?|[+-]?[.,][0-9]+", text):
        return None
    number = float(text.replace(",", "."))
    if whole:
        return int(number) if number.is_integer() else None
    return number


def _range(param: Any) -> str:
    low, high = getattr(param, "minimum", None), getattr(param, "maximum", None)
    if low is not None and high is not None:
        return f" between {_fmt(low)} and {_fmt(high)}"
    return ""


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


PRESSED: dict[ComponentAction, Handler] = {
    ComponentAction.CANCEL: ResultActions.cancel,
    ComponentAction.DELETE: ResultActions.delete,
    ComponentAction.INFO: ResultActions.info,
    ComponentAction.REROLL: ResultActions.reroll,
    ComponentAction.UPSCALE: ResultActions.upscale_form,
    ComponentAction.ANIMATE: ResultActions.animate_form,
    ComponentAction.EDIT: ResultActions.edit_form,
    ComponentAction.PRESET: ResultActions.preset_form,
    ComponentAction.EXTEND: ResultActions.extend,
}
SUBMITTED: dict[ComponentAction, Handler] = {
    ComponentAction.UPSCALE: ResultActions.upscale,
    ComponentAction.ANIMATE: ResultActions.animate,
    ComponentAction.EDIT: ResultActions.edit,
    ComponentAction.PRESET: ResultActions.save_preset,
}
