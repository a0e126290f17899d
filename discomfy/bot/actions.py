"""Buttons and forms on progress and result messages: Cancel, Upscale, Animate, Reroll, Edit prompt, Info, Delete.

How it works: every component carries a custom_id ``dc1:<action>:<job id>[:<output>]`` (``custom_ids.py``), so a
press is understood from the custom_id and the job's row alone — buttons work forever, also after restarts,
without registering a view per message. The client hands every press and form submit whose custom_id is ours
to ``ResultActions.handle``, which calls the one handler of that action (``PRESSED`` / ``SUBMITTED`` tables).
Anyone may press Upscale, Animate, Reroll, Edit and Info (rate-limited); Cancel and Delete are checked on our
side against the job's owner or Manage Messages. An action that starts a job checks the request first
(``JobService.check``), then defers with a private note, and the new job's progress is posted as a reply to
the result the button was on; its source picture comes from ``Delivery.source_picture``.

Never: trust that a button was hidden from someone (always check), or answer later than Discord's 3 seconds
(defer first when work follows).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import nextcord
from nextcord import Interaction

from discomfy.bot.custom_ids import ComponentAction, ComponentRef, encode
from discomfy.bot.delivery import Delivery
from discomfy.bot.failures import delete_thinking, report_failure
from discomfy.bot.interactions import actor_of, modal_values
from discomfy.bot.render_job import render_info
from discomfy.errors import BadInputError, UserError
from discomfy.jobs.admission import Limits
from discomfy.jobs.service import JobRequest, JobService
from discomfy.jobs.state import Job, JobAction, JobState
from discomfy.jobs.store import JobStore
from discomfy.media.picture import Picture
from discomfy.workflows import Kind

log = logging.getLogger(__name__)

#: Form text inputs: (custom_id, label, placeholder / default, max length).
Fields = tuple[tuple[str, str, str, int], ...]
UPSCALE_FIELDS: Fields = (("scale", "Upscale factor (1–4)", "2", 4),)
ANIMATE_FIELDS: Fields = (
    ("frames", "Frames (1–25)", "14", 3),
    ("motion", "Motion amount (1–255)", "127", 3),
    ("strength", "Change from the picture (0–1)", "0.0", 4),
)
ACKNOWLEDGED = {
    JobAction.UPSCALE: "Upscale",
    JobAction.ANIMATE: "Animation",
    JobAction.REROLL: "Reroll",
    JobAction.EDIT: "New version",
}

Handler = Callable[["ResultActions", Interaction[Any], ComponentRef, Job], Awaitable[None]]


class ResultActions:
    def __init__(self, service: JobService, store: JobStore, limits: Limits, delivery: Delivery) -> None:
        self.service = service
        self.store = store
        self.limits = limits
        self.delivery = delivery

    async def handle(self, interaction: Interaction[Any], ref: ComponentRef) -> None:
        submitted = interaction.type is nextcord.InteractionType.modal_submit
        handler = (SUBMITTED if submitted else PRESSED).get(ref.action)
        try:
            if handler is None:
                raise UserError("That form is not one of ours any more.")
            await handler(self, interaction, ref, await self.store.get(ref.job_id))
        except Exception as exc:
            await report_failure(interaction, exc, doing=f"the {ref.action} button")

    # -- presses ---------------------------------------------------------------------------------------------

    async def cancel(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
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
        await interaction.response.defer(ephemeral=True, with_message=True)
        if message is not None:
            await message.delete()
        await interaction.followup.send("Deleted.", ephemeral=True)

    async def info(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        self.limits.admit(actor_of(interaction), time.time())
        embed = nextcord.Embed.from_dict(render_info(job))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    async def reroll(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        self.limits.admit(actor_of(interaction), time.time())
        params = {k: v for k, v in job.params.items() if k != "seed"}
        await self._rerun(interaction, job, JobAction.REROLL, params)

    async def upscale_form(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        await self._form(interaction, ref, "Upscale", UPSCALE_FIELDS)

    async def animate_form(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        await self._form(interaction, ref, "Animate", ANIMATE_FIELDS)

    async def edit_form(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        most = self.service.settings.limits.max_prompt_length
        fields = (("prompt", "Prompt", str(job.params.get("prompt") or "")[:most], min(most, 4000)),)
        await self._form(interaction, ref, "Edit prompt", fields, prefill=True)

    # -- forms submitted -------------------------------------------------------------------------------------

    async def upscale(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        self.limits.admit(actor_of(interaction), time.time())
        values = modal_values(interaction.data)
        params: dict[str, Any] = {"scale": values.get("scale", "").strip() or "2"}
        await self._from_output(interaction, job, ref, JobAction.UPSCALE, Kind.UPSCALE, params)

    async def animate(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        self.limits.admit(actor_of(interaction), time.time())
        values = modal_values(interaction.data)
        params = {k: values[k].strip() for k in ("frames", "motion", "strength") if values.get(k, "").strip()}
        await self._from_output(interaction, job, ref, JobAction.ANIMATE, Kind.VIDEO, params)

    async def edit(self, interaction: Interaction[Any], ref: ComponentRef, job: Job) -> None:
        self.limits.admit(actor_of(interaction), time.time())
        prompt = modal_values(interaction.data).get("prompt", "").strip()
        if not prompt:
            raise BadInputError("The prompt can't be empty.")
        await self._rerun(interaction, job, JobAction.EDIT, {**job.params, "prompt": prompt})

    # -- starting a job from a result ------------------------------------------------------------------------

    async def _from_output(
        self,
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
        request = self._request(interaction, job, action, kind, None, params, parent=job, index=ref.index)
        await self._start(interaction, request, job, ref.index)

    async def _rerun(self, interaction: Interaction[Any], job: Job, action: JobAction, params: dict[str, Any]) -> None:
        """The same workflow again (a new seed, a new prompt), from the same source picture if it had one."""
        kind = Kind(job.kind.value)
        parent = await self.store.get(job.parent_id) if job.parent_id is not None else None
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
        a form only looks at the rate limit; the submit is what counts.

        nextcord's ``send_modal`` also registers the modal in its own store, whose default callback answers the
        submit with a deferred *update* (type 6) before our handler can defer with a new message (type 5, which
        Discord then refuses with 40060). ``stop()`` takes it out of that store again; ``auto_defer=False``
        covers the gap between."""
        self.limits.admit(actor_of(interaction), time.time(), count=False)
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


PRESSED: dict[ComponentAction, Handler] = {
    ComponentAction.CANCEL: ResultActions.cancel,
    ComponentAction.DELETE: ResultActions.delete,
    ComponentAction.INFO: ResultActions.info,
    ComponentAction.REROLL: ResultActions.reroll,
    ComponentAction.UPSCALE: ResultActions.upscale_form,
    ComponentAction.ANIMATE: ResultActions.animate_form,
    ComponentAction.EDIT: ResultActions.edit_form,
}
SUBMITTED: dict[ComponentAction, Handler] = {
    ComponentAction.UPSCALE: ResultActions.upscale,
    ComponentAction.ANIMATE: ResultActions.animate,
    ComponentAction.EDIT: ResultActions.edit,
}
