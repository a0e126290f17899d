"""Size-aware delivery: make a message's files fit Discord's upload limits, and say what was changed.

How it works:
- ``fit_for_discord`` takes the files of one message and the limits (the interaction's
  ``attachment_size_limit`` or 10 MiB per file, and optionally a total for the message). Files are handled one
  at a time, smallest first; each gets its share of what is left of the total (``plan.share_budget``: small files
  keep their size, the largest are squeezed first), so a file that came out smaller leaves more to the rest.
- Per file (``fit_one``, blocking, run on ``_EXECUTOR``'s threads — never on the event loop):
  - a still image within its budget is sent as is; a larger one goes through ``images.fit_still``;
  - an animation (GIF / animated WebP / APNG) within budget is sent as is; a larger one becomes an H.264 MP4;
  - a video is sent as is only when it fits and is already an MP4 of H.264 in yuv420p (with AAC/MP3 audio or
    none), which Discord clients play inline; any other video (WEBM, MOV, another codec, too large) is
    transcoded to one, within budget;
  - anything else is sent as is when it fits.
  Whatever cannot be made to fit — or cannot be read and does not fit — is named in ``too_big``, with a plain
  note; nothing larger than its budget is ever returned.
- Upload names keep the original stem with the extension of what is sent, made unique within the message.

``on_progress`` hears a transcode's frames (encoded, in all) on the event loop, for "encoding frame x/y".

Never: block the event loop, raise for a file's content (unreadable media is reported, not raised), return
an upload over ``per_file_limit`` or a message over ``total_limit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from discomfy.media import images, plan, video
from discomfy.media.errors import MediaError

log = logging.getLogger(__name__)

#: Pillow and PyAV work. Two threads: the machines have few cores and libx264 threads on its own.
_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="discomfy-media")

_MIME_BY_FORMAT = {"PNG": "image/png", "WEBP": "image/webp", "JPEG": "image/jpeg", "MP4": "video/mp4"}


@dataclass(frozen=True)
class Upload:
    filename: str  # what Discord shows; the extension matches the data
    data: bytes
    mime: str
    original_filename: str
    original_size: int
    changed: bool  # re-encoded / transcoded to fit or to play
    note: str | None  # short human text, e.g. "… compressed to WebP (quality 85) to fit …"


@dataclass(frozen=True)
class FitResult:
    uploads: tuple[Upload, ...]
    too_big: tuple[str, ...]  # original filenames nothing could make fit
    notes: tuple[str, ...]  # one line per change or refusal, for the message


@dataclass(frozen=True)
class Outcome:
    """What became of one file: ``data`` None means it could not be sent; ``fmt`` None means unchanged."""

    data: bytes | None
    fmt: str | None
    note: str | None


#: Hears (frames encoded, frames in all) of a transcode, on the event loop.
EncodingProgress = Callable[[int, int], None]


async def fit_for_discord(
    files: Sequence[tuple[str, bytes]],
    *,
    per_file_limit: int,
    total_limit: int | None = None,
    on_progress: EncodingProgress | None = None,
) -> FitResult:
    """Every file of one message, made to fit ``per_file_limit`` each and ``total_limit`` together.

    ``on_progress`` (optional) is called on the event loop with (frames encoded, frames in all) while a video or
    an animation is transcoded: the media thread hands each throttled report over with ``call_soon_threadsafe``.
    """
    progress = _threadsafe(on_progress) if on_progress is not None else None
    order = sorted(range(len(files)), key=lambda i: len(files[i][1]))
    left = total_limit
    outcomes: dict[int, Outcome] = {}
    for position, index in enumerate(order):
        demands = [_demand(*files[j], per_file_limit) for j in order[position:]]
        budget = plan.share_budget(demands, per_file_limit, left)[0]
        name, data = files[index]
        outcome = await run_in_media_thread(fit_one, name, data, budget, per_file_limit, progress)
        outcomes[index] = outcome
        if left is not None and outcome.data is not None:
            left -= len(outcome.data)
    return _assemble(files, outcomes)


async def run_in_media_thread[T](function: Callable[..., T], *args: object) -> T:
    """Run blocking media work on the media threads, keeping the event loop free."""
    return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, function, *args)


def _threadsafe(on_progress: EncodingProgress) -> video.FrameProgress:
    """A progress callback for the media thread that runs ``on_progress`` on the current event loop."""
    loop = asyncio.get_running_loop()

    def report(done: int, total: int) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to tell
            loop.call_soon_threadsafe(on_progress, done, total)

    return report


def _demand(name: str, data: bytes, per_file_limit: int) -> int:
    # A video may have to be transcoded even when it fits (to play inline): let it ask for a full share.
    return per_file_limit if plan.sniff(name, data) is plan.Kind.VIDEO else len(data)


def _assemble(files: Sequence[tuple[str, bytes]], outcomes: dict[int, Outcome]) -> FitResult:
    uploads: list[Upload] = []
    too_big: list[str] = []
    notes: list[str] = []
    taken: set[str] = set()
    for index, (name, data) in enumerate(files):
        outcome = outcomes[index]
        if outcome.note:
            notes.append(outcome.note)
        if outcome.data is None:
            too_big.append(name)
            continue
        if outcome.fmt is None:
            filename, mime = _unique(name, taken), plan.mime_type(name, data)
        else:
            filename, mime = plan.output_name(name, outcome.fmt, taken), _MIME_BY_FORMAT[outcome.fmt]
        taken.add(filename)
        changed = outcome.fmt is not None
        uploads.append(Upload(filename, outcome.data, mime, name, len(data), changed, outcome.note))
    return FitResult(tuple(uploads), tuple(too_big), tuple(notes))


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    stem, dot, suffix = name.rpartition(".")
    base, tail = (stem, f".{suffix}") if dot else (name, "")
    counter = 2
    while f"{base}_{counter}{tail}" in taken:
        counter += 1
    return f"{base}_{counter}{tail}"


def fit_one(
    name: str, data: bytes, budget: int, per_file_limit: int, progress: video.FrameProgress | None = None
) -> Outcome:
    """One file within ``budget`` bytes (blocking: Pillow / PyAV). ``progress`` hears a transcode's frames."""
    size = len(data)
    kind = plan.sniff(name, data)
    try:
        if kind is plan.Kind.IMAGE:
            return _fit_image(name, data, budget, per_file_limit, progress)
        if kind is plan.Kind.VIDEO:
            return _fit_video(name, data, budget, per_file_limit, progress)
    except MediaError as exc:
        if size <= budget:
            log.info("sending %s as is: %s", name, exc)
            return Outcome(data, None, None)
        log.info("cannot fit %s: %s", name, exc)
        note = plan.too_big_note(name, size, budget, per_file_limit, "it could not be read as an image or a video")
        return Outcome(None, None, note)
    if size <= budget:
        return Outcome(data, None, None)
    return Outcome(None, None, plan.too_big_note(name, size, budget, per_file_limit, "it is not an image or a video"))


def _fit_image(
    name: str, data: bytes, budget: int, per_file_limit: int, progress: video.FrameProgress | None = None
) -> Outcome:
    size = len(data)
    if size <= budget:
        return Outcome(data, None, None)
    limit = plan.limit_phrase(budget, per_file_limit)
    if images.inspect_image(data).animated:
        probe = video.probe_animation(data)
        result = video.transcode(data, probe, budget, animation=True, progress=progress)
        return _transcoded(name, size, result, budget, per_file_limit, limit)
    encoded = images.fit_still(data, budget)
    if encoded is None:
        return Outcome(None, None, plan.too_big_note(name, size, budget, per_file_limit))
    note = plan.image_note(name, encoded.step, size, len(encoded.data), limit)
    log.info("%s", note)
    return Outcome(encoded.data, encoded.step.format, note)


def _fit_video(
    name: str, data: bytes, budget: int, per_file_limit: int, progress: video.FrameProgress | None = None
) -> Outcome:
    size = len(data)
    probe = video.probe_video(data)
    playable = (
        plan.is_mp4(name, data)
        and probe.codec == "h264"
        and probe.pix_fmt == "yuv420p"
        and probe.audio_codec in (None, "aac", "mp3")
    )
    if playable and size <= budget:
        return Outcome(data, None, None)
    # A fitting video is converted only so that it plays inline: the note says so rather than naming a limit.
    limit = None if size <= budget else plan.limit_phrase(budget, per_file_limit)
    result = video.transcode(data, probe, budget, animation=False, progress=progress)
    return _transcoded(name, size, result, budget, per_file_limit, limit)


def _transcoded(
    name: str,
    size: int,
    result: video.Transcoded | None,
    budget: int,
    per_file_limit: int,
    limit: str | None,
) -> Outcome:
    if result is None:
        return Outcome(None, None, plan.too_big_note(name, size, budget, per_file_limit))
    note = plan.video_note(name, result.video_plan, result.source, size, len(result.data), limit)
    log.info("%s", note)
    return Outcome(result.data, "MP4", note)
