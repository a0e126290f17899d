"""Contract: ``FrameInterpolationModelLoader`` and ``FrameInterpolate`` on the emulator, as ComfyUI 0.33's
``comfy_extras/nodes_frame_interpolation.py`` defines them (not recorded: a real run needs a RIFE or FILM file).

From the source: the loader's ``model_name`` is a combo over the ``frame_interpolation`` models folder (a name
not listed is refused at ``POST /prompt``); ``FrameInterpolate`` passes fewer than 2 frames through with no bar;
else ``ProgressBar((frames - 1) * (multiplier - 1))`` moved by ``multiplier - 1`` once per frame pair (FILM's
``forward_multi_timestep``, and RIFE's first batch of ``multiplier - 1``), and ``(frames - 1) * multiplier + 1``
frames out. It sends no previews. Its ``/object_info`` shapes are compared with the real capture in
``test_comfyui_emulator_frames.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from discomfy.config import DEFAULT_MODELS
from discomfy.workflows import bind, load_workflow
from tests.peers.comfyui import ComfyEmulator
from tests.peers.comfyui.replay import Client, progress_runs
from tests.support import WORKFLOWS

pytestmark = pytest.mark.timeout(30)

MODEL = "rife47.pth"


def graph(frames: int, multiplier: int, model: str = MODEL) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": frames, "color": 0}},
        "2": {"class_type": "FrameInterpolationModelLoader", "inputs": {"model_name": model}},
        "3": {
            "class_type": "FrameInterpolate",
            "inputs": {"interp_model": ["2", 0], "images": ["1", 0], "multiplier": multiplier},
        },
        "4": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "fps": 8.0}},
        "5": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["4", 0], "filename_prefix": "interp", "format": "mp4", "format.codec": "h264"},
        },
    }


async def run(emu: ComfyEmulator, prompt: dict[str, Any]) -> list[dict[str, Any]]:
    async with Client(emu.url) as c:
        await c.connect()
        status, reply = await c.queue(prompt, extra_data={"preview_method": "auto"})
        assert status == 200, reply
        await c.wait_done(reply["prompt_id"])
    return c.messages


def saved_frames(emu: ComfyEmulator) -> int:
    [path] = emu.output_dir.rglob("*.mp4")
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize(("frames", "multiplier"), [(5, 2), (5, 3), (9, 4)])
async def test_interpolation_ticks_once_per_pair_by_multiplier_minus_one_and_makes_n_minus_1_times_m_plus_1(
    comfyui_emulator: ComfyEmulator, frames: int, multiplier: int
) -> None:
    emu = comfyui_emulator
    emu.config.models["frame_interpolation"] = [MODEL]
    emu.config.step_duration = 0.0

    messages = await run(emu, graph(frames, multiplier))

    total = (frames - 1) * (multiplier - 1)
    assert progress_runs(messages) == [("3", multiplier - 1, total, total)]
    values = [m["data"]["value"] for m in messages if m["type"] == "progress"]
    assert all(v % (multiplier - 1) == 0 for v in values), values
    assert not [m for m in messages if m["type"] == "__binary__"]  # no previews, though asked for
    assert saved_frames(emu) == (frames - 1) * multiplier + 1


async def test_one_frame_passes_through_without_a_progress_bar(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.config.models["frame_interpolation"] = [MODEL]

    messages = await run(emu, graph(1, 2))

    assert progress_runs(messages) == []
    assert saved_frames(emu) == 1


async def test_a_model_not_in_the_frame_interpolation_folder_is_refused_at_submit(
    comfyui_emulator: ComfyEmulator,
) -> None:
    emu = comfyui_emulator  # the default folder is empty, as on a server without an interpolation model
    async with Client(emu.url) as c:
        status, reply = await c.queue(graph(5, 2))
        _, listed = await c.http("GET", "/object_info/FrameInterpolationModelLoader")
    assert status == 400
    [error] = reply["node_errors"]["2"]["errors"]
    assert (error["type"], error["extra_info"]["input_name"]) == ("value_not_in_list", "model_name")
    assert listed["FrameInterpolationModelLoader"]["input"]["required"]["model_name"][0] == []


async def test_a_video_sampler_previews_every_step_and_the_interpolation_none(
    comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    """Previews of a video: ComfyUI's sampler callback previews ``x0[0]`` — a video's first frame (SVD's frames are
    the batch) — on every step when previews are asked for; a frame-wise node sends none (the ColorTransfer
    recording), so the last sampler preview is the newest picture a client has while frames are interpolated."""
    emu = comfyui_emulator
    emu.config.models["frame_interpolation"] = [MODEL]
    emu.config.step_duration = 0.0
    Image.new("RGB", (64, 64), (200, 40, 40)).save(emu.input_dir / "cat.png")
    workflow = load_workflow(WORKFLOWS / "img2vid.json", DEFAULT_MODELS)
    given = {"image": "cat.png", "frames": 5, "steps": 3, "width": 256, "height": 256, "interpolate": True}
    bound = bind(workflow, given, DEFAULT_MODELS)

    messages = await run(emu, bound.graph)

    kinds = [
        "preview" if m["type"] == "__binary__" else m["data"]["node"]
        for m in messages
        if m["type"] == "__binary__" or m["type"] == "progress"
    ]
    # KSampler (node 6): a preview with each of its 3 steps; then FrameInterpolate (node 11): ticks, no preview.
    assert kinds[:6] == ["preview", "6"] * 3 and kinds[6:] and set(kinds[6:]) == {"11"}, kinds
    previews = [m["data"] for m in messages if m["type"] == "__binary__"]
    assert all(p["name"] == "PREVIEW_IMAGE_WITH_METADATA" and p["metadata"]["node_id"] == "6" for p in previews)
    assert saved_frames(emu) == 9


async def test_hold_progress_pauses_after_the_first_tick_until_released_or_interrupted(
    comfyui_emulator: ComfyEmulator,
) -> None:
    emu = comfyui_emulator
    emu.config.models["frame_interpolation"] = [MODEL]
    emu.config.step_duration = 0.0
    released = emu.faults.hold_progress("FrameInterpolate")
    async with Client(emu.url) as c:
        await c.connect()
        _, first = await c.queue(graph(5, 2))
        await c.wait_for(lambda m: m["type"] == "progress" and m["data"]["prompt_id"] == first["prompt_id"])
        released.set()
        await c.wait_done(first["prompt_id"])
        emu.faults.hold_progress("FrameInterpolate")  # never released: an interrupt still ends it
        since = len(c.messages)
        _, second = await c.queue(graph(5, 3))
        await c.wait_for(lambda m: m["type"] == "progress" and m["data"]["prompt_id"] == second["prompt_id"], since)
        await c.http("POST", "/interrupt", json={"prompt_id": second["prompt_id"]})
        await c.wait_done(second["prompt_id"])
    assert [m["data"]["value"] for m in c.messages[:since] if m["type"] == "progress"][-1] == 4
    assert [m["type"] for m in c.messages[since:] if m["type"].startswith("execution_")][-1] == "execution_interrupted"
    assert [(m["data"]["value"], m["data"]["max"]) for m in c.messages[since:] if m["type"] == "progress"] == [(2, 8)]
