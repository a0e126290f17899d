"""A video job's stages end to end (real nextcord, both emulators): the message shows the sampler's steps and the
frames it makes (with the live preview), then — when a server has an interpolation model — "Interpolating ·
frame x/y" in output frames, then — the result being too large for the guild, so the bot transcodes it itself —
"encoding frame x/y", with the overall bar never going back, and finally the MP4 with the video's own buttons."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest

from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.config import DEFAULT_MODELS
from discomfy.media import video
from tests.e2e.studio import Studio, studio_settings
from tests.e2e.test_animate import animate, png, posted_graphs, refusal
from tests.e2e.test_buttons import delivered, job_id_of, job_of, labels, modal_from, result_of
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner
from tests.peers.discord.interactions import InteractionRecord
from tests.peers.discord.messages import StoredMessage

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


# --- the optional frame interpolation stage ------------------------------------------------------------------------
# The emulator gets the interpolation model (FrameInterpolationModelLoader's folder), so the bot runs the stage:
# 9 sampled frames become (9 - 1) × 2 + 1 = 17 at twice the fps. Each stage is held (the emulator's
# hold_progress, our encoder's first frames) until the bot's message has shown it: the order is then certain,
# whatever the load of the machine, and nothing here depends on how long a stage lasts.

SAMPLED, MULTIPLIER = 9, 2
FRAMES_OUT = (SAMPLED - 1) * MULTIPLIER + 1
ANY_STEP = re.compile(r"sampling · step (\d+)/(\d+) · 9 frames")
INTERPOLATING = re.compile(r"\*\*Interpolating\*\* · frame (\d+)/(\d+)")
PREVIEW = "attachment://preview.jpg"


@dataclass
class EncodingHold:
    """Our transcode's third frame waits (in the media thread) until ``release``: "encoding frame x/y" is on the
    message by then (the first report is never throttled)."""

    released: threading.Event = field(default_factory=threading.Event)
    calls: int = 0

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def held_encoding(monkeypatch: pytest.MonkeyPatch) -> EncodingHold:
    hold = EncodingHold()
    put_video = video._FrameEncoder.put_video

    def held(self: video._FrameEncoder, image: av.VideoFrame, at: float) -> None:
        hold.calls += 1
        if hold.calls == 3:
            hold.released.wait(30)
        time.sleep(0.01)
        put_video(self, image, at)

    monkeypatch.setattr(video._FrameEncoder, "put_video", held)
    return hold


def with_interpolation_model(studio: Studio) -> None:
    """Before the bot starts (it reads the server's models then)."""
    studio.comfy.config.models["frame_interpolation"] = [DEFAULT_MODELS["interpolation_model"]]


def embeds_now(studio: Studio, interaction: InteractionRecord) -> str:
    message = studio.message(interaction)
    return str(message.embeds) if message is not None else ""


async def through_every_stage(studio: Studio, interaction: InteractionRecord, encoding: EncodingHold) -> StoredMessage:
    """Releases each held stage once the job's message shows it, then waits for the delivered result."""
    sampling, interpolating = studio.comfy.faults.holds["KSampler"], studio.comfy.faults.holds["FrameInterpolate"]
    for pattern, held in ((ANY_STEP, sampling), (INTERPOLATING, interpolating)):
        await studio.until(
            lambda p=pattern: p.search(embeds_now(studio, interaction)) and PREVIEW in embeds_now(studio, interaction),
            30.0,
            f"the job's message showing {pattern.pattern} with the preview",
        )
        held.set()
    await studio.until(lambda: ENCODING.search(embeds_now(studio, interaction)), 30.0, "encoding frame x/y")
    encoding.release()
    return await delivered(studio, interaction)


def assert_stages_in_order(result: StoredMessage) -> None:
    descriptions = [e.get("description", "") for snapshot in result.history for e in snapshot.embeds]
    steps = [i for i, d in enumerate(descriptions) if ANY_STEP.search(d)]
    frames = [(i, int(m[1]), int(m[2])) for i, d in enumerate(descriptions) if (m := INTERPOLATING.search(d))]
    encoding = [(i, int(m[1]), int(m[2])) for i, d in enumerate(descriptions) if (m := ENCODING.search(d))]
    assert steps and frames and encoding, descriptions
    assert max(steps) < min(i for i, *_ in frames), "sampling comes before interpolating"
    assert max(i for i, *_ in frames) < min(i for i, *_ in encoding), "interpolating comes before encoding"
    # Interpolation frames are output frames written, of (9 - 1) × 2 + 1; our encoding counts the same frames.
    assert {total for *_, total in frames} == {total for *_, total in encoding} == {FRAMES_OUT}
    assert [n for _, n, _ in frames] == sorted(n for _, n, _ in frames)
    assert all(n % 2 == 1 for _, n, _ in frames), frames  # 1 + 2 per finished pair
    assert [n for _, n, _ in encoding] == sorted(n for _, n, _ in encoding)
    percents = [int(m.group(1)) for d in descriptions if (m := PERCENT.search(d))]
    assert percents == sorted(percents), percents
    # The sampler's preview (frame 1 of the video) stays on the message while the frames are interpolated.
    shown = [PREVIEW in str(s.embeds) for s in result.history if INTERPOLATING.search(str(s.embeds))]
    assert shown and all(shown)


def assert_interpolated_mp4(result: StoredMessage, fps: int) -> None:
    attachment = result.attachments[0]
    assert attachment.filename.endswith(".mp4") and attachment.size <= LIMIT
    with av.open(io.BytesIO(attachment.data)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.format.name) == ("h264", "yuv420p")
        decoded = list(container.decode(stream))
        assert len(decoded) == FRAMES_OUT
        # Twice the frames at twice the fps: as long as the 9 sampled frames at the asked fps.
        assert float(stream.average_rate) == 2 * fps


async def test_animate_from_a_result_shows_steps_then_interpolated_frames_then_encoding(
    studio: Studio, held_encoding: EncodingHold
) -> None:
    with_interpolation_model(studio)
    await studio.start()
    source = await result_of(studio, width=256, height=256, steps=2)
    studio.discord.config.upload_limit = LIMIT
    studio.comfy.config.noisy_pictures = True
    studio.comfy.faults.hold_progress("KSampler")
    studio.comfy.faults.hold_progress("FrameInterpolate")
    custom_id = encode(ComponentAction.ANIMATE, job_id_of(source), 0)
    press = await modal_from(studio, "carol", source, custom_id)
    submit = await studio.discord.submit_modal("carol", press, custom_id, {"frames": str(SAMPLED), "fps": "8"})

    result = await through_every_stage(studio, submit, held_encoding)

    assert_stages_in_order(result)
    assert_interpolated_mp4(result, fps=8)
    job = await job_of(studio, result)
    assert (job.workflow, job.params["frames"], job.params["fps"], job.params["interpolate"]) == (
        "img2vid",
        SAMPLED,
        8,
        True,
    )

    # Reroll: the recorded stage choice is not taken for an option; the stage is chosen again (still on).
    reroll = await studio.discord.click_button("carol", result, encode(ComponentAction.REROLL, job.id))
    again = await job_of(studio, await delivered(studio, reroll))
    assert again.id != job.id and again.params["interpolate"] is True and again.params["frames"] == SAMPLED


async def test_slash_animate_from_an_attachment_shows_steps_then_interpolated_frames_then_encoding(
    studio: Studio, held_encoding: EncodingHold
) -> None:
    with_interpolation_model(studio)
    await studio.start()
    studio.discord.config.upload_limit = LIMIT
    studio.comfy.config.noisy_pictures = True
    studio.comfy.faults.hold_progress("KSampler")
    studio.comfy.faults.hold_progress("FrameInterpolate")
    interaction = await studio.discord.send_slash_command(
        "carol", "general", "animate", {"frames": SAMPLED}, attachments={"image": ("cat.png", png())}
    )
    await studio.discord.wait_for_response(interaction)

    result = await through_every_stage(studio, interaction, held_encoding)

    assert_stages_in_order(result)
    job = await job_of(studio, result)
    assert job.params["interpolate"] is True
    assert_interpolated_mp4(result, fps=job.params["fps"])
    graph = next(g for g in posted_graphs(studio) if "SVD_img2vid_Conditioning" in str(g))
    assert graph["11"]["class_type"] == "FrameInterpolate" and graph["10"]["inputs"]["model_name"] == "rife47.pth"


async def test_without_the_interpolation_model_the_video_has_the_sampled_frames(studio: Studio) -> None:
    await studio.start()  # the emulator's frame_interpolation folder is empty
    interaction = await studio.discord.send_slash_command(
        "carol", "general", "animate", {"frames": 5}, attachments={"image": ("cat.png", png())}
    )
    await studio.discord.wait_for_response(interaction)

    result = await delivered(studio, interaction)

    with av.open(io.BytesIO(result.attachments[0].data)) as container:
        assert len(list(container.decode(container.streams.video[0]))) == 5
    job = await job_of(studio, result)
    assert job.params["interpolate"] is False
    [graph] = [g for g in posted_graphs(studio) if "SVD_img2vid_Conditioning" in str(g)]
    assert not {"FrameInterpolate", "FrameInterpolationModelLoader"} & {n["class_type"] for n in graph.values()}
    assert graph["8"]["inputs"]["images"] == ["7", 0]


async def test_without_a_video_model_the_interpolation_model_alone_is_not_enough_and_is_not_asked_for(
    studio: Studio,
) -> None:
    with_interpolation_model(studio)
    studio.comfy.config.models["checkpoints"] = ["v1-5-pruned-emaonly.safetensors"]
    await studio.start()

    text = await refusal(studio, await animate(studio))

    assert "svd_xt.safetensors" in text and DEFAULT_MODELS["wan22_model"] in text and "admin" in text, text
    assert DEFAULT_MODELS["interpolation_model"] not in text, text
