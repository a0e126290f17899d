"""The shipped video workflows: Wan 2.2 (5B), LTX-Video and SVD, checked against a real ComfyUI 0.33 /object_info.

``object_info_video_033.json`` is the ``GET /object_info`` answer of a real ComfyUI 0.33.0 server (commit 783545f,
CPU, no custom nodes) for the node classes these workflows use, as it came: the server had none of the video
models, so each test installs the configured files into the loaders' lists (``with_models``). That capture predates
the frame interpolation nodes; their entries come from the real capture ``object_info_frames.json`` (same server
version, the ComfyUI emulator's folder).
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from discomfy.errors import BadInputError
from discomfy.workflows import Kind, bind, load_workflows
from discomfy.workflows.validate import validate

from .conftest import HERE, SHIPPED, shipped_graph

VIDEO = ("img2vid_wan22", "img2vid_ltxv", "img2vid")
#: Where each model role is loaded, as (node class, input).
LOADERS = {
    "wan22_model": ("UNETLoader", "unet_name"),
    "wan_text_encoder": ("CLIPLoader", "clip_name"),
    "wan22_vae": ("VAELoader", "vae_name"),
    "ltxv_checkpoint": ("CheckpointLoaderSimple", "ckpt_name"),
    "ltxv_text_encoder": ("CLIPLoader", "clip_name"),
    "video_checkpoint": ("ImageOnlyCheckpointLoader", "ckpt_name"),
}
INTERPOLATION = ("FrameInterpolationModelLoader", "FrameInterpolate")
REAL_FRAMES = HERE.parent / "peers" / "comfyui" / "object_info_frames.json"
WAN_FILES = ("wan22_model", "wan_text_encoder", "wan22_vae")
LTXV_FILES = ("ltxv_checkpoint", "ltxv_text_encoder")


@pytest.fixture(scope="module")
def real_video_info() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "object_info_video_033.json").read_text(encoding="utf-8"))
    frames = json.loads(REAL_FRAMES.read_text(encoding="utf-8"))
    return data | {name: frames[name] for name in INTERPOLATION}


def with_models(object_info: dict[str, Any], models: dict[str, str]) -> dict[str, Any]:
    """The real answer as a server with the configured video models installed would give it."""
    info = copy.deepcopy(object_info)
    for role, (node, name) in LOADERS.items():
        info[node]["input"]["required"][name][0].append(models[role])
    # A v3 combo: ["COMBO", {"options": [...]}].
    info["FrameInterpolationModelLoader"]["input"]["required"]["model_name"][1]["options"].append(
        models["interpolation_model"]
    )
    return info


def test_the_real_dump_has_every_node_they_use(real_video_info: dict[str, Any]) -> None:
    used = {node["class_type"] for name in VIDEO for node in shipped_graph(name).values()}
    assert used <= set(real_video_info)
    assert {"Wan22ImageToVideoLatent", "LTXVImgToVideo", "LTXVConditioning", "LTXVScheduler"} <= used


@pytest.mark.parametrize("name", VIDEO)
def test_validates_against_the_real_object_info(
    name: str, real_video_info: dict[str, Any], models: dict[str, str]
) -> None:
    workflow = load_workflows(SHIPPED, models).get(name)
    assert validate(workflow, with_models(real_video_info, models), models) == []


@pytest.mark.parametrize("name", VIDEO)
def test_without_its_models_the_real_server_says_which_are_missing(
    name: str, real_video_info: dict[str, Any], models: dict[str, str]
) -> None:
    problems = validate(load_workflows(SHIPPED, models).get(name), real_video_info, models)
    assert problems
    assert all("needs the model file" in p for p in problems)


@pytest.mark.parametrize("name", VIDEO)
def test_a_renamed_input_would_be_caught(name: str, real_video_info: dict[str, Any], models: dict[str, str]) -> None:
    info = with_models(real_video_info, models)
    for spec in info.values():
        spec["input"]["required"].pop("length", None)
        spec["input"]["required"].pop("video_frames", None)
    assert validate(load_workflows(SHIPPED, models).get(name), info, models)


@pytest.mark.parametrize(("name", "seconds"), [("img2vid_wan22", 20), ("img2vid_ltxv", 20), ("img2vid", 20)])
def test_every_video_workflow_can_be_extended_to_its_stated_length(
    name: str, seconds: int, models: dict[str, str]
) -> None:
    # Their first frame is the input picture (Wan22ImageToVideoLatent, LTXVImgToVideo, SVD_img2vid_Conditioning),
    # so a video continues from its last frame; the bound is stated in frames, at the workflow's default fps.
    workflow = load_workflows(SHIPPED, models).get(name)
    fps = workflow.params["fps"].default
    assert isinstance(fps, int) and workflow.extend_max_frames == seconds * fps + 1
    assert workflow.extend_max_frames > (workflow.params["frames"].maximum or 0)


@pytest.mark.parametrize("name", VIDEO)
def test_video_params_are_shared(name: str, models: dict[str, str]) -> None:
    params = load_workflows(SHIPPED, models).get(name).params
    assert {"image", "frames", "fps", "seed", "steps", "cfg", "width", "height"} <= set(params)
    assert ("prompt" in params) is (name != "img2vid")  # SVD takes no text
    assert ("negative" in params) is (name != "img2vid")


def test_wan22_binds_prompt_frames_and_fps(models: dict[str, str]) -> None:
    workflow = load_workflows(SHIPPED, models).get("img2vid_wan22")
    given = {"image": "discomfy/a.png", "prompt": "the cat turns its head", "frames": 81, "fps": 16, "seed": 7}
    bound = bind(workflow, given, models)
    graph = bound.graph
    assert graph["5"]["inputs"]["text"] == "the cat turns its head"
    assert (graph["8"]["inputs"]["length"], graph["8"]["inputs"]["width"], graph["8"]["inputs"]["height"]) == (
        81,
        1280,
        704,
    )
    assert graph["11"]["inputs"]["fps"] == 16.0 and isinstance(graph["11"]["inputs"]["fps"], float)
    assert graph["9"]["inputs"]["seed"] == 7 and graph["7"]["inputs"]["image"] == "discomfy/a.png"
    assert graph["1"]["inputs"]["unet_name"] == models["wan22_model"]
    assert graph["2"]["inputs"]["type"] == "wan"
    assert bound.models == {models[r] for r in WAN_FILES}


def test_wan22_defaults_are_the_models_own(models: dict[str, str]) -> None:
    bound = bind(load_workflows(SHIPPED, models).get("img2vid_wan22"), {"image": "a.png"}, models, rng=random.Random(1))
    assert (bound.values["frames"], bound.values["fps"], bound.values["prompt"]) == (121, 24, "")


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (120, "frames must be 5 plus a multiple of 4, like 117 or 121 (you gave 120)."),
        (119, "frames must be 5 plus a multiple of 4, like 117 or 121 (you gave 119)."),
        (125, "frames must be between 5 and 121 (you gave 125)."),
        (1, "frames must be between 5 and 121 (you gave 1)."),
    ],
)
def test_wan22_frames_are_4n_plus_1_up_to_121(frames: int, message: str, models: dict[str, str]) -> None:
    workflow = load_workflows(SHIPPED, models).get("img2vid_wan22")
    with pytest.raises(BadInputError) as caught:
        bind(workflow, {"image": "a.png", "frames": frames}, models)
    assert caught.value.user_message == message


def test_wan22_fps_is_at_most_24(models: dict[str, str]) -> None:
    workflow = load_workflows(SHIPPED, models).get("img2vid_wan22")
    with pytest.raises(BadInputError, match="fps must be between 1 and 24"):
        bind(workflow, {"image": "a.png", "fps": 30}, models)


def test_ltxv_binds_prompt_frames_fps_and_strength(models: dict[str, str]) -> None:
    workflow = load_workflows(SHIPPED, models).get("img2vid_ltxv")
    given = {"image": "a.png", "prompt": "waves roll in", "frames": 121, "fps": 25, "image_strength": 0.8, "seed": 3}
    graph = bind(workflow, given, models).graph
    assert graph["3"]["inputs"]["text"] == "waves roll in"
    assert (graph["7"]["inputs"]["length"], graph["7"]["inputs"]["strength"]) == (121, 0.8)
    assert graph["8"]["inputs"]["frame_rate"] == 25.0 and graph["13"]["inputs"]["fps"] == 25.0
    assert graph["11"]["inputs"]["noise_seed"] == 3
    assert graph["2"]["inputs"]["type"] == "ltxv"


@pytest.mark.parametrize("frames", [9, 17, 97, 257])
def test_ltxv_frames_of_8n_plus_1_are_taken(frames: int, models: dict[str, str]) -> None:
    workflow = load_workflows(SHIPPED, models).get("img2vid_ltxv")
    assert bind(workflow, {"image": "a.png", "frames": frames}, models).graph["7"]["inputs"]["length"] == frames


@pytest.mark.parametrize("frames", [8, 96, 100, 265])
def test_ltxv_other_frame_counts_are_refused(frames: int, models: dict[str, str]) -> None:
    workflow = load_workflows(SHIPPED, models).get("img2vid_ltxv")
    with pytest.raises(BadInputError, match="frames must be"):
        bind(workflow, {"image": "a.png", "frames": frames}, models)


# -- the best video workflow the servers can run --------------------------------------------------------------


def test_wan22_falls_back_to_ltxv_then_svd(models: dict[str, str]) -> None:
    registry = load_workflows(SHIPPED, models)
    assert [w.name for w in registry.with_fallbacks("img2vid_wan22")] == list(VIDEO)
    assert registry.default(Kind.VIDEO) is not None


def _files(models: dict[str, str], *roles: str) -> set[str]:
    return {models[r] for r in roles} | {models["checkpoint"]}


@pytest.mark.parametrize(
    ("roles", "chosen"),
    [
        ((*WAN_FILES, *LTXV_FILES, "video_checkpoint"), "img2vid_wan22"),
        (WAN_FILES, "img2vid_wan22"),
        ((*LTXV_FILES, "video_checkpoint"), "img2vid_ltxv"),
        (("video_checkpoint",), "img2vid"),
        (("wan22_model", "wan_text_encoder", "video_checkpoint"), "img2vid"),  # Wan without its VAE cannot run
    ],
)
def test_the_best_runnable_video_workflow_is_chosen(
    roles: tuple[str, ...], chosen: str, models: dict[str, str]
) -> None:
    registry = load_workflows(SHIPPED, models)
    found = registry.first_runnable("img2vid_wan22", _files(models, *roles))
    assert found is not None and found.name == chosen


def test_no_video_model_means_no_runnable_video_workflow(models: dict[str, str]) -> None:
    assert load_workflows(SHIPPED, models).first_runnable("img2vid_wan22", _files(models)) is None


def test_without_the_wan_files_installed_ltxv_leads(tmp_path: Path, models: dict[str, str]) -> None:
    for name in ("img2vid_ltxv", "img2vid"):
        for suffix in (".json", ".toml"):
            shutil.copy(SHIPPED / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    registry = load_workflows(tmp_path, models)
    assert registry.problems == ()
    assert [w.name for w in registry.with_fallbacks("img2vid_ltxv")] == ["img2vid_ltxv", "img2vid"]
