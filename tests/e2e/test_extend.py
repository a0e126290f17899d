"""Extend end to end: a video result continued from its last frame, with the real nextcord client and both
emulators. The emulator runs SVD (``img2vid``, the last of the video fallbacks); its manifest says how long an
extended video may get (``extend_max_frames``). The delivered video is the original followed by the new part,
the junction frame once, at the original's frame rate."""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import pytest

from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.comfy.engine import InputImage
from discomfy.config import DEFAULT_MODELS
from discomfy.jobs import service as service_module
from discomfy.jobs.state import Job, JobAction, JobState
from discomfy.media.join import last_frame
from tests.e2e.studio import WORKFLOWS, Studio
from tests.e2e.test_animate import animate
from tests.e2e.test_buttons import delivered, generate, job_id_of, job_of, labels, make_studio, running
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner
from tests.peers.discord.interactions import InteractionRecord, forge_press, other_guild
from tests.peers.discord.messages import StoredMessage

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def studio(
    discord_emulator: DiscordEmulator, comfy: ComfyEmulator, run_nextcord: NextcordRunner, tmp_path: Path
) -> AsyncIterator[Studio]:
    s = make_studio(
        discord_emulator, comfy, run_nextcord, tmp_path / "data", commands_per_minute=100, max_jobs_per_user=10
    )
    yield s
    await s.stop()


def probe(data: bytes) -> tuple[str, str, int, Fraction]:
    """Codec, pixel format, decoded frame count and frame rate of an MP4."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = len(list(container.decode(stream)))
        rate = stream.average_rate
        assert rate is not None
        return stream.codec_context.name, str(stream.codec_context.pix_fmt), frames, Fraction(rate)


async def video_result(studio: Studio, frames: int) -> StoredMessage:
    return await delivered(studio, await animate(studio, frames=frames))


async def press_extend(studio: Studio, video: StoredMessage, user: str = "bob") -> InteractionRecord:
    press = await studio.discord.click_button(user, video, encode(ComponentAction.EXTEND, job_id_of(video), 0))
    await studio.discord.wait_for_response(press)
    return press


async def reply_text(studio: Studio, interaction: InteractionRecord) -> str:
    """The private answer to a press: its first response, or a follow-up when the refusal came after deferring."""

    def ready() -> StoredMessage | None:
        followups = studio.discord.followups(interaction)
        if followups:
            return followups[-1]
        message = studio.discord.original_message(interaction)
        return message if message is not None and not message.loading else None

    message = await studio.until(ready, 20.0, "an answer to the press")
    assert message.ephemeral, message
    return message.content or " ".join(e.get("description", "") for e in message.embeds)


async def extension_row(studio: Studio, *states: JobState) -> Job:
    """Bob's extension job once its row exists (in one of ``states``, when given)."""
    bob = studio.discord.users["bob"].id
    for _ in range(1000):  # bounded: 20 s
        for job in await studio.stack.store.by_owner(bob):
            if job.action is JobAction.EXTEND and (not states or job.state in states):
                return job
        await asyncio.sleep(0.02)
    raise TimeoutError("no extension row")


def prompts_sent(studio: Studio) -> int:
    return sum(1 for r in studio.comfy.requests if r.method == "POST" and r.path.endswith("/prompt"))


async def test_extend_delivers_one_video_of_the_original_then_the_new_part_with_the_buttons_again(
    studio: Studio,
) -> None:
    await studio.start()
    video = await video_result(studio, frames=5)
    original = video.attachments[0].data
    assert "Extend" in labels(video)
    _, _, original_frames, original_rate = probe(original)

    extended = await delivered(studio, await press_extend(studio, video))

    job = await job_of(studio, extended)
    parent = await job_of(studio, video)
    assert job.action is JobAction.EXTEND and job.parent_id == parent.id and job.workflow == parent.workflow
    assert job.seed != parent.seed and job.params["frames"] == parent.params["frames"] == 5
    # The new part started from the original's last frame: that very picture was uploaded as its input.
    last = last_frame(original)
    assert job.params["image"] == InputImage.from_bytes(last.last_png, "png").load_image_value
    [attachment] = extended.attachments
    assert attachment.filename.endswith(".mp4")
    assert probe(attachment.data) == ("h264", "yuv420p", original_frames + 5 - 1, original_rate)
    assert {"Reroll", "Extend", "Info", "Delete"} <= set(labels(extended))

    # And again: the extended video is extended in turn.
    again = await delivered(studio, await press_extend(studio, extended, user="carol"))
    assert probe(again.attachments[0].data)[2] == original_frames + 2 * (5 - 1)


async def test_extend_of_a_video_whose_file_is_gone_says_so_and_sends_nothing(studio: Studio) -> None:
    await studio.start()
    video = await video_result(studio, frames=3)
    stack = studio.stack
    [stored] = await stack.store.outputs(job_id_of(video))
    stack.outputs.path(stored).unlink()  # as the cap would: the file is gone, the row keeps its Discord URL
    await stack.store.evict_output(stored.job_id, stored.index)
    before = prompts_sent(studio)

    text = await reply_text(studio, await press_extend(studio, video))

    assert "no longer kept" in text and "Reroll" in text, text
    assert prompts_sent(studio) == before
    assert await stack.store.by_owner(studio.discord.users["bob"].id, active_only=False) == []


async def test_extend_past_the_workflows_length_bound_is_refused_naming_the_bound(
    discord_emulator: DiscordEmulator, comfy: ComfyEmulator, run_nextcord: NextcordRunner, tmp_path: Path
) -> None:
    folder = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, folder)
    manifest = folder / "img2vid.toml"
    manifest.write_text(manifest.read_text().replace("extend_max_frames = 121", "extend_max_frames = 12"))
    studio = make_studio(discord_emulator, comfy, run_nextcord, tmp_path / "data", commands_per_minute=100)
    studio.settings = replace(studio.settings, workflows_dir=folder)
    try:
        await studio.start()
        video = await video_result(studio, frames=6)
        extended = await delivered(studio, await press_extend(studio, video))  # 6 + 6 - 1 = 11 frames: within
        assert probe(extended.attachments[0].data)[2] == 11
        before = prompts_sent(studio)

        text = await reply_text(studio, await press_extend(studio, extended))  # 11 + 6 - 1 = 16: over

        assert "has 11 frames" in text and "would make 16" in text and "12 frames" in text, text
        assert prompts_sent(studio) == before
    finally:
        await studio.stop()


async def test_an_extend_press_from_another_guild_is_refused(studio: Studio) -> None:
    await studio.start()
    video = await video_result(studio, frames=3)
    before = prompts_sent(studio)

    press = await forge_press(
        studio.discord,
        "bob",
        video,
        encode(ComponentAction.EXTEND, job_id_of(video), 0),
        other_guild(studio.discord),
    )

    text = await reply_text(studio, press)
    assert "another server" in text, text
    assert prompts_sent(studio) == before
    assert await studio.stack.store.by_owner(studio.discord.users["bob"].id, active_only=False) == []


async def test_an_extend_survives_a_bot_restart_while_it_runs(studio: Studio) -> None:
    await studio.start()
    video = await video_result(studio, frames=4)
    studio.comfy.config.step_duration = 0.1  # 20 steps: the restart lands while ComfyUI works on the new part
    press = await press_extend(studio, video)

    await extension_row(studio, JobState.RUNNING)
    await studio.restart()
    studio.comfy.config.step_duration = 0.005

    extended = await delivered(studio, press)
    job = await job_of(studio, extended)
    assert job.action is JobAction.EXTEND and job.state is JobState.DELIVERED
    assert probe(extended.attachments[0].data)[2] == 4 + 4 - 1
    assert prompts_sent(studio) == 2  # the animation and the extension, each sent once


async def test_an_extend_waiting_in_our_queue_across_a_restart_starts_from_the_same_last_frame(studio: Studio) -> None:
    await studio.start()
    video = await video_result(studio, frames=4)
    last = last_frame(video.attachments[0].data)
    studio.comfy.config.step_duration = 0.05
    busy = await generate(studio, "carol", steps=40)  # holds the one slot the studio gives the server
    await running(studio, busy)
    press = await press_extend(studio, video)
    waiting = await extension_row(studio)
    assert waiting.state is JobState.WAITING

    await studio.restart()  # the row is all there is now: its picture is made again from the stored video
    studio.comfy.config.step_duration = 0.005

    extended = await delivered(studio, press)
    job = await job_of(studio, extended)
    assert job.id == waiting.id
    assert job.params["image"] == InputImage.from_bytes(last.last_png, "png").load_image_value
    uploaded = Path(studio.comfy.input_dir) / str(job.params["image"])
    assert uploaded.read_bytes() == last.last_png
    assert probe(extended.attachments[0].data)[2] == 4 + 4 - 1
    # One message for the job: a message posted just before the restart is the one delivered to, never left stale.
    channel = studio.discord.messages(press.channel.id)
    assert [m.id for m in channel if any(job.id in str(e.get("footer")) for e in m.embeds)] == [extended.id]


async def test_a_waiting_extend_still_runs_when_a_newer_library_writes_the_last_frame_differently(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade (PyAV, Pillow) the rebuilt last-frame PNG may have other bytes than the one the job's graph
    names: it is the same picture, sent under the recorded name, and the job runs."""
    await studio.start()
    video = await video_result(studio, frames=4)
    studio.comfy.config.step_duration = 0.05
    busy = await generate(studio, "carol", steps=40)
    await running(studio, busy)
    press = await press_extend(studio, video)
    waiting = await extension_row(studio)

    def rewritten(data: bytes) -> object:
        frames = last_frame(data)
        return replace(frames, last_png=frames.last_png + b"\0")  # other bytes after IEND: the same picture

    monkeypatch.setattr(service_module, "last_frame", rewritten)
    await studio.restart()
    studio.comfy.config.step_duration = 0.005

    extended = await delivered(studio, press)
    job = await job_of(studio, extended)
    assert job.id == waiting.id
    uploaded = Path(studio.comfy.input_dir) / str(job.params["image"])
    assert uploaded.read_bytes().endswith(b"\0")
    assert probe(extended.attachments[0].data)[2] == 4 + 4 - 1


async def test_reroll_of_an_extension_extends_the_same_video_again_with_a_new_seed(studio: Studio) -> None:
    await studio.start()
    video = await video_result(studio, frames=4)
    extended = await delivered(studio, await press_extend(studio, video))
    first = await job_of(studio, extended)

    press = await studio.discord.click_button("carol", extended, encode(ComponentAction.REROLL, first.id))
    again = await delivered(studio, press)

    job = await job_of(studio, again)
    assert job.action is JobAction.EXTEND and job.parent_id == first.parent_id and job.seed != first.seed
    assert probe(again.attachments[0].data)[2] == 4 + 4 - 1  # the same video, another new part


async def test_animate_while_every_server_is_down_runs_the_workflow_the_returning_server_can_and_names_it(
    studio: Studio,
) -> None:
    await studio.comfy.go_down()
    await studio.start()

    interaction = await animate(studio, prompt="the cat slowly turns its head", frames=9)
    shown = await studio.until(lambda: (m := studio.message(interaction)) and m.embeds and m, what="its message")
    waiting = await job_of(studio, shown)
    assert waiting.workflow == "img2vid_wan22" and waiting.state is JobState.WAITING
    assert "img2vid" in str(shown.embeds[0]) and "wan22" in str(shown.embeds[0])  # named as asked, for now

    studio.comfy.config.models = {
        "checkpoints": [DEFAULT_MODELS["ltxv_checkpoint"]],
        "text_encoders": [DEFAULT_MODELS["ltxv_text_encoder"]],
    }
    await studio.comfy.come_up()
    video = await delivered(studio, interaction)

    job = await job_of(studio, video)
    assert job.id == waiting.id and job.workflow == "img2vid_ltxv" and job.params["frames"] == 9
    fields = {f["name"]: f["value"] for f in video.embeds[0].get("fields", [])}
    assert "img2vid\\_ltxv" in fields["Workflow"] or "img2vid_ltxv" in fields["Workflow"], fields
    assert probe(video.attachments[0].data)[:3] == ("h264", "yuv420p", 9)
