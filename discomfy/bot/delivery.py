"""Results on Discord: the one path from stored files to a message with its files and buttons.

How it works: ``Delivery.post(job, editor)`` reads the job's stored outputs (a file no longer on disk is fetched
back from the Discord attachment it was delivered as, when there is one), fits them into the guild's upload
limit (``media.fit``, in threads), renders the result (``render_job.render_result``), sends it as the editor's
final state, keeps the attachment URLs Discord's answer gave the files (a later Upscale of an evicted file
falls back to them), marks the outputs delivered, and enforces the output store's caps. A job's own result
(the observer) and ``/show`` (a repost) both come here. ``source_picture`` is the reverse: one output of a job as an
input picture for an action (Upscale, Animate …), from our store or from Discord; ``last_frame`` is Extend's: a
stored video's last frame (only from our store, since the new part is joined to that file).

A job's own result passes ``show_encoding``: while ``media.fit`` transcodes a video (on its threads), each
throttled frame report reaches the event loop (``call_soon_threadsafe``) and becomes an ``editor.update`` of
``render_job.render_encoding`` ("encoding frame x/y"); the final result replaces it (an update after ``finish``
is ignored).

Only the actions a loaded workflow can run get a button (``offers``: no Animate without a video workflow; Extend
only under a video whose workflow continues videos, ``extends``).

Never: mark an output delivered before Discord answered with the message; send a result whose files are not
stored; read more than a bounded number of bytes from Discord.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import aiohttp

from discomfy.bot.attachments import MAX_INPUT_BYTES, download
from discomfy.bot.custom_ids import ComponentAction
from discomfy.bot.editor import MessageEditor
from discomfy.bot.interactions import UploadLimits
from discomfy.bot.render_job import ALL_OUTPUT_ACTIONS, render_encoding, render_result
from discomfy.errors import UserError
from discomfy.jobs.outputs import OutputStore
from discomfy.jobs.records import StoredOutput
from discomfy.jobs.service import EXTEND_SOURCE_GONE
from discomfy.jobs.state import Job
from discomfy.jobs.store import JobStore
from discomfy.media.errors import MediaError
from discomfy.media.fit import FitResult, fit_for_discord
from discomfy.media.join import VideoFrames, last_frame
from discomfy.media.picture import Picture, read_picture

log = logging.getLogger(__name__)

#: The most we fetch back from Discord for one file we no longer store.
MAX_REFETCH_BYTES = 4 * MAX_INPUT_BYTES


def output_filename(job: Job, output: StoredOutput) -> str:
    """What Discord shows: the workflow, a short job id and the image number, with the stored extension."""
    extension = output.path.rsplit(".", 1)[-1] if "." in output.path else "bin"
    return f"{job.workflow}_{job.id[:8]}_{output.index + 1}.{extension}"


class Delivery:
    def __init__(
        self,
        store: JobStore,
        outputs: OutputStore,
        session: aiohttp.ClientSession,
        uploads: UploadLimits,
        *,
        offers: Callable[[], frozenset[ComponentAction]] = lambda: ALL_OUTPUT_ACTIONS,
        on_fit: Callable[[str], None] | None = None,
        extends: Callable[[Job], bool] = lambda job: False,
    ) -> None:
        self.offers = offers
        #: Told what fitting each file took (``fits_of``) once the result is on Discord (``/metrics``).
        self.on_fit = on_fit
        self.extends = extends
        self.store = store
        self.outputs = outputs
        self.session = session
        self.uploads = uploads

    async def post(
        self,
        job: Job,
        editor: MessageEditor,
        outputs: Sequence[StoredOutput] | None = None,
        *,
        show_encoding: bool = False,
    ) -> int:
        """The result of ``job`` as ``editor``'s final state; returns the message id. ``outputs``: the stored
        files to send (default: all of the job's). ``show_encoding``: while a video is transcoded to fit, the
        message shows "encoding frame x/y" (``render_encoding``) until the result replaces it."""
        stored = list(outputs) if outputs is not None else await self.store.outputs(job.id)
        files: list[tuple[str, bytes]] = []
        names: dict[str, StoredOutput] = {}
        for output in stored:
            data = await self._read(output)
            if data is None:
                log.error("job %s: output %d is neither on disk nor on Discord", job.id, output.index)
                continue
            name = output_filename(job, output)
            files.append((name, data))
            names[name] = output
        if not files and outputs is None:
            raise UserError("That job's files are gone; there is nothing left to show.")
        limit = self.uploads.of(job.guild_id)
        on_progress = None
        if show_encoding:

            def on_progress(done: int, total: int) -> None:  # on the event loop (``fit`` hands it over)
                editor.update(render_encoding(job, done, total), phase="encoding")

        fitted = await fit_for_discord(files, per_file_limit=limit, total_limit=limit, on_progress=on_progress)
        notes = list(fitted.notes)
        if not fitted.uploads:
            notes.append("Nothing could be made small enough to upload; the result is kept on the bot's server.")
        message_id = await editor.finish(
            render_result(job, fitted.uploads, notes=notes, now=time.time(), offers=self._offers(job))
        )
        urls = editor.attachment_urls
        for upload in fitted.uploads:
            delivered = names.get(upload.original_filename)
            if delivered is not None:
                await self.outputs.mark_delivered(delivered, urls.get(upload.filename))
        await self.outputs.enforce_caps()
        if self.on_fit is not None:  # once the delivery is whole: a retried one is counted once
            for fit in fits_of(fitted):
                self.on_fit(fit)
        return message_id

    def _offers(self, job: Job) -> frozenset[ComponentAction]:
        offers = self.offers()
        return offers | {ComponentAction.EXTEND} if self.extends(job) else offers

    async def source_picture(self, job: Job, index: int) -> Picture:
        """Output ``index`` of ``job`` as an input picture: from our store, or from its Discord attachment."""
        stored = await self.outputs.source_of(job.id, index)
        if stored is None:
            raise UserError("I can't find that result any more; it may have been deleted.")
        data = await self.outputs.read(stored)
        if data is None:
            if not stored.attachment_url:
                raise UserError("That result's file is gone from the bot's storage and from Discord.")
            data = await download(self.session, stored.attachment_url, max_bytes=MAX_INPUT_BYTES, what="the picture")
        return await asyncio.to_thread(read_picture, data)

    async def last_frame(self, job: Job, index: int) -> tuple[Picture, VideoFrames]:
        """Extend: the last frame of video ``index`` of ``job`` as an input picture, with the video's frame count.
        Only from our store: the new part is joined to this very file when it is done (``jobs/runner.py``)."""
        stored = await self.outputs.source_of(job.id, index)
        if stored is None:
            raise UserError("I can't find that video any more; it may have been deleted.")
        if not stored.on_disk:
            raise UserError(EXTEND_SOURCE_GONE)
        try:
            # From the file as it is read: a long video is never held whole in memory for one frame.
            frames = await asyncio.to_thread(last_frame, self.outputs.path(stored))
        except FileNotFoundError as exc:
            raise UserError(EXTEND_SOURCE_GONE) from exc
        except MediaError as exc:
            log.warning("job %s: output %d cannot be extended: %s", job.id, index, exc)
            raise UserError("That video can't be read, so it can't be extended; press Reroll for a new one.") from exc
        return await asyncio.to_thread(read_picture, frames.last_png), frames

    async def _read(self, output: StoredOutput) -> bytes | None:
        data = await self.outputs.read(output)
        if data is None and output.attachment_url:
            data = await download(self.session, output.attachment_url, max_bytes=MAX_REFETCH_BYTES, what="a file")
        return data


def fits_of(fitted: FitResult) -> list[str]:
    """What fitting each file took: "as_is", "recompressed" (a picture re-encoded), "transcoded" (a video or
    animation made MP4), "too_big" (nothing could make it fit)."""
    kinds = [
        ("transcoded" if upload.mime.startswith("video/") else "recompressed") if upload.changed else "as_is"
        for upload in fitted.uploads
    ]
    return kinds + ["too_big"] * len(fitted.too_big)
