"""The shipped workflows: core node classes only, a title on every node, models by role, a manifest each."""

from __future__ import annotations

import pytest

from discomfy.workflows import Kind, load_workflows

from .conftest import SHIPPED, SHIPPED_NAMES, shipped_graph

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
        "VideoLinearCFGGuidance",
        "KSampler",
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
    }
    assert registry.get("upscale").fallback == "upscale_simple"


def test_img2vid_saves_h264_mp4() -> None:
    inputs = shipped_graph("img2vid")["9"]["inputs"]
    assert (inputs["format"], inputs["format.codec"]) == ("mp4", "h264")
