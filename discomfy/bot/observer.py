"""The job service's observer on Discord: one live progress message per job, then its result or its ending.

How it works: each job gets one ``MessageEditor`` (created on first need, from the job row: its channel, its
message id, the message it replies to and, while it is valid, its interaction token), so every job's message
is edited by exactly one editor. ``show`` never waits: it hands the editor a ``Draw`` that renders the job's
latest snapshot when the edit is about to be sent (the preview shrunk to a small JPEG in a thread, once per new
preview), so the editor is the one latest-wins buffer and nothing sent is older than its send. ``deliver`` and
``ended`` send the final state (``delivery.Delivery`` for results). The message id an editor learns is saved in
the job row (``JobStore.update``), so a restarted bot edits the same message.

Never: block the job (``show`` only hands over), send a result before its files are stored, or call back into
the job service (the observer only reads and writes rows through the store).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from discomfy.bot.delivery import Delivery
from discomfy.bot.editor import EditTarget, MessageEditError, MessageEditor
from discomfy.bot.pacing import Pacer
from discomfy.bot.preview import PreviewError, shrink_preview
from discomfy.bot.render_job import RenderedMessage, render_progress
from discomfy.bot.rest import DiscordRest
from discomfy.comfy.progress import Snapshot
from discomfy.jobs.records import StoredOutput
from discomfy.jobs.state import Job, MessageId
from discomfy.jobs.store import JobStore

log = logging.getLogger(__name__)


class DiscordObserver:
    def __init__(
        self,
        rest: DiscordRest,
        store: JobStore,
        delivery: Delivery,
        *,
        application_id: Callable[[], int | None],
        servers_down: Callable[[], bool] = lambda: False,
        min_interval: float = 1.0,
        pacer: Pacer | None = None,
        on_edit: Callable[[str], None] | None = None,
    ) -> None:
        self.rest = rest
        self.store = store
        self.delivery = delivery
        self.application_id = application_id
        self.servers_down = servers_down
        self.min_interval = min_interval
        self.editors: dict[str, MessageEditor] = {}
        #: Turns per Discord bucket, from what Discord's answers say: results and phase changes first.
        self.pacer = pacer or Pacer(rest.book)
        self._previews: dict[str, tuple[int, bytes | None]] = {}
        self.on_edit = on_edit

    def editor_for(self, job: Job) -> MessageEditor:
        editor = self.editors.get(job.id)
        if editor is None:
            ref = job.interaction
            target = EditTarget(
                channel_id=job.channel_id,
                message_id=job.message_id,
                application_id=ref.application_id if ref else (self.application_id() or 0),
                token=ref.token if ref else None,
                token_created_at=ref.created_at if ref else 0.0,
                reply_to=job.reply_to,
            )

            async def remember(message_id: int, job_id: str = job.id) -> None:
                await self.store.update(job_id, message_id=MessageId(message_id))

            editor = MessageEditor(
                self.rest,
                target,
                min_interval=self.min_interval,
                on_message_id=remember,
                on_message_moved=remember,
                pace=self.pacer.turn,
                on_edit=self.on_edit,
            )
            self.editors[job.id] = editor
        return editor

    def show(self, job: Job, snapshot: Snapshot, our_queue_position: int | None) -> None:
        shown_at = time.monotonic()

        async def draw() -> RenderedMessage:
            # Drawn when the edit is sent: the ETA counts from now, the preview is shrunk only if it is sent.
            preview = await self._preview(job.id, snapshot)
            current = snapshot
            if snapshot.eta_seconds is not None:
                aged = max(0.0, snapshot.eta_seconds - (time.monotonic() - shown_at))
                current = dataclasses.replace(snapshot, eta_seconds=aged)
            return render_progress(
                job,
                current,
                our_queue_position=our_queue_position,
                now=time.time(),
                preview_jpeg=preview,
                servers_down=self.servers_down(),
            )

        phase = "waiting" if our_queue_position is not None else snapshot.phase.value
        self.editor_for(job).update(draw, phase=phase)

    async def deliver(self, job: Job, outputs: Sequence[StoredOutput]) -> None:
        await self.delivery.post(job, self.editor_for(job), outputs, show_encoding=True)
        await self._forget(job.id)

    async def ended(self, job: Job, snapshot: Snapshot | None) -> None:
        rendered = render_progress(job, snapshot, our_queue_position=None, now=time.time())
        try:
            await self.editor_for(job).finish(rendered)
        except MessageEditError as exc:
            log.warning("job %s: could not show its final state: %s", job.id, exc)
        await self._forget(job.id)

    async def close(self) -> None:
        # At once: each editor may wait out a request already sent (``MessageEditor.close``).
        await asyncio.gather(*(self._forget(job_id) for job_id in list(self.editors)))
        await self.pacer.close()

    async def _forget(self, job_id: str) -> None:
        self._previews.pop(job_id, None)
        editor = self.editors.pop(job_id, None)
        if editor is not None:
            await editor.close()

    async def _preview(self, job_id: str, snapshot: Snapshot) -> bytes | None:
        """The latest preview as a small JPEG; shrunk once per new preview, in a thread."""
        if snapshot.preview is None or snapshot.is_terminal:
            return None
        key = id(snapshot.preview)
        cached = self._previews.get(job_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            small: bytes | None = await asyncio.to_thread(shrink_preview, snapshot.preview.image)
        except PreviewError as exc:
            log.debug("job %s: preview skipped: %s", job_id, exc)
            small = cached[1] if cached else None
        self._previews[job_id] = (key, small)
        return small
