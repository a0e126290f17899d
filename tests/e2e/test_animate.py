"""Animate end to end: the button's form and ``/animate`` from an attachment, with the real nextcord client and
both emulators.

The video workflow that runs is chosen once, up front (``JobService.runnable``): Wan 2.2 (the default), else
LTX-Video, else SVD — the first whose models a healthy server has. The ComfyUI emulator has SVD's checkpoint
only (and SVD's nodes), so jobs that run to the end are SVD's; a test that gives the server Wan 2.2's model
files sees Wan's form and Wan's bounds, and its motion prompt in the graph sent to ComfyUI.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.config import DEFAULT_MODELS
from tests.e2e.studio import Studio
from tests.e2e.test_buttons import answer, delivered, job_id_of, job_of, make_studio, modal_from, result_of
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner
from tests.peers.discord.interactions import InteractionRecord, ResponseType

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def studio(
    discord_emulator: DiscordEmulator, comfy: ComfyEmulator, run_nextcord: NextcordRunner, tmp_path: Path
) -> AsyncIterator[Studio]:
    s = make_studio(
        discord_emulator, comfy, run_nextcord, tmp_path / "data", commands_per_minute=100, max_jobs_per_user=10
    )
    yield s
    await s.stop()


def png(width: int = 256, height: int = 256) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


async def animate(studio: Studio, user: str = "carol", **options: Any) -> InteractionRecord:
    interaction = await studio.discord.send_slash_command(
        user, "general", "animate", options, attachments={"image": ("cat.png", png())}
    )
    await studio.discord.wait_for_response(interaction)
    return interaction


async def refusal(studio: Studio, interaction: InteractionRecord) -> str:
    message = await answer(studio, interaction)
    assert message.ephemeral, message
    return message.content or " ".join(e.get("description", "") for e in message.embeds)


def assert_playable_h264(data: bytes, frames: int) -> None:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert len(list(container.decode(stream))) == frames


def field_labels(press: InteractionRecord) -> dict[str, str]:
    assert press.modal is not None, press.responses
    return {row["components"][0]["custom_id"]: row["components"][0]["label"] for row in press.modal["components"]}


def posted_graphs(studio: Studio) -> list[dict[str, Any]]:
    return [r.json["prompt"] for r in studio.comfy.requests if r.method == "POST" and r.path.endswith("/prompt")]


def with_wan_models(studio: Studio) -> None:
    """The server as the bot sees it gains Wan 2.2's model files (the emulator has neither them nor Wan's nodes)."""
    server = studio.stack.pool.servers[0]
    server.models = server.models | studio.stack.service.registry.needed_models("img2vid_wan22")


async def test_animate_from_a_result_uses_the_runnable_workflows_form_and_delivers_an_h264_mp4(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, steps=2, width=256, height=256)
    custom_id = encode(ComponentAction.ANIMATE, job_id_of(source), 0)
    press = await modal_from(studio, "carol", source, custom_id)
    # Wan 2.2 and LTX-Video's models are not on the emulator: the form is SVD's (no motion prompt).
    assert field_labels(press) == {
        "frames": "Frames (1–25)",
        "fps": "Frames per second (1–30)",
        "motion": "Motion amount (1–255)",
        "strength": "Change from the picture (0–1)",
    }

    submit = await studio.discord.submit_modal("carol", press, custom_id, {"frames": "5", "fps": "8"})
    video = await delivered(studio, submit)

    job = await job_of(studio, video)
    assert job.workflow == "img2vid" and job.params["frames"] == 5 and job.params["fps"] == 8
    assert video.attachments[0].filename.endswith(".mp4")
    assert_playable_h264(video.attachments[0].data, 5)


async def test_slash_animate_makes_a_video_from_an_uploaded_picture(studio: Studio) -> None:
    await studio.start()
    interaction = await animate(studio, frames=4)
    assert interaction.response_type is ResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, interaction.responses

    video = await delivered(studio, interaction)

    job = await job_of(studio, video)
    assert job.workflow == "img2vid" and job.params["frames"] == 4
    assert video.attachments[0].filename.endswith(".mp4")
    assert_playable_h264(video.attachments[0].data, 4)


async def test_slash_animate_refuses_what_the_chosen_workflow_does_not_take_and_queues_nothing(
    studio: Studio,
) -> None:
    await studio.start()

    too_many = await refusal(studio, await animate(studio, frames=121))
    with_prompt = await refusal(studio, await animate(studio, prompt="the cat turns its head"))
    unknown = await refusal(studio, await animate(studio, workflow="**nope** @everyone"))

    assert "between 1 and 25" in too_many, too_many
    assert "img2vid" in with_prompt and "no 'prompt'" in with_prompt, with_prompt
    assert "no video workflow called" in unknown and "@everyone" not in unknown, unknown
    assert posted_graphs(studio) == []


async def test_with_wan_models_the_form_and_the_command_are_wans_and_the_motion_prompt_reaches_the_graph(
    studio: Studio,
) -> None:
    await studio.start()
    source = await result_of(studio, steps=2, width=256, height=256)
    custom_id = encode(ComponentAction.ANIMATE, job_id_of(source), 0)
    svd_form = await modal_from(studio, "carol", source, custom_id)
    with_wan_models(studio)

    # A form opened for SVD and submitted once Wan 2.2 can run: checked against Wan, SVD's motion refused.
    graphs_before = len(posted_graphs(studio))
    motion = await studio.discord.submit_modal("carol", svd_form, custom_id, {"motion": "90"})
    assert "now img2vid_wan22, which takes no 'Motion amount'" in await refusal(studio, motion)

    press = await modal_from(studio, "carol", source, custom_id)
    assert field_labels(press) == {
        "prompt": "Motion prompt",
        "frames": "Frames (5–121, 4n+1)",
        "fps": "Frames per second (1–24)",
    }
    assert press.modal is not None
    assert [row["components"][0].get("placeholder") for row in press.modal["components"]][1:] == ["121", "24"]

    # Out of Wan's bounds, from the form and from the command: refused ephemerally, nothing sent.
    bad = await studio.discord.submit_modal("carol", press, custom_id, {"frames": "30"})
    assert "like 29 or 33" in await refusal(studio, bad)
    assert "between 5 and 121" in await refusal(studio, await animate(studio, frames=1))
    assert len(posted_graphs(studio)) == graphs_before

    # A motion prompt Wan takes reaches the graph sent to ComfyUI (the emulator has no Wan nodes: it stops there).
    await animate(studio, prompt="the cat slowly turns its head", frames=9)
    graph = await studio.until(lambda: next(iter(posted_graphs(studio)[graphs_before:]), None), 20.0, "a graph")
    assert graph["5"]["inputs"]["text"] == "the cat slowly turns its head"
    assert graph["8"]["inputs"]["length"] == 9
    assert graph["1"]["inputs"]["unet_name"] == DEFAULT_MODELS["wan22_model"]


async def test_without_any_video_model_animate_says_which_models_are_missing(studio: Studio) -> None:
    studio.comfy.config.models["checkpoints"] = ["v1-5-pruned-emaonly.safetensors"]
    await studio.start()
    source = await result_of(studio, steps=2, width=256, height=256)

    command = await refusal(studio, await animate(studio))
    press = await studio.discord.click_button("carol", source, encode(ComponentAction.ANIMATE, job_id_of(source), 0))
    button = await refusal(studio, press)

    for text in (command, button):
        assert "svd_xt.safetensors" in text and DEFAULT_MODELS["wan22_model"] in text, text
        assert DEFAULT_MODELS["ltxv_checkpoint"] in text and "admin" in text, text
    assert [g for g in posted_graphs(studio) if "img2vid" in str(g)] == []


async def test_slash_animate_checks_the_attachment_and_its_workflow_option_lists_the_video_workflows(
    studio: Studio,
) -> None:
    await studio.start()
    upload = studio.discord.add_upload("notes.txt", b"remember the milk\n")
    not_a_picture = await studio.discord.send_slash_command("carol", "general", "animate", {"image": upload})
    await studio.discord.wait_for_response(not_a_picture)
    text = await refusal(studio, not_a_picture)
    assert "notes.txt" in text and "picture" in text, text

    typed = await studio.discord.autocomplete("carol", "general", "animate", {"workflow": "img"}, "workflow")
    await studio.discord.wait_for_response(typed)
    names = [c["value"] for c in typed.autocomplete_choices or []]
    assert set(names) == {"img2vid", "img2vid_ltxv", "img2vid_wan22"}, names
    assert posted_graphs(studio) == []
