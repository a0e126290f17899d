"""Contract: a frame-wise node (``ColorTransfer``) on the emulator against the real ComfyUI 0.33 recording
``transcripts/frames_colortransfer.jsonl`` (recorded with ``comfy_capture.py``'s client on a CPU-only machine).

The recording submits two prompts from one socket that negotiated ``supports_preview_metadata``:

1. ``EmptyImage`` 300 frames of 512 px → ``ColorTransfer`` → ``CreateVideo`` → ``SaveVideo`` (mp4) and
   ``SaveAnimatedWEBP``, with ``extra_data.preview_method: auto``. ColorTransfer's ``ProgressBar(300)`` ticks once
   per frame; the server sent 47 ``progress`` messages for node "3": 1, 8, 15, … 295, 299, 300 of ``max`` 300, about
   every 105 ms (the ``ProgressBar`` throttle: first and last always, others ≥100 ms and ≥0.5 % apart), each just
   after a ``progress_state`` snapshot holding the same value/max with state ``running``; then ``progress_state``
   ``finished`` (300/300). No preview frames at all, although previews were asked for; the savers send none.
2. The same graph with 10 frames of 64 px (the reference ``EmptyImage`` cached): only 1/10 and 10/10 get through.

``progress`` values and ``max`` are ints (frame counts), ``progress_state`` values of nodes without a bar are floats
(0.0 / 1.0). The emulator runs the same requests; ``replay.skeleton`` compares everything but the throttled updates,
which are compared here by their shape.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import av
import pytest

from tests.peers.comfyui import ComfyEmulator
from tests.peers.comfyui.object_info import object_info_entry
from tests.peers.comfyui.replay import Client, load, progress_runs, recorded_messages, recorded_requests, skeleton

pytestmark = pytest.mark.timeout(30)

NAME = "frames_colortransfer"
REAL_OBJECT_INFO = Path(__file__).parent / "comfyui" / "object_info_frames.json"


def recorded_prompts() -> list[dict[str, Any]]:
    return [e["request_json"] for e in recorded_requests(load(NAME)) if e["method"] == "POST"]


def ticks(messages: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return [(m["data"]["node"], m["data"]["value"], m["data"]["max"]) for m in messages if m["type"] == "progress"]


def assert_frame_progress_shape(messages: list[dict[str, Any]], prompt_ids: list[str], frames: list[int]) -> None:
    """What the real server sent for a per-frame ``ProgressBar``, whatever the pace of the frames."""
    progress = [m for m in messages if m["type"] == "progress"]
    runs = progress_runs(messages)
    assert runs == [("3", 1, n, n) for n in frames]
    for pid, n in zip(prompt_ids, frames, strict=True):
        mine = [m["data"] for m in progress if m["data"]["prompt_id"] == pid]
        assert [set(d) for d in mine] == [{"value", "max", "prompt_id", "node"}] * len(mine)
        values = [d["value"] for d in mine]
        assert all(type(v) is int for v in values) and {d["max"] for d in mine} == {n}
        assert values == sorted(set(values)) and values[0] == 1 and values[-1] == n
        # Up to the last (always sent), each sent update is ≥0.5 % of the frames past the one before.
        assert all((b - a) / n * 100 >= 0.5 for a, b in itertools.pairwise(values[:-1]))
    # Each progress comes right after a progress_state holding the same value as "running" for that node.
    for before, m in itertools.pairwise(messages):
        if m["type"] != "progress":
            continue
        assert before["type"] == "progress_state"
        state = before["data"]["nodes"][m["data"]["node"]]
        assert (state["value"], state["max"], state["state"]) == (m["data"]["value"], m["data"]["max"], "running")
    # No previews from a frame-wise node, even when the prompt asked for them.
    assert not [m for m in messages if m["type"] == "__binary__"]


def test_recording_has_the_frame_progress_described() -> None:
    messages = recorded_messages(load(NAME))
    pids = [e["response"]["prompt_id"] for e in recorded_requests(load(NAME)) if e["method"] == "POST"]
    assert_frame_progress_shape(messages, pids, [300, 10])
    first = [v for node, v, n in ticks(messages) if n == 300]
    assert len(first) == 47 and first[:4] == [1, 8, 15, 22] and first[-3:] == [295, 299, 300]
    times = [e["t"] for e in load(NAME) if e["kind"] == "ws_json" and e["msg"]["type"] == "progress"][:47]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # ~105 ms: the throttle, not the frames, sets the pace (times are when the client read them: some jitter)
    assert min(gaps[:-1]) >= 0.09 and max(gaps) < 0.2
    assert [v for node, v, n in ticks(messages) if n == 10] == [1, 10]


async def test_colortransfer_frames_match_recording(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.config.step_duration = 0.004  # 300 frames in ~1.2 s: about a dozen updates through the throttle
    async with Client(emu.url) as c:
        await c.connect()
        pids = []
        for body in recorded_prompts():
            extra = {k: v for k, v in body.items() if k not in ("prompt", "client_id")}
            status, reply = await c.queue(body["prompt"], **extra)
            assert status == 200, reply
            pids.append(reply["prompt_id"])
            await c.wait_done(reply["prompt_id"], timeout=25)
    recorded = recorded_messages(load(NAME))
    assert skeleton(c.messages) == skeleton(recorded)
    assert progress_runs(c.messages) == progress_runs(recorded)
    assert_frame_progress_shape(c.messages, pids, [300, 10])
    assert len([t for t in ticks(c.messages) if t[2] == 300]) >= 5
    # The throttle's clock: sent updates of one bar are ≥100 ms apart (but the last), so no more of them than
    # 100 ms periods in their span, plus one for the last and one for send-time jitter; 4 ms frames would give 300.
    sent = [r for r in emu.ws_log if r.direction == "out" and r.type == "progress" and r.data["max"] == 300]
    assert len(sent) - 1 <= (sent[-1].time - sent[0].time) / 0.1 + 2
    with av.open(str(emu.output_dir / "video" / "bot_frames_00001_.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 300


async def test_interrupt_during_frames_stops_at_a_frame(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.config.step_duration = 0.004
    async with Client(emu.url) as c:
        await c.connect()
        _, reply = await c.queue(recorded_prompts()[0]["prompt"])
        await c.wait_for(lambda m: m["type"] == "progress" and m["data"]["value"] > 1)
        await c.http("POST", "/interrupt", json={"prompt_id": reply["prompt_id"]})
        await c.wait_done(reply["prompt_id"])
    [stop] = [m["data"] for m in c.messages if m["type"] == "execution_interrupted"]
    assert (stop["node_id"], stop["node_type"], stop["executed"]) == ("3", "ColorTransfer", ["2", "1"])
    assert ticks(c.messages)[-1][1] < 300


def _kind(spec: list[Any]) -> Any:
    """An input's type, or its options for a combo (a dynamic combo's: its keys)."""
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
    if kind == "COMFY_DYNAMICCOMBO_V3":
        return [o["key"] for o in opts["options"]]
    return opts["options"] if kind == "COMBO" else kind


def _flatten(inputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``/object_info`` inputs with v3 ``COMFY_DYNAMICCOMBO_V3`` inputs flattened as the API format submits them
    (the combo's keys as options; its options' sub-inputs as optional ``"<name>.<sub>"``, with the union of their
    options), which is how the emulator serves them."""
    out: dict[str, dict[str, Any]] = {"required": {}, "optional": {}}
    for category in ("required", "optional"):
        for name, spec in inputs.get(category, {}).items():
            out[category][name] = _kind(spec)
            if spec[0] != "COMFY_DYNAMICCOMBO_V3":
                continue
            for option in spec[1]["options"]:
                for sub_category in ("required", "optional"):
                    for sub, sub_spec in option["inputs"].get(sub_category, {}).items():
                        kind, key = _kind(sub_spec), f"{name}.{sub}"
                        if isinstance(kind, list):
                            kind = list(dict.fromkeys([*out["optional"].get(key, []), *kind]))
                        out["optional"][key] = kind
    return out


@pytest.mark.parametrize(
    "name",
    [
        "EmptyImage",
        "ColorTransfer",
        "CreateVideo",
        "SaveVideo",
        "SaveAnimatedWEBP",
        "FrameInterpolate",
        "FrameInterpolationModelLoader",
    ],
)
def test_object_info_inputs_match_the_real_server(name: str) -> None:
    real = json.loads(REAL_OBJECT_INFO.read_text(encoding="utf-8"))[name]
    ours = object_info_entry(name, lambda folder: [])
    flat_real, flat_ours = _flatten(real["input"]), _flatten(ours["input"])
    for category in ("required", "optional"):
        for input_name, kind in flat_ours[category].items():
            assert flat_real[category].get(input_name) == kind, (category, input_name)
    assert set(flat_ours["required"]) == set(flat_real["required"])
    assert (ours["output"], ours["output_node"], ours["category"]) == (
        real["output"],
        real["output_node"],
        real["category"],
    )
    for category in ("required", "optional"):
        for input_name, spec in real["input"].get(category, {}).items():
            if spec[0] in ("INT", "FLOAT") and input_name in ours["input"].get(category, {}):
                bounds = {k: spec[1].get(k) for k in ("default", "min", "max")}
                assert {k: ours["input"][category][input_name][1].get(k) for k in bounds} == bounds, input_name


@pytest.mark.parametrize(("size", "ticks_per_frame"), [((512, 512), 1), ((600, 520), 4), ((1000, 64), 3)])
async def test_upscale_with_model_ticks_per_tile_as_comfyui(
    comfyui_emulator: ComfyEmulator, size: tuple[int, int], ticks_per_frame: int
) -> None:
    """Not recorded (it needs a model file): ComfyUI's ``ImageUpscaleWithModel`` makes
    ``ProgressBar(frames × get_tiled_scale_steps(w, h, 512, 512, 32))`` and ``tiled_scale`` ticks once per tile."""
    emu = comfyui_emulator
    emu.config.step_duration = 0.0
    width, height = size
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": width, "height": height, "batch_size": 2, "color": 0}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "RealESRGAN_x4plus.pth"}},
        "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
        "4": {
            "class_type": "ImageScaleBy",
            "inputs": {"image": ["3", 0], "upscale_method": "nearest-exact", "scale_by": 0.05},
        },
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "tiles"}},
    }
    async with Client(emu.url) as c:
        await c.connect()
        status, reply = await c.queue(graph)
        assert status == 200, reply
        await c.wait_done(reply["prompt_id"])
    assert progress_runs(c.messages) == [("3", 1, 2 * ticks_per_frame, 2 * ticks_per_frame)]
