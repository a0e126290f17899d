"""A video job's stages end to end (real nextcord, both emulators): the message shows the sampler's steps and the
frames it makes, then — the result being too large for the guild, so the bot transcodes it itself — "encoding
frame x/y", with the overall bar never going back, and finally the MP4 with the video's own buttons."""

from __future__ import annotations

import io
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.media import video
from tests.e2e.studio import Studio, studio_settings
from tests.e2e.test_buttons import delivered, job_id_of, labels, modal_from, result_of
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner

pytestmark = pytest.mark.timeout(90)

STEP = re.compile(r"sampling · step (\d+)/(\d+) · 25 frames")
ENCODING = re.compile(r"encoding frame (\d+)/(\d+)")
PERCENT = re.compile(r"\*\*(\d+)%\*\*")
#: The guild's upload limit: SVD's 25 frames of noise at 1024×576 are far over it, so the bot transcodes.
LIMIT = 400_000


@pytest.fixture
async def studio(
    discord_emulator: DiscordEmulator, comfy: ComfyEmulator, run_nextcord: NextcordRunner, tmp_path: Path
) -> AsyncIterator[Studio]:
    s = Studio(
        discord_emulator,
        comfy,
        run_nextcord,
        studio_settings(discord_emulator, comfy, tmp_path / "data", commands_per_minute=100, max_jobs_per_user=10),
    )
    yield s
    await s.stop()


@pytest.fixture
def slow_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each frame our transcode encodes takes 40 ms more (in the media thread, as on a slow machine): 25 frames
    last about a second, long enough for several "encoding frame x/y" edits at the editor's pace."""
    put_video = video._FrameEncoder.put_video

    def slowly(self: video._FrameEncoder, image: av.VideoFrame, at: float) -> None:
        time.sleep(0.04)
        put_video(self, image, at)

    monkeypatch.setattr(video._FrameEncoder, "put_video", slowly)


@pytest.mark.usefixtures("slow_encoding")
async def test_animate_shows_sampling_steps_then_encoding_frames_then_the_mp4(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.02
    await studio.start()
    source = await result_of(studio, width=256, height=256)
    studio.discord.config.upload_limit = LIMIT  # from now on the guild's interactions say so
    studio.comfy.config.noisy_pictures = True  # frames of noise: an MP4 far over that limit
    custom_id = encode(ComponentAction.ANIMATE, job_id_of(source), 0)
    press = await modal_from(studio, "carol", source, custom_id)
    submit = await studio.discord.submit_modal("carol", press, custom_id, {"frames": "25", "motion": "90"})

    result = await delivered(studio, submit)

    descriptions = [e.get("description", "") for snapshot in result.history for e in snapshot.embeds]
    steps = [(i, int(m.group(1))) for i, d in enumerate(descriptions) if (m := STEP.search(d))]
    encoding = [(i, int(m.group(1)), int(m.group(2))) for i, d in enumerate(descriptions) if (m := ENCODING.search(d))]
    assert steps, descriptions
    assert len(encoding) >= 2, descriptions
    assert max(i for i, _ in steps) < min(i for i, _, _ in encoding), "sampling comes before encoding"
    assert [s for _, s in steps] == sorted(s for _, s in steps)
    assert [n for _, n, _ in encoding] == sorted(n for _, n, _ in encoding)
    assert {total for *_, total in encoding} == {25}
    percents = [int(m.group(1)) for d in descriptions if (m := PERCENT.search(d))]
    assert percents == sorted(percents), percents

    attachment = result.attachments[0]
    assert attachment.filename.endswith(".mp4") and attachment.size <= LIMIT
    with av.open(io.BytesIO(attachment.data)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.format.name) == ("h264", "yuv420p")
        assert len(list(container.decode(stream))) >= 20
    # SVD takes no prompt: the video's own buttons (Extend: SVD continues from a last frame), nothing for a picture.
    assert labels(result) == ["Reroll", "Extend", "Info", "Delete"]
