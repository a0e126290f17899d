"""The video workflow is chosen again when a job is dispatched (``jobs/rechoice.py``, ``JobService``'s dispatcher):
the pure choice and carrying of options, and the job service against the ComfyUI emulator — every server down
while a job naming Wan 2.2 is submitted, then the server back with only LTX-Video's models: the job runs
LTX-Video, its row and its messages say so, and it is delivered."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image

from discomfy.config import DEFAULT_MODELS
from discomfy.errors import UserError
from discomfy.jobs.rechoice import best_workflow, carried_params
from discomfy.jobs.service import JobRequest
from discomfy.jobs.state import JobAction, JobState
from discomfy.media.picture import Picture
from discomfy.workflows import Kind, Registry
from tests.jobs.test_service import Rig, actor, open_rig, until
from tests.peers.comfyui import ComfyEmulator

__all__ = ["open_rig"]  # the fixture, shared with test_service.py

S = JobState
LTXV_ONLY = {
    "checkpoints": [DEFAULT_MODELS["ltxv_checkpoint"]],
    "text_encoders": [DEFAULT_MODELS["ltxv_text_encoder"]],
}


@dataclass
class FakeServer:
    healthy: bool
    models: frozenset[str]


def picture() -> Picture:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(out, "PNG")
    return Picture.of(out.getvalue(), "png")


def animate(owner: int, **params: Any) -> JobRequest:
    return JobRequest(owner, 1, 500, None, None, Kind.VIDEO, JobAction.ANIMATE, params, inputs=(picture(),))


# -- pure --------------------------------------------------------------------------------------------------------


def test_the_best_workflow_is_the_first_of_the_chain_a_healthy_server_has_the_models_of(registry: Registry) -> None:
    needed = registry.needed_models
    ltxv, svd = needed("img2vid_ltxv"), needed("img2vid")
    assert best_workflow(registry, "img2vid_wan22", [FakeServer(True, ltxv | svd)], needed).name == "img2vid_ltxv"  # type: ignore[union-attr]
    assert best_workflow(registry, "img2vid_wan22", [FakeServer(True, svd)], needed).name == "img2vid"  # type: ignore[union-attr]
    # The models on a server that is down count for nothing; with none up, no choice is made (the job waits).
    assert best_workflow(registry, "img2vid_wan22", [FakeServer(False, ltxv), FakeServer(True, svd)], needed).name == (  # type: ignore[union-attr]
        "img2vid"
    )
    assert best_workflow(registry, "img2vid_wan22", [FakeServer(False, ltxv | svd)], needed) is None
    assert best_workflow(registry, "img2vid_wan22", [FakeServer(True, frozenset())], needed) is None
    # A workflow named is the head of its own chain: SVD never moves up to Wan.
    assert best_workflow(registry, "img2vid", [FakeServer(True, needed("img2vid_wan22") | svd)], needed).name == (  # type: ignore[union-attr]
        "img2vid"
    )


def test_asked_options_travel_defaults_stay_behind_and_what_the_new_workflow_refuses_is_named(
    registry: Registry,
) -> None:
    wan, ltxv, svd = registry.get("img2vid_wan22"), registry.get("img2vid_ltxv"), registry.get("img2vid")
    wan_negative = wan.graph["6"]["inputs"]["text"]  # no manifest default: the graph's text is what a job gets
    stored = {"prompt": "the cat turns", "frames": 9, "fps": 24, "width": 1280, "height": 704, "steps": 20,
              "cfg": 5.0, "seed": 77, "image": "discomfy/abc.png", "negative": wan_negative}  # fmt: skip

    to_ltxv = carried_params(wan, ltxv, stored)
    # Wan's defaults (24 fps, 1280×704, 20 steps, cfg 5) are left for LTX-Video's own; what was asked travels.
    assert to_ltxv.params == {"prompt": "the cat turns", "frames": 9, "seed": 77, "image": "discomfy/abc.png"}
    assert to_ltxv.dropped == ()

    to_svd = carried_params(wan, svd, {**stored, "frames": 33})
    assert to_svd.params == {"seed": 77, "image": "discomfy/abc.png"}
    assert set(to_svd.dropped) == {"prompt", "frames"}  # SVD takes no prompt, and at most 25 frames
    assert carried_params(wan, ltxv, {**stored, "negative": "blurry"}).params["negative"] == "blurry"


# -- the service, against the emulator -------------------------------------------------------------------------


async def test_a_job_naming_wan_submitted_while_every_server_is_down_runs_ltxv_when_the_server_returns_with_it(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    await emu.go_down()
    rig: Rig = await open_rig()
    try:
        job = await rig.service.submit(animate(1, prompt="the cat slowly turns its head", frames=9, steps=3), actor(1))
        assert job.workflow == "img2vid_wan22" and job.state is S.WAITING  # no server up: it waits, naming Wan
        await asyncio.sleep(0.3)  # several dispatcher rounds with every server down: nothing moves
        assert (await rig.store.get(job.id)).workflow == "img2vid_wan22"

        emu.config.models = {k: list(v) for k, v in LTXV_ONLY.items()}
        await emu.come_up()
        done = await until(rig.store, job.id, S.DELIVERED, S.FAILED)

        assert done.state is S.DELIVERED, (done.failure, done.error)
        assert done.workflow == "img2vid_ltxv"
        assert done.params["prompt"] == "the cat slowly turns its head" and done.params["frames"] == 9
        assert done.params["width"] == 768  # LTX-Video's own default, not Wan's 1280
        # The row named LTX-Video from the write made before the prompt was sent.
        [submitting] = [j for jid, state, j, _ in rig.store.moves if jid == job.id and state is S.SUBMITTING]
        assert submitting.workflow == "img2vid_ltxv" and submitting.params == done.params
        [prompt] = [r.json["prompt"] for r in emu.requests if r.method == "POST" and r.path == "/prompt"]
        assert prompt["7"]["class_type"] == "LTXVImgToVideo" and prompt["7"]["inputs"]["length"] == 9
        assert prompt["3"]["inputs"]["text"] == "the cat slowly turns its head"
        # Its messages name the workflow used once it was dispatched.
        shown = [j.workflow for j in rig.observer.shown_jobs if j.id == job.id]
        assert shown[0] == "img2vid_wan22" and shown[-1] == "img2vid_ltxv"
        [(_, delivered, _)] = [d for d in rig.observer.deliveries if d[0] == job.id]
        assert delivered[0].kind.value == "video"
    finally:
        await rig.close()


async def test_a_re_chosen_job_runs_the_optional_stages_the_returning_server_can_run(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    """Submitted while every server is down, the job cannot know whether frame interpolation will be possible
    (``stages`` says off); the server returns with LTX-Video's models and the interpolation model: the job moves to
    LTX-Video with the stage on, as one submitted then would have."""
    emu = comfyui_emulator
    await emu.go_down()
    rig: Rig = await open_rig()
    try:
        job = await rig.service.submit(animate(1, prompt="waves", frames=9, steps=3), actor(1))
        assert job.params.get("interpolate") is False

        emu.config.models = {
            **{k: list(v) for k, v in LTXV_ONLY.items()},
            "frame_interpolation": [DEFAULT_MODELS["interpolation_model"]],
        }
        await emu.come_up()
        done = await until(rig.store, job.id, S.DELIVERED, S.FAILED)

        assert done.state is S.DELIVERED, (done.failure, done.error)
        assert (done.workflow, done.params["interpolate"]) == ("img2vid_ltxv", True)
        [prompt] = [r.json["prompt"] for r in emu.requests if r.method == "POST" and r.path == "/prompt"]
        assert "FrameInterpolate" in {node["class_type"] for node in prompt.values()}
    finally:
        await rig.close()


# -- Extend continues its video's own workflow and stages --------------------------------------------------------


def extend(params: dict[str, Any], workflow: str = "img2vid") -> JobRequest:
    # No parent row here: the picture is given (the bot passes the video's last frame the same way).
    return JobRequest(1, 1, 500, None, workflow, Kind.VIDEO, JobAction.EXTEND, params, inputs=(picture(),))


async def test_an_extend_keeps_its_videos_interpolation_and_counts_the_frames_that_come_out(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    """The video was interpolated (9 sampled → 17 frames at twice the fps): its extension must be too, or the part
    would play at the wrong speed once joined; and the bound counts the 17 frames, not the 9 asked."""
    comfyui_emulator.config.models["frame_interpolation"] = [DEFAULT_MODELS["interpolation_model"]]
    rig: Rig = await open_rig()
    try:
        request = extend({"frames": 9, "interpolate": True})
        assert rig.service.check_extend(request, 105).name == "img2vid"  # 105 + 17 - 1 = 121, SVD's bound
        with pytest.raises(UserError, match="would make 122"):
            rig.service.check_extend(request, 106)  # 106 + 9 - 1 = 114 would have passed

        job = await rig.service.submit(extend({"frames": 9, "interpolate": True}), actor(1))
        assert job.params["interpolate"] is True
        plain = await rig.service.submit(extend({"frames": 9, "interpolate": False}), actor(1))
        assert plain.params["interpolate"] is False  # not switched on because the server could
    finally:
        await rig.close()


async def test_an_extend_of_an_interpolated_video_is_refused_when_no_server_can_interpolate(
    open_rig: Callable[..., Any],
) -> None:
    rig: Rig = await open_rig()  # the emulator's frame_interpolation folder is empty
    try:
        with pytest.raises(UserError, match=r"No server can continue this video right now.*rife47"):
            rig.service.check_extend(extend({"frames": 9, "interpolate": True}), 17)
    finally:
        await rig.close()


async def test_an_extend_waiting_while_its_workflows_models_are_gone_is_never_moved_to_another_workflow(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    """Another model would not continue the video (size, frame rate, look): the extension waits for its own."""
    emu = comfyui_emulator
    await emu.go_down()
    rig: Rig = await open_rig()
    try:
        job = await rig.service.submit(extend({"frames": 9, "interpolate": False}, "img2vid_wan22"), actor(1))
        emu.config.models = {k: list(v) for k, v in LTXV_ONLY.items()}
        await emu.come_up()
        await asyncio.sleep(0.5)  # several dispatcher rounds with a server that has only LTX-Video's models
        waiting = await rig.store.get(job.id)
        assert (waiting.workflow, waiting.state) == ("img2vid_wan22", S.WAITING)
        assert not [r for r in emu.requests if r.method == "POST" and r.path == "/prompt"]
    finally:
        await rig.close()
