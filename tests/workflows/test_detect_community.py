"""Detection on whole graphs, asserted exactly: the shipped workflows (read without their manifests) and three
typical community exports in API format (``community/``): ComfyUI's default SD1.5 text-to-image graph, SDXL base +
refiner (two KSamplerAdvanced splitting one schedule, CLIPTextEncodeSDXL / …Refiner), and Wan 2.1 image-to-video
made of core nodes only (WanImageToVideo, CreateVideo, SaveVideo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from discomfy.workflows import Workflow, detect_workflow, parse_api_graph

from .conftest import SHIPPED

COMMUNITY = Path(__file__).resolve().parent / "community"
SEED = (None, 0, 2**64 - 1)  # no default: the bot picks one per job
Row = tuple[str, tuple[str, ...], Any, Any, Any, Any]


def summary(workflow: Workflow) -> tuple[str, tuple[str, ...], dict[str, Row]]:
    """kind, outputs, and per parameter: type, targets (``node.input``, ``*m`` for a multiply), default, min, max,
    step."""
    params = {
        name: (
            p.type.value,
            tuple(f"{t}" + (f"*{t.multiply}" if t.multiply is not None else "") for t in p.targets),
            p.default,
            p.minimum,
            p.maximum,
            p.step,
        )
        for name, p in sorted(workflow.params.items())
    }
    return workflow.kind.value, workflow.outputs, params


def detected(folder: Path, name: str) -> tuple[str, tuple[str, ...], dict[str, Row]]:
    graph = parse_api_graph(json.loads((folder / f"{name}.json").read_text(encoding="utf-8")), name)
    return summary(detect_workflow(graph, name))


def test_sd15_text_to_image_export() -> None:
    assert detected(COMMUNITY, "sd15_txt2img") == (
        "image",
        ("9",),
        {
            "batch": ("int", ("5.batch_size",), 1, 1, 8, None),
            "cfg": ("float", ("3.cfg",), 8.0, 0.0, 30.0, None),
            "denoise": ("float", ("3.denoise",), 1.0, 0.0, 1.0, None),
            "height": ("int", ("5.height",), 512, 64, 2048, 8),
            "negative": ("str", ("7.text",), "text, watermark", None, None, None),
            "prompt": ("str", ("6.text",), None, None, None, None),
            "seed": ("int", ("3.seed",), *SEED, None),
            "steps": ("int", ("3.steps",), 20, 1, 150, None),
            "width": ("int", ("5.width",), 512, 64, 2048, 8),
        },
    )


def test_sdxl_base_and_refiner_export_binds_both_stages() -> None:
    # The refiner continues the base's latent: its encoders take the same prompt, its steps the same count (the
    # split is start_at_step / end_at_step), and every noise_seed is the seed. cfg stays the base's.
    assert detected(COMMUNITY, "sdxl_refiner") == (
        "image",
        ("19",),
        {
            "batch": ("int", ("5.batch_size",), 1, 1, 8, None),
            "cfg": ("float", ("10.cfg",), 8.0, 0.0, 30.0, None),
            "height": ("int", ("5.height",), 1024, 64, 2048, 8),
            "negative": ("str", ("7.text_g", "7.text_l", "16.text"), "text, watermark", None, None, None),
            "prompt": ("str", ("6.text_g", "6.text_l", "15.text"), None, None, None, None),
            "seed": ("int", ("10.noise_seed", "11.noise_seed"), *SEED, None),
            "steps": ("int", ("10.steps", "11.steps"), 25, 1, 150, None),
            "width": ("int", ("5.width",), 1024, 64, 2048, 8),
        },
    )


def test_wan_image_to_video_export() -> None:
    negative = "static, blurry details, subtitles, worst quality, low quality, JPEG artifacts, ugly, deformed"
    assert detected(COMMUNITY, "wan21_img2vid") == (
        "video",
        ("58",),
        {
            "batch": ("int", ("50.batch_size",), 1, 1, 8, None),
            "cfg": ("float", ("3.cfg",), 6.0, 0.0, 30.0, None),
            "denoise": ("float", ("3.denoise",), 1.0, 0.0, 1.0, None),
            "fps": ("int", ("57.fps*1.0",), 16, 1, 60, None),
            "frames": ("int", ("50.length",), 33, 1, 241, None),
            "height": ("int", ("50.height",), 512, 64, 2048, 8),
            "image": ("image", ("52.image",), None, None, None, None),
            "negative": ("str", ("7.text",), negative, None, None, None),
            "prompt": ("str", ("6.text",), None, None, None, None),
            "seed": ("int", ("3.seed",), *SEED, None),
            "steps": ("int", ("3.steps",), 20, 1, 150, None),
            "width": ("int", ("50.width",), 512, 64, 2048, 8),
        },
    )


SHIPPED_DETECTED: dict[str, tuple[str, tuple[str, ...], dict[str, Row]]] = {
    "txt2img": (
        "image",
        ("7",),
        {
            "batch": ("int", ("4.batch_size",), 1, 1, 8, None),
            "cfg": ("float", ("5.cfg",), 7.0, 0.0, 30.0, None),
            "denoise": ("float", ("5.denoise",), 1.0, 0.0, 1.0, None),
            "height": ("int", ("4.height",), 512, 64, 2048, 8),
            "negative": ("str", ("3.text",), "blurry, low quality, watermark, text", None, None, None),
            "prompt": ("str", ("2.text",), None, None, None, None),
            "seed": ("int", ("5.seed",), *SEED, None),
            "steps": ("int", ("5.steps",), 20, 1, 150, None),
            "width": ("int", ("4.width",), 512, 64, 2048, 8),
        },
    ),
    "upscale": ("upscale", ("5",), {"image": ("image", ("1.image",), None, None, None, None)}),
    "upscale_simple": ("upscale", ("3",), {"image": ("image", ("1.image",), None, None, None, None)}),
    "img2vid": (
        "video",
        ("9",),
        {
            "cfg": ("float", ("6.cfg",), 2.5, 0.0, 30.0, None),
            "denoise": ("float", ("6.denoise",), 1.0, 0.0, 1.0, None),
            "fps": ("int", ("4.fps", "8.fps*1.0"), 6, 1, 60, None),
            "frames": ("int", ("4.video_frames",), 14, 1, 241, None),
            "height": ("int", ("4.height",), 576, 64, 2048, 8),
            "image": ("image", ("2.image",), None, None, None, None),
            "motion": ("int", ("4.motion_bucket_id",), 127, 1, 1023, None),
            "seed": ("int", ("6.seed",), *SEED, None),
            "steps": ("int", ("6.steps",), 20, 1, 150, None),
            "width": ("int", ("4.width",), 1024, 64, 2048, 8),
        },
    ),
    "img2vid_ltxv": (
        "video",
        ("14",),
        {
            "batch": ("int", ("7.batch_size",), 1, 1, 8, None),
            "cfg": ("float", ("11.cfg",), 3.0, 0.0, 30.0, None),
            "fps": ("int", ("13.fps*1.0",), 24, 1, 60, None),
            "frames": ("int", ("7.length",), 97, 1, 241, None),
            "height": ("int", ("7.height",), 512, 64, 2048, 8),
            "image": ("image", ("5.image",), None, None, None, None),
            "negative": (
                "str",
                ("4.text",),
                "low quality, worst quality, deformed, distorted, disfigured, motion smear, motion artifacts, "
                "fused fingers, bad anatomy, weird hand, ugly",
                None,
                None,
                None,
            ),
            "prompt": ("str", ("3.text",), None, None, None, None),
            "seed": ("int", ("11.noise_seed",), *SEED, None),
            "steps": ("int", ("10.steps",), 30, 1, 150, None),
            "width": ("int", ("7.width",), 768, 64, 2048, 8),
        },
    ),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_DETECTED))
def test_shipped_workflow_detected_without_its_manifest(name: str) -> None:
    assert detected(SHIPPED, name) == SHIPPED_DETECTED[name]


def test_shipped_wan22_detected_without_its_manifest() -> None:
    kind, outputs, params = detected(SHIPPED, "img2vid_wan22")
    assert (kind, outputs) == ("video", ("12",))
    negative = params.pop("negative")
    assert negative[:2] == ("str", ("6.text",)) and str(negative[2]).startswith("static, still picture")
    assert params == {
        "batch": ("int", ("8.batch_size",), 1, 1, 8, None),
        "cfg": ("float", ("9.cfg",), 5.0, 0.0, 30.0, None),
        "denoise": ("float", ("9.denoise",), 1.0, 0.0, 1.0, None),
        "fps": ("int", ("11.fps*1.0",), 24, 1, 60, None),
        "frames": ("int", ("8.length",), 121, 1, 241, None),
        "height": ("int", ("8.height",), 704, 64, 2048, 8),
        "image": ("image", ("7.image",), None, None, None, None),
        "prompt": ("str", ("5.text",), None, None, None, None),
        "seed": ("int", ("9.seed",), *SEED, None),
        "steps": ("int", ("9.steps",), 20, 1, 150, None),
        "width": ("int", ("8.width",), 1280, 64, 2048, 8),
    }
