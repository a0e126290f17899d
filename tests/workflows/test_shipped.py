"""The shipped workflows: core node classes only, a title on every node, models by role, a manifest each."""

from __future__ import annotations

import pytest

from discomfy.workflows import Kind, load_workflows

from .conftest import SHIPPED, SHIPPED_NAMES, shipped_graph

#: The optional frame interpolation stage of the video workflows ([stages.interpolate]).
INTERPOLATION = ("FrameInterpolationModelLoader", "FrameInterpolate")
#: The node classes each shipped workflow is allowed (the ComfyUI emulator must support exactly these).
CLASSES = {
    "txt2img": {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage"},
    "upscale": {"LoadImage", "UpscaleModelLoader", "ImageUpscaleWithModel", "ImageScaleBy", "SaveImage"},
    "upscale_simple": {"LoadImage", "ImageScaleBy", "SaveImage"},
    "img2vid": {
        "ImageOnlyCheckpointLoader",
        "LoadImage",
        "ImageScale",
        "SVD_img2vid_Conditioning",
        *INTERPOLATION,
        "VideoLinearCFGGuidance",
        "KSampler",
        "VAEDecode",
        "CreateVideo",
        "SaveVideo",
    },
    "img2vid_wan22": {
        "UNETLoader",
        "CLIPLoader",
        "VAELoader",
        "ModelSamplingSD3",
        "CLIPTextEncode",
        "LoadImage",
        "Wan22ImageToVideoLatent",
        *INTERPOLATION,
        "KSampler",
        "VAEDecode",
        "CreateVideo",
        "SaveVideo",
    },
    "img2vid_ltxv": {
        "CheckpointLoaderSimple",
        "CLIPLoader",
        "CLIPTextEncode",
        "LoadImage",
        "LTXVPreprocess",
        "LTXVImgToVideo",
        "LTXVConditioning",
        "KSamplerSelect",
        "LTXVScheduler",
        *INTERPOLATION,
        "SamplerCustom",
        "VAEDecode",
        "CreateVideo",
        "SaveVideo",
    },
}


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_uses_only_its_core_node_classes(name: str) -> None:
    assert {node["class_type"] for node in shipped_graph(name).values()} == CLASSES[name]


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_every_node_has_its_own_title(name: str) -> None:
    titles = [node["_meta"]["title"] for node in shipped_graph(name).values()]
    assert all(titles) and len(set(titles)) == len(titles)


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_has_a_manifest(name: str) -> None:
    assert (SHIPPED / f"{name}.toml").is_file()


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_names_models_only_by_role(name: str) -> None:
    text = (SHIPPED / f"{name}.json").read_text(encoding="utf-8")
    for extension in (".safetensors", ".ckpt", ".pth", '.pt"', "lora"):
        assert extension not in text.lower()


def test_kinds_and_fallback(models: dict[str, str]) -> None:
    registry = load_workflows(SHIPPED, models)
    kinds = {name: registry.get(name).kind for name in SHIPPED_NAMES}
    assert kinds == {
        "txt2img": Kind.IMAGE,
        "upscale": Kind.UPSCALE,
        "upscale_simple": Kind.UPSCALE,
        "img2vid": Kind.VIDEO,
        "img2vid_ltxv": Kind.VIDEO,
        "img2vid_wan22": Kind.VIDEO,
    }
    assert registry.get("upscale").fallback == "upscale_simple"
    video_chain = (registry.get("img2vid_wan22").fallback, registry.get("img2vid_ltxv").fallback)
    assert video_chain == ("img2vid_ltxv", "img2vid")


@pytest.mark.parametrize(("name", "node"), [("img2vid", "9"), ("img2vid_ltxv", "14"), ("img2vid_wan22", "12")])
def test_video_workflows_save_h264_mp4(name: str, node: str) -> None:
    saver = shipped_graph(name)[node]
    assert saver["class_type"] == "SaveVideo"
    assert (saver["inputs"]["format"], saver["inputs"]["format.codec"]) == ("mp4", "h264")
