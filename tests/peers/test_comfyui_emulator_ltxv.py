"""The emulator's LTX-Video nodes (``comfyui/nodes_ltxv.py``) against the real ComfyUI 0.33 ``/object_info``
(``tests/workflows/object_info_video_033.json``): the same inputs with the same types, bounds and outputs; and the
shipped ``img2vid_ltxv`` workflow runs on the emulator to an MP4 of the frames it asked for."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import pytest
from PIL import Image

from discomfy.config import DEFAULT_MODELS
from discomfy.workflows import bind, load_workflows
from tests.peers.comfyui import ComfyEmulator
from tests.peers.comfyui.object_info import object_info_entry
from tests.peers.comfyui.replay import Client
from tests.peers.test_comfyui_emulator_frames import _flatten
from tests.support import WORKFLOWS

REAL = Path(__file__).resolve().parents[1] / "workflows" / "object_info_video_033.json"
LTXV_NODES = ["CLIPLoader", "LTXVPreprocess", "LTXVImgToVideo", "LTXVConditioning", "KSamplerSelect",
              "LTXVScheduler", "SamplerCustom"]  # fmt: skip


@pytest.mark.parametrize("name", LTXV_NODES)
def test_ltxv_nodes_match_the_real_object_info(name: str) -> None:
    real = json.loads(REAL.read_text(encoding="utf-8"))[name]
    ours = object_info_entry(name, lambda folder: [])
    flat_real, flat_ours = _flatten(real["input"]), _flatten(ours["input"])
    assert flat_ours == flat_real
    assert (ours["output"], ours["output_name"], ours["category"], ours["python_module"]) == (
        real["output"],
        real["output_name"],
        real["category"],
        real["python_module"],
    )
    for category in ("required", "optional"):
        for input_name, spec in real["input"].get(category, {}).items():
            if spec[0] in ("INT", "FLOAT", "BOOLEAN"):
                bounds = {k: spec[1].get(k) for k in ("default", "min", "max", "step")}
                ours_opts = ours["input"][category][input_name][1]
                assert {k: ours_opts.get(k) for k in bounds} == bounds, input_name


async def test_the_shipped_ltxv_workflow_runs_to_an_mp4_of_its_frames(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.config.models = {
        "checkpoints": [DEFAULT_MODELS["ltxv_checkpoint"]],
        "text_encoders": [DEFAULT_MODELS["ltxv_text_encoder"]],
    }
    (Path(emu.input_dir) / "cat.png").write_bytes(_png())
    workflow = load_workflows(WORKFLOWS, DEFAULT_MODELS).get("img2vid_ltxv")
    bound = bind(workflow, {"image": "cat.png", "frames": 17, "steps": 3, "width": 256, "height": 256}, DEFAULT_MODELS)
    async with Client(emu.url) as c:
        await c.connect()
        status, answer = await c.queue(dict(bound.graph))
        assert status == 200, answer
        entry = await emu.wait_for_history(answer["prompt_id"])
    [video] = entry["outputs"]["14"]["images"]
    data = (Path(emu.output_dir) / video["subfolder"] / video["filename"]).read_bytes()
    with av.open(io.BytesIO(data)) as container:
        assert len(list(container.decode(container.streams.video[0]))) == 17
    steps = [m for m in emu.sent_to(c.client_id) if m.type == "progress" and m.data["node"] == "11"]
    assert steps[-1].data["value"] == steps[-1].data["max"] == 3


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()
