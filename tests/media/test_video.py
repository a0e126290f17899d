"""Videos and animations through ``fit_for_discord``: H.264 MP4, yuv420p, moov first, within budget."""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import dataclass

import av
import pytest

from discomfy.media import fit_for_discord
from discomfy.media.video import ProgressReporter
from tests.media.makers import animation_bytes, video_bytes

MIB = 1024 * 1024
LIMIT = 10 * MIB


@dataclass
class Decoded:
    video_codec: str
    pix_fmt: str | None
    width: int
    height: int
    frames: int
    audio_codec: str | None
    duration: float


def decode(data: bytes) -> Decoded:
    """Decode every frame, as a player would."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        frames = sum(1 for _ in container.decode(stream))
        ctx = stream.codec_context
        pix_fmt = ctx.format.name if ctx.format is not None else None
        duration = (container.duration or 0) / 1_000_000
        return Decoded(ctx.name, pix_fmt, ctx.width, ctx.height, frames, audio, duration)


def moov_before_mdat(data: bytes) -> bool:
    """Walk the top-level MP4 boxes: ``moov`` must come before ``mdat`` (faststart)."""
    offset, order = 0, []
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        order.append(data[offset + 4 : offset + 8])
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        if size < 8:
            break
        offset += size
    return b"moov" in order and b"mdat" in order and order.index(b"moov") < order.index(b"mdat")


@pytest.fixture(scope="module")
def video_60mb() -> bytes:
    data = video_bytes(
        width=1920, height=1080, frames=32, fps=15, options={"preset": "ultrafast", "crf": "8"}, audio=True
    )
    assert len(data) > 50 * MIB
    return data


async def test_a_60_mb_video_is_delivered_under_10_mib_and_plays(video_60mb: bytes) -> None:
    result = await fit_for_discord([("ComfyUI_00001_.mp4", video_60mb)], per_file_limit=LIMIT)
    (upload,) = result.uploads
    assert len(upload.data) <= LIMIT and upload.changed and upload.mime == "video/mp4"
    assert upload.note is not None and "H.264" in upload.note and "10 MiB" in upload.note
    assert moov_before_mdat(upload.data)
    decoded = decode(upload.data)
    assert (decoded.video_codec, decoded.pix_fmt) == ("h264", "yuv420p")
    assert decoded.frames == 32 and decoded.audio_codec == "aac"
    assert decoded.width % 2 == 0 and decoded.height % 2 == 0


async def test_a_fitting_h264_mp4_passes_through_untouched() -> None:
    data = video_bytes(width=160, height=120, frames=6, fps=12, options={"preset": "ultrafast"})
    result = await fit_for_discord([("clip.mp4", data)], per_file_limit=LIMIT)
    (upload,) = result.uploads
    assert upload.data == data and not upload.changed and upload.note is None


async def test_a_fitting_webm_becomes_h264_mp4_so_it_plays_inline() -> None:
    data = video_bytes(width=160, height=120, frames=6, fps=12, codec="libvpx", container="webm")
    result = await fit_for_discord([("clip.webm", data)], per_file_limit=LIMIT)
    (upload,) = result.uploads
    assert upload.filename == "clip.mp4" and upload.changed
    assert upload.note is not None and "plays in Discord" in upload.note
    assert moov_before_mdat(upload.data)
    decoded = decode(upload.data)
    assert (decoded.video_codec, decoded.pix_fmt, decoded.frames) == ("h264", "yuv420p", 6)


async def test_a_fitting_mp4_in_another_codec_is_transcoded_to_h264() -> None:
    data = video_bytes(width=162, height=122, frames=5, fps=10, codec="mpeg4")
    result = await fit_for_discord([("clip.mp4", data)], per_file_limit=LIMIT)
    (upload,) = result.uploads
    assert upload.changed and decode(upload.data).video_codec == "h264"


async def test_audio_is_dropped_when_the_budget_is_tiny_and_the_note_says_so() -> None:
    data = video_bytes(width=320, height=240, frames=50, fps=10, options={"preset": "ultrafast"}, audio=True)
    budget = 120 * 1024
    assert len(data) > budget
    result = await fit_for_discord([("long.mp4", data)], per_file_limit=budget)
    (upload,) = result.uploads
    assert len(upload.data) <= budget
    assert upload.note is not None and "audio dropped" in upload.note
    assert decode(upload.data).audio_codec is None


async def test_a_video_nothing_can_fit_is_reported_too_big() -> None:
    data = video_bytes(width=320, height=240, frames=20, fps=10, options={"preset": "ultrafast"})
    result = await fit_for_discord([("clip.mp4", data)], per_file_limit=20 * 1024)
    assert result.uploads == () and result.too_big == ("clip.mp4",)
    assert "could not be sent" in result.notes[0]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
async def test_a_too_large_animation_becomes_mp4(fmt: str) -> None:
    data = animation_bytes(fmt, frames=12, size=192, duration_ms=80)
    budget = len(data) // 3
    result = await fit_for_discord([(f"anim.{fmt.lower()}", data)], per_file_limit=budget)
    (upload,) = result.uploads
    assert upload.filename == "anim.mp4" and len(upload.data) <= budget
    assert moov_before_mdat(upload.data)
    decoded = decode(upload.data)
    assert (decoded.video_codec, decoded.pix_fmt, decoded.frames) == ("h264", "yuv420p", 12)
    assert 0.8 <= decoded.duration <= 1.2  # 12 frames of 80 ms


async def test_a_fitting_animation_is_sent_as_is() -> None:
    data = animation_bytes("GIF", frames=3, size=32)
    result = await fit_for_discord([("anim.gif", data)], per_file_limit=LIMIT)
    assert result.uploads[0].data == data and not result.uploads[0].changed


# --- encoding progress -------------------------------------------------------------------------------------


async def test_a_transcode_reports_monotone_frame_progress_on_the_loop_ending_at_the_total() -> None:
    data = video_bytes(width=162, height=122, frames=40, fps=10, codec="mpeg4")
    loop_thread = threading.get_ident()
    heard: list[tuple[int, int, bool]] = []
    result = await fit_for_discord(
        [("clip.mp4", data)],
        per_file_limit=LIMIT,
        on_progress=lambda done, total: heard.append((done, total, threading.get_ident() == loop_thread)),
    )
    await asyncio.sleep(0)  # the last report is scheduled with call_soon_threadsafe: let it run
    assert result.uploads[0].changed
    assert heard, "no progress was reported"
    assert all(on_loop for *_, on_loop in heard), "progress must be handled on the event loop"
    done = [d for d, _, _ in heard]
    assert done == sorted(set(done)) and heard[-1][:2] == (40, 40)
    assert {total for _, total, _ in heard} == {40}


async def test_an_animation_transcode_reports_its_frames_too() -> None:
    data = animation_bytes("GIF", frames=12, size=240)
    heard: list[tuple[int, int]] = []
    result = await fit_for_discord(
        [("loop.gif", data)], per_file_limit=len(data) // 2, on_progress=lambda d, t: heard.append((d, t))
    )
    await asyncio.sleep(0)
    assert result.uploads[0].filename == "loop.mp4"
    assert heard[0][0] >= 1 and heard[-1] == (12, 12) and [d for d, _ in heard] == sorted({d for d, _ in heard})


async def test_a_video_sent_as_is_reports_no_progress() -> None:
    data = video_bytes(width=160, height=120, frames=4, fps=10)
    heard: list[tuple[int, int]] = []
    result = await fit_for_discord(
        [("ok.mp4", data)], per_file_limit=LIMIT, on_progress=lambda d, t: heard.append((d, t))
    )
    assert not result.uploads[0].changed and heard == []


def test_the_reporter_throttles_keeps_to_growth_and_always_ends_at_the_total() -> None:
    now = [0.0]
    heard: list[tuple[int, int]] = []
    reporter = ProgressReporter(lambda d, t: heard.append((d, t)), 10, interval=0.1, clock=lambda: now[0])
    for frame in range(1, 6):  # five frames within one interval: only the first is shown
        reporter.report(frame)
    now[0] = 0.2
    reporter.report(6)
    reporter.report(3)  # a retry starts again: not shown, the shown count never goes back
    now[0] = 0.4
    reporter.report(4)
    reporter.finish()
    reporter.finish()
    assert heard == [(1, 10), (6, 10), (10, 10)]
