"""The buttons and modals end to end: Cancel, Upscale, Animate, Reroll, Edit prompt, Info, Delete, /jobs, /show.

Each test drives the real nextcord client through the Discord emulator (a member clicks, submits a modal) and
checks both sides: what the user sees on Discord and what happened at the ComfyUI emulator or in our store.
In the emulator ``alice`` is a Moderator (Manage Messages); ``bob`` and ``carol`` are plain members.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from PIL import Image

from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.jobs.state import Job, JobState
from tests.e2e.studio import WORKFLOWS, Studio, studio_settings
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner
from tests.peers.discord.interactions import InteractionRecord, ResponseType
from tests.peers.discord.messages import StoredMessage

pytestmark = pytest.mark.timeout(60)

SMALL = {"steps": 2, "width": 256, "height": 256}


def make_studio(
    discord: DiscordEmulator, comfy: ComfyEmulator, runner: NextcordRunner, data: Path, **limits: Any
) -> Studio:
    return Studio(discord, comfy, runner, studio_settings(discord, comfy, data, **limits))


@pytest.fixture
async def studio(
    discord_emulator: DiscordEmulator, comfy: ComfyEmulator, run_nextcord: NextcordRunner, tmp_path: Path
) -> AsyncIterator[Studio]:
    """Roomy limits (a test presses many buttons) and a quick editor, so the tests stay short."""
    s = make_studio(
        discord_emulator, comfy, run_nextcord, tmp_path / "data", commands_per_minute=100, max_jobs_per_user=10
    )
    yield s
    await s.stop()


# --- helpers -----------------------------------------------------------------------------------------------


def job_id_of(message: StoredMessage) -> str:
    found = re.search(r"job (\w+)", message.embeds[0]["footer"]["text"])
    assert found, message.embeds
    return found.group(1)


async def job_of(studio: Studio, message: StoredMessage) -> Job:
    return await studio.stack.store.get(job_id_of(message))


def title(message: StoredMessage | None) -> str:
    return message.embeds[0].get("title", "") if message and message.embeds else ""


def labels(message: StoredMessage) -> list[str]:
    return [str(c.get("label")) for c in message.buttons]


async def generate(studio: Studio, user: str = "bob", **options: Any) -> InteractionRecord:
    interaction = await studio.discord.send_slash_command(
        user, "general", "generate", {"prompt": "a fox in the snow", **SMALL, **options}
    )
    await studio.discord.wait_for_response(interaction)
    return interaction


async def delivered(studio: Studio, interaction: InteractionRecord) -> StoredMessage:
    """The result message, once the job's row says delivered too (a moment after the message is up)."""
    message = await studio.result(interaction)
    for _ in range(500):
        if (await job_of(studio, message)).state is JobState.DELIVERED:
            return message
        await asyncio.sleep(0.02)
    raise TimeoutError("the job was not marked delivered")


async def result_of(studio: Studio, user: str = "bob", **options: Any) -> StoredMessage:
    return await delivered(studio, await generate(studio, user, **options))


async def answer(studio: Studio, interaction: InteractionRecord) -> StoredMessage:
    """The (finished) message that answers a press: an ephemeral reply, or a deferred one once filled in."""

    def ready() -> StoredMessage | None:
        message = studio.message(interaction)
        return message if message is not None and not message.loading else None

    return await studio.until(ready, 20.0, "an answer to the press")


async def ephemeral_text(studio: Studio, interaction: InteractionRecord) -> str:
    message = await answer(studio, interaction)
    assert message.ephemeral, message
    return message.content or " ".join(e.get("description", "") for e in message.embeds)


async def running(studio: Studio, interaction: InteractionRecord) -> StoredMessage:
    """The job's progress message once ComfyUI is running it (a Cancel button on it)."""

    def now_running() -> StoredMessage | None:
        message = studio.message(interaction)
        return message if "Running" in title(message) and message and message.buttons else None

    return await studio.until(now_running, 20.0, "a running job")


def cancel_id(message: StoredMessage) -> str:
    return encode(ComponentAction.CANCEL, job_id_of(message))


def interrupted(studio: Studio, prompt_id: str) -> bool:
    return any(
        r.direction == "out" and r.type == "execution_interrupted" and (r.data or {}).get("prompt_id") == prompt_id
        for r in studio.comfy.ws_log
    )


async def modal_from(studio: Studio, user: str, message: StoredMessage, custom_id: str) -> InteractionRecord:
    press = await studio.discord.click_button(user, message, custom_id)
    await studio.discord.wait_for_response(press)
    assert press.response_type is ResponseType.MODAL, (press.responses, press.refusals)
    return press


# --- Cancel ------------------------------------------------------------------------------------------------


async def test_cancel_while_running_interrupts_the_prompt_and_says_cancelled(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.1
    await studio.start()
    job_interaction = await generate(studio, steps=60)
    progress = await running(studio, job_interaction)
    job = await job_of(studio, progress)
    assert job.prompt_id is not None

    press = await studio.discord.click_button("bob", progress, cancel_id(progress))

    assert "Cancelled" in await ephemeral_text(studio, press)
    await studio.until(lambda: interrupted(studio, job.prompt_id or ""), what="execution_interrupted")
    final = await studio.until(lambda: "Cancelled" in title(studio.message(job_interaction)), what="cancelled")
    assert final
    message = studio.message(job_interaction)
    assert message is not None and message.buttons == []
    assert (await job_of(studio, message)).state is JobState.CANCELLED


async def occupy_comfyui(comfy: ComfyEmulator, steps: int = 400) -> str:
    """Someone else's long prompt, sent straight to ComfyUI: our next prompt queues behind it there."""
    graph = json.loads((WORKFLOWS / "txt2img.json").read_text())
    graph["1"]["inputs"]["ckpt_name"] = "v1-5-pruned-emaonly.safetensors"
    graph["4"]["inputs"].update(width=64, height=64)
    graph["5"]["inputs"]["steps"] = steps
    body = {"prompt": graph, "client_id": "someone-else"}
    async with aiohttp.ClientSession() as session, session.post(f"{comfy.url}/prompt", json=body) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["prompt_id"])


async def test_cancel_while_queued_at_comfyui_removes_the_prompt_from_its_queue(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.05
    await studio.start()
    foreign = await occupy_comfyui(studio.comfy)
    job_interaction = await generate(studio)

    def queued_there() -> StoredMessage | None:
        message = studio.message(job_interaction)
        return message if "Waiting at the image server" in title(message) else None

    progress = await studio.until(queued_there, what="our prompt queued at ComfyUI")
    job = await job_of(studio, progress)
    assert job.prompt_id in [item.prompt_id for item in studio.comfy.queue.pending]

    press = await studio.discord.click_button("bob", progress, cancel_id(progress))

    assert "Cancelled" in await ephemeral_text(studio, press)
    await studio.until(lambda: "Cancelled" in title(studio.message(job_interaction)), what="cancelled")
    assert job.prompt_id not in [item.prompt_id for item in studio.comfy.queue.pending]
    assert job.prompt_id not in studio.comfy.queue.history
    assert foreign in [item.prompt_id for item in studio.comfy.queue.running_items()], "someone else's job runs on"


async def test_cancel_while_waiting_in_our_queue_never_sends_the_prompt(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.1
    await studio.start()
    first = await generate(studio, steps=60)
    await running(studio, first)
    second = await generate(studio)

    def waiting_here() -> StoredMessage | None:
        message = studio.message(second)
        return message if "Waiting in our queue" in title(message) and message and message.buttons else None

    progress = await studio.until(waiting_here, what="the second job waiting in our queue")
    press = await studio.discord.click_button("bob", progress, cancel_id(progress))

    assert "Cancelled" in await ephemeral_text(studio, press)
    await studio.until(lambda: "Cancelled" in title(studio.message(second)), what="cancelled")
    job = await job_of(studio, progress)
    assert job.state is JobState.CANCELLED and job.prompt_id is None
    assert len([r for r in studio.comfy.requests if r.method == "POST" and r.route.endswith("/prompt")]) == 1
    assert "Running" in title(studio.message(first)), "the first job is not disturbed"


async def test_cancel_by_another_member_is_refused_and_the_job_runs_on(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.05
    await studio.start()
    job_interaction = await generate(studio, steps=20)
    progress = await running(studio, job_interaction)

    press = await studio.discord.click_button("carol", progress, cancel_id(progress))

    text = await ephemeral_text(studio, press)
    assert "Only the person who started this job" in text
    await delivered(studio, job_interaction)
    assert not any(r.type == "execution_interrupted" for r in studio.comfy.ws_log)


async def test_cancel_by_a_moderator_cancels_someone_elses_job(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.1
    await studio.start()
    job_interaction = await generate(studio, "bob", steps=60)
    progress = await running(studio, job_interaction)

    press = await studio.discord.click_button("alice", progress, cancel_id(progress))

    assert "Cancelled" in await ephemeral_text(studio, press)
    await studio.until(lambda: "Cancelled" in title(studio.message(job_interaction)), what="cancelled")
    assert (await job_of(studio, progress)).state is JobState.CANCELLED


# --- Upscale -----------------------------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


async def test_upscale_opens_a_modal_then_delivers_the_picture_scaled_by_the_factor(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio)
    source_size = png_size(source.attachments[0].data)
    custom_id = encode(ComponentAction.UPSCALE, job_id_of(source), 0)

    press = await modal_from(studio, "carol", source, custom_id)
    modal = press.modal
    assert modal is not None and modal["custom_id"] == custom_id
    inputs = [row["components"][0] for row in modal["components"]]
    assert [i["custom_id"] for i in inputs] == ["scale"]
    submit = await studio.discord.submit_modal("carol", press, custom_id, {"scale": "2"})
    response = await studio.discord.wait_for_response(submit)

    assert response.type is ResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    upscaled = await studio.result(submit)
    assert upscaled.id != source.id
    assert png_size(upscaled.attachments[0].data) == (source_size[0] * 2, source_size[1] * 2)
    assert {"Upscale", "Reroll", "Info", "Delete"} <= set(labels(upscaled))
    job = await job_of(studio, upscaled)
    assert (
        job.parent_id == job_id_of(source)
        and job.source_index == 0
        and job.owner_id == studio.discord.users["carol"].id
    )


async def test_upscale_of_a_result_whose_file_was_evicted_uses_the_discord_attachment(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio)
    services = studio.stack
    [stored] = await services.store.outputs(job_id_of(source))
    assert stored.attachment_url  # recorded at delivery
    services.outputs.path(stored).unlink()  # as the cap would: the file is gone, the row stays
    await services.store.evict_output(stored.job_id, stored.index)
    custom_id = encode(ComponentAction.UPSCALE, job_id_of(source), 0)

    press = await modal_from(studio, "carol", source, custom_id)
    submit = await studio.discord.submit_modal("carol", press, custom_id, {"scale": "2"})

    upscaled = await studio.result(submit)
    source_size = png_size(source.attachments[0].data)
    assert png_size(upscaled.attachments[0].data) == (source_size[0] * 2, source_size[1] * 2)
    downloads = [r for r in studio.discord.requests if r.method == "GET" and "attachments" in r.path]
    assert downloads  # the picture came back from Discord's CDN (the emulator's)


@pytest.mark.parametrize("factor", ["9", "abc"])
async def test_upscale_with_a_bad_factor_is_refused_and_nothing_is_queued(studio: Studio, factor: str) -> None:
    await studio.start()
    source = await result_of(studio)
    prompts_before = len(studio.comfy.queue.history)
    custom_id = encode(ComponentAction.UPSCALE, job_id_of(source), 0)
    press = await modal_from(studio, "bob", source, custom_id)

    submit = await studio.discord.submit_modal("bob", press, custom_id, {"scale": factor})

    text = await ephemeral_text(studio, submit)
    assert "scale" in text and "1" in text and "4" in text, text
    assert submit.responses[0].type is ResponseType.CHANNEL_MESSAGE_WITH_SOURCE
    assert len(await studio.stack.store.by_owner(studio.discord.users["bob"].id, active_only=False)) == 1
    assert len(studio.comfy.queue.history) == prompts_before and not studio.comfy.queue.pending
    visible = [m for m in studio.discord.messages("general") if not m.ephemeral]
    assert [m.id for m in visible] == [source.id], "no thinking… message left behind"


# --- Animate -----------------------------------------------------------------------------------------------


def details(message: StoredMessage) -> list[str]:
    return [e.get("description", "") for snapshot in message.history for e in snapshot.embeds]


async def test_animate_shows_its_frames_then_delivers_an_h264_mp4_without_image_buttons(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.02
    await studio.start()
    source = await result_of(studio)
    custom_id = encode(ComponentAction.ANIMATE, job_id_of(source), 0)
    press = await modal_from(studio, "carol", source, custom_id)
    assert press.modal is not None
    assert [row["components"][0]["custom_id"] for row in press.modal["components"]] == [
        "frames",
        "fps",
        "motion",
        "strength",
    ]

    submit = await studio.discord.submit_modal("carol", press, custom_id, {"frames": "4", "motion": "90"})

    video = await delivered(studio, submit)
    # SVD's sampler denoises all frames at once and reports steps only (in ComfyUI as in the emulator), so the
    # message says how many frames it makes; "frame x/y" appears only when a per-frame node reports progress.
    assert any(re.search(r"step \d+/20 · 4 frames", d) for d in details(video)), details(video)
    attachment = video.attachments[0]
    assert attachment.filename.endswith(".mp4")
    with av.open(io.BytesIO(attachment.data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert len([frame for frame in container.decode(stream)]) == 4
    assert "Upscale" not in labels(video) and "Animate" not in labels(video)
    assert {"Reroll", "Info", "Delete"} <= set(labels(video))


# --- Reroll, Edit prompt, Info, Delete ---------------------------------------------------------------------


async def test_reroll_runs_the_same_parameters_with_a_new_seed(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, cfg=5.5)
    press = await studio.discord.click_button("carol", source, encode(ComponentAction.REROLL, job_id_of(source)))
    response = await studio.discord.wait_for_response(press)

    assert response.type is ResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    rerolled = await delivered(studio, press)
    old, new = await job_of(studio, source), await job_of(studio, rerolled)
    assert new.id != old.id and new.owner_id == studio.discord.users["carol"].id
    assert new.seed is not None and new.seed != old.seed
    assert {k: v for k, v in new.params.items() if k != "seed"} == {k: v for k, v in old.params.items() if k != "seed"}
    assert new.params["cfg"] == 5.5 and new.workflow == old.workflow
    # The new job's message is a reply to the result whose button was pressed; the presser got a private note.
    assert rerolled.message_reference is not None and int(rerolled.message_reference["message_id"]) == source.id
    note = studio.discord.original_message(press)
    assert note is not None and note.ephemeral and "started" in note.content


async def test_edit_prompt_opens_a_prefilled_modal_and_runs_the_new_prompt(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, prompt="a red fox")
    custom_id = encode(ComponentAction.EDIT, job_id_of(source))
    press = await modal_from(studio, "bob", source, custom_id)
    assert press.modal is not None
    (field,) = [row["components"][0] for row in press.modal["components"]]
    assert field["custom_id"] == "prompt" and field["value"] == "a red fox"

    submit = await studio.discord.submit_modal("bob", press, custom_id, {"prompt": "a blue whale"})

    edited = await delivered(studio, submit)
    old, new = await job_of(studio, source), await job_of(studio, edited)
    assert new.params["prompt"] == "a blue whale" and new.params["steps"] == old.params["steps"]
    assert "a blue whale" in edited.embeds[0]["description"]


async def test_info_shows_workflow_parameters_and_seed_ephemerally(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, seed=1234)
    press = await studio.discord.click_button("carol", source, encode(ComponentAction.INFO, job_id_of(source)))

    message = await answer(studio, press)
    assert message.ephemeral
    embed = message.embeds[0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Workflow"] == "txt2img" and fields["Seed"] == "`1234`"
    assert "**steps**: 2" in fields["Parameters"] and "**width**: 256" in fields["Parameters"]
    assert "a fox in the snow" in embed["description"]


@pytest.mark.parametrize("who", ["bob", "alice"])
async def test_delete_by_the_owner_or_a_moderator_deletes_the_result(studio: Studio, who: str) -> None:
    await studio.start()
    source = await result_of(studio, "bob")
    press = await studio.discord.click_button(who, source, encode(ComponentAction.DELETE, job_id_of(source)))

    assert "Deleted" in await ephemeral_text(studio, press)
    assert studio.discord.message(source.id).deleted


async def test_delete_by_another_member_is_refused(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, "bob")
    press = await studio.discord.click_button("carol", source, encode(ComponentAction.DELETE, job_id_of(source)))

    assert "Only the person who started this job" in await ephemeral_text(studio, press)
    assert not studio.discord.message(source.id).deleted


# --- batches, /jobs, /show, rate limit ---------------------------------------------------------------------


async def test_a_batch_names_each_image_and_u2_upscales_the_second(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, prompt="two foxes", batch=2)
    assert len(source.attachments) == 2
    assert {"U1", "U2", "A1", "A2"} <= set(labels(source)) and "Upscale" not in labels(source)
    custom_id = encode(ComponentAction.UPSCALE, job_id_of(source), 1)
    press = await modal_from(studio, "bob", source, custom_id)

    submit = await studio.discord.submit_modal("bob", press, custom_id, {"scale": "2"})

    upscaled = await delivered(studio, submit)
    # The emulator decodes a batch to identical pictures, so the row says which one was taken.
    job = await job_of(studio, upscaled)
    assert job.parent_id == job_id_of(source) and job.source_index == 1
    assert png_size(upscaled.attachments[0].data) == (512, 512)


async def test_jobs_lists_my_active_jobs_with_cancel_buttons_that_work(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.1
    await studio.start()
    first = await generate(studio, "bob", prompt="first fox", steps=60)
    await running(studio, first)
    second = await generate(studio, "bob", prompt="second fox")
    carols = await generate(studio, "carol", prompt="carol's cat", steps=60)
    for interaction in (second, carols):  # their rows exist once their messages show them
        await studio.until(lambda i=interaction: "Waiting" in title(studio.message(i)), what="a waiting job")

    listing = await studio.discord.send_slash_command("bob", "general", "jobs")
    message = await answer(studio, listing)

    assert message.ephemeral
    text = message.embeds[0]["description"]
    assert "first fox" in text and "second fox" in text and "carol" not in text
    assert labels(message) == ["Cancel 1", "Cancel 2"]
    second_id = job_id_of(studio.message(second))  # type: ignore[arg-type]
    press = await studio.discord.click_button("bob", message, encode(ComponentAction.CANCEL, second_id))
    assert "Cancelled" in await ephemeral_text(studio, press)
    await studio.until(lambda: "Cancelled" in title(studio.message(second)), what="the second job cancelled")
    assert "Running" in title(studio.message(first))


async def test_show_reposts_a_finished_result_with_its_buttons_here(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio)
    job_id = job_id_of(source)

    show = await studio.discord.send_slash_command("carol", "renders", "show", {"job_id": job_id})

    reposted = await studio.result(show)
    assert reposted.id != source.id and reposted.channel_id == studio.discord.channels["renders"].id
    assert reposted.attachments[0].data == source.attachments[0].data
    assert {"Upscale", "Animate", "Reroll", "Info", "Delete"} <= set(labels(reposted))
    assert job_id_of(reposted) == job_id


@pytest.mark.parametrize("action", [ComponentAction.REROLL, ComponentAction.INFO])
async def test_a_press_over_the_rate_limit_is_refused_with_when_to_try_again(
    discord_emulator: DiscordEmulator,
    comfy: ComfyEmulator,
    run_nextcord: NextcordRunner,
    tmp_path: Path,
    action: ComponentAction,
) -> None:
    studio = make_studio(discord_emulator, comfy, run_nextcord, tmp_path / "data", commands_per_minute=2)
    try:
        await studio.start()
        source = await result_of(studio, "bob")  # 1 of 2
        allowed = await studio.discord.click_button("bob", source, encode(ComponentAction.INFO, job_id_of(source)))
        await studio.discord.wait_for_response(allowed)  # 2 of 2

        refused = await studio.discord.click_button("bob", source, encode(action, job_id_of(source)))

        text = await ephemeral_text(studio, refused)
        assert "2 commands or buttons a minute" in text and re.search(r"<t:\d+:R>", text), text
        assert refused.response_type is ResponseType.CHANNEL_MESSAGE_WITH_SOURCE
        assert len(await studio.stack.store.by_owner(studio.discord.users["bob"].id, active_only=False)) == 1
    finally:
        await studio.stop()
