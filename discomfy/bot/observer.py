"""The job service's observer on Discord: one live progress message per job, then its result or its ending.

How it works: each job gets one ``MessageEditor`` (created on first need, from the job row: its channel, its
message id and, while it is valid, its interaction token), so every job's message is edited by exactly one
editor, coalesced and throttled. ``on_progress`` renders the snapshot (the latest preview shrunk to a small
JPEG in a thread, once per new preview) and hands it to the editor, never waiting. ``deliver`` reads the stored
outputs, fits them into Discord's upload limit (``media.fit``, in threads), sends the final result through the
editor, records the attachment URLs (a later Upscale of an evicted file falls back to them), marks the outputs
delivered and enforces the store's caps; if anything fails it raises, and the service retries. ``on_ended``
sends the final failed / cancelled / lost state. The message id the editor learns is saved in the job row, so
a restarted bot edits the same message.

Never: block the job (``on_progress`` only renders and hands over), send a result before its files are stored,
or mark an output delivered before Discord answered with the message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import nextcord

from discomfy.bot.editor import EditTarget, MessageEditError, MessageEditor
from discomfy.bot.pacing import ChannelPacer
from discomfy.bot.preview import PreviewError, shrink_preview
from discomfy.bot.render_job import RenderedMessage, render_progress, render_result
from discomfy.comfy.progress import Snapshot
from discomfy.jobs.records import StoredOutput
from discomfy.jobs.state import Job
from discomfy.media.fit import fit_for_discord

if TYPE_CHECKING:
    from discomfy.bot.client import DiscomfyBot
    from discomfy.bot.services import Services

log = logging.getLogger(__name__)


def output_filename(job: Job, output: StoredOutput) -> str:
    """What Discord shows: the workflow, a short job id and the image number, with the stored extension."""
    extension = output.path.rsplit(".", 1)[-1] if "." in output.path else "bin"
    return f"{job.workflow}_{job.id[:8]}_{output.index + 1}.{extension}"


class DiscordObserver:
    def __init__(self, client: DiscomfyBot, services: Services, *, min_interval: float = 1.5) -> None:
        self.client = client
        self.services = services
        self.min_interval = min_interval
        self.editors: dict[str, MessageEditor] = {}
        #: Jobs started from a button: their progress message is posted as a reply to this message.
        self.reply_to: dict[str, int] = {}
        #: Every job message in a channel shares that channel's edit budget; results go first.
        self.pacer = ChannelPacer()
        self._previews: dict[str, tuple[int, bytes | None]] = {}

    def editor_for(self, job: Job) -> MessageEditor:
        editor = self.editors.get(job.id)
        if editor is None:
            ref = job.interaction
            target = EditTarget(
                channel_id=job.channel_id,
                message_id=job.message_id,
                application_id=ref.application_id if ref else (self.client.application_id or 0),
                token=ref.token if ref else None,
                token_created_at=ref.created_at if ref else 0.0,
                reply_to=self.reply_to.get(job.id),
            )

            async def remember(message_id: int, job_id: str = job.id) -> None:
                await self.services.service.set_message(job_id, message_id)

            editor = MessageEditor(
                self.client,
                target,
                min_interval=self.min_interval,
                on_message_id=remember,
                on_message_moved=remember,
                pace=functools.partial(self.pacer.turn, job.channel_id),
            )
            self.editors[job.id] = editor
        return editor

    async def on_progress(self, job: Job, snapshot: Snapshot, our_queue_position: int | None) -> None:
        preview = await self._preview(job.id, snapshot)
        rendered = render_progress(
            job,
            snapshot,
            our_queue_position=our_queue_position,
            now=time.time(),
            preview_jpeg=preview,
            servers_down=not any(server.healthy for server in self.services.pool.servers),
        )
        self.editor_for(job).update(rendered)

    async def deliver(self, job: Job, outputs: Sequence[StoredOutput]) -> None:
        store = self.services.outputs
        files: list[tuple[str, bytes]] = []
        names: dict[str, StoredOutput] = {}
        for output in outputs:
            data = await store.read(output)
            if data is None:
                log.error("job %s: output %d is not on disk any more", job.id, output.index)
                continue
            name = output_filename(job, output)
            files.append((name, data))
            names[name] = output
        limit = self.client.upload_limit(job.guild_id)
        fitted = await fit_for_discord(files, per_file_limit=limit, total_limit=limit)
        notes = list(fitted.notes)
        if not fitted.uploads:
            notes.append("Nothing could be made small enough to upload; the result is kept on the bot's server.")
        rendered = render_result(job, fitted.uploads, notes=notes, now=time.time())
        message_id = await self.editor_for(job).finish(rendered)
        urls = await self._attachment_urls(job.channel_id, message_id)
        for upload in fitted.uploads:
            delivered = names.get(upload.original_filename)
            if delivered is not None:
                await store.mark_delivered(delivered, urls.get(upload.filename))
        await self._forget(job.id)
        await store.enforce_caps()

    async def on_ended(self, job: Job, snapshot: Snapshot | None) -> None:
        rendered = render_progress(job, snapshot, our_queue_position=None, now=time.time())
        await self.finish(job, rendered)

    async def finish(self, job: Job, rendered: RenderedMessage) -> None:
        try:
            await self.editor_for(job).finish(rendered)
        except MessageEditError as exc:
            log.warning("job %s: could not show its final state: %s", job.id, exc)
        await self._forget(job.id)

    async def close(self) -> None:
        for job_id in list(self.editors):
            await self._forget(job_id)
        await self.pacer.close()

    async def _forget(self, job_id: str) -> None:
        self._previews.pop(job_id, None)
        self.reply_to.pop(job_id, None)
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

    async def _attachment_urls(self, channel_id: int, message_id: int) -> dict[str, str]:
        """Discord's URLs of the message's files, by file name (best effort: a later fallback source)."""
        try:
            message: Any = await self.client.http.get_message(channel_id, message_id)
        except (nextcord.HTTPException, OSError) as exc:
            log.info("could not read back message %s for its attachment URLs: %s", message_id, exc)
            return {}
        attachments = message.get("attachments") if isinstance(message, dict) else None
        return {
            str(a.get("filename")): str(a.get("url"))
            for a in attachments or []
            if isinstance(a, dict) and a.get("filename") and a.get("url")
        }
