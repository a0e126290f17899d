"""An upload may read only the picture a user gives, never a file already on the ComfyUI server.

ComfyUI resolves a LoadImage-style name ending in `` [output]``, `` [temp]`` or `` [input]`` in that folder
(folder_paths.annotated_filepath; LoadImage's VALIDATE_INPUTS skips the list check), and LoadImageOutput lists the
output folder: through either, an uploaded graph could hand one guild's results, or another user's picture, to
whoever runs it. Inputs that name a server file are those whose /object_info options carry ``image_upload``,
``audio_upload``, ``video_upload``, ``file_upload``, ``image_folder`` or ``remote`` (real ComfyUI 0.33)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from discomfy.config import DEFAULT_MODELS
from discomfy.errors import BadInputError
from discomfy.workflows import Graph, Target, bind, detect_workflow, parse_api_graph
from discomfy.workflows.objectinfo import NodeSpec, parse_object_info
from discomfy.workflows.uploads import UploadRules, looks_like_path, read_upload, rebind, unbound_file_inputs
from discomfy.workflows.validate import validate

COMMUNITY = Path(__file__).resolve().parent / "community"
SD15 = (COMMUNITY / "sd15_txt2img.json").read_bytes()
#: Real /object_info entries (ComfyUI 0.33), trimmed to the input that matters.
FILE_NODES: dict[str, Any] = {
    "LoadImageMask": {
        "input": {"required": {"image": [[], {"image_upload": True}], "channel": [["alpha", "red"], {}]}},
        "output": ["MASK"],
        "output_node": False,
        "python_module": "nodes",
    },
    "LoadAudio": {
        "input": {"required": {"audio": ["COMBO", {"multiselect": False, "audio_upload": True, "options": []}]}},
        "output": ["AUDIO"],
        "output_node": False,
        "python_module": "comfy_extras.nodes_audio",
    },
}
CLASSES = {node["class_type"] for node in json.loads(SD15).values()}
RULES = UploadRules(1 << 20, 40, frozenset({*CLASSES, "LoadImage", "LoadImageMask", "ImageScale"}))


def specs(object_info: dict[str, Any]) -> dict[str, NodeSpec]:
    return parse_object_info({**object_info, **FILE_NODES})


def img2img() -> Graph:
    """The SD1.5 export also reading a picture: LoadImage (10) → ImageScale (11) → its own SaveImage (12)."""
    graph = parse_api_graph(json.loads(SD15), "w")
    graph["10"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    graph["11"] = {
        "class_type": "ImageScale",
        "inputs": {"upscale_method": "lanczos", "width": 512, "height": 512, "crop": "disabled", "image": ["10", 0]},
    }
    graph["12"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "w", "images": ["11", 0]}}
    return graph


def allowed(extra: str) -> UploadRules:
    return UploadRules(RULES.max_bytes, RULES.max_nodes, RULES.allowed | {extra})


@pytest.mark.parametrize(
    "value", ["txt2img_00042_.png [output]", "ComfyUI_temp_x.png [temp]", "a.png [input]", "x.png  [OUTPUT] "]
)
def test_a_name_comfyui_looks_up_in_its_folders_counts_as_a_path(value: str) -> None:
    assert looks_like_path(value)
    graph = img2img()
    graph["10"]["inputs"]["image"] = value
    with pytest.raises(BadInputError, match="looks like a path"):
        read_upload(json.dumps(graph).encode(), "w", RULES)


@pytest.mark.parametrize("value", ["a cat [photo]", "output of the day", "[output] is what I want"])
def test_brackets_in_a_prompt_are_not_a_path(value: str) -> None:
    assert not looks_like_path(value)


def test_a_path_nested_in_a_dict_input_is_found() -> None:
    graph = img2img()
    graph["10"]["inputs"]["image"] = {"image": "x.png", "recording": "../../secret.webm"}
    with pytest.raises(BadInputError, match="looks like a path"):
        read_upload(json.dumps(graph).encode(), "w", RULES)


def test_load_image_output_is_denied_even_when_the_servers_list_it() -> None:
    graph = img2img()
    graph["10"]["class_type"] = "LoadImageOutput"
    with pytest.raises(BadInputError, match="output folder"):
        read_upload(json.dumps(graph).encode(), "w", allowed("LoadImageOutput"))


def test_a_file_input_not_written_by_the_image_parameter_is_named(object_info: dict[str, Any]) -> None:
    graph = img2img()
    graph["13"] = {"class_type": "LoadImageMask", "inputs": {"image": "someone_elses.png", "channel": "alpha"}}
    workflow = detect_workflow(graph, "w", specs(object_info))
    assert [t for p in workflow.params.values() for t in p.targets if t.node == "10"] == [Target("10", "image")]

    assert unbound_file_inputs(workflow, specs(object_info)) == ["node 13 (LoadImageMask) input `image`"]
    del graph["13"]
    assert unbound_file_inputs(detect_workflow(graph, "w", specs(object_info)), specs(object_info)) == []


def test_the_prompt_cannot_be_rebound_to_a_file_input_or_any_list(object_info: dict[str, Any]) -> None:
    workflow = detect_workflow(img2img(), "w", specs(object_info))
    with pytest.raises(BadInputError, match="names a file on the server"):
        rebind(workflow, "prompt", Target("10", "image"), specs(object_info))
    with pytest.raises(BadInputError, match="not a text input"):
        rebind(workflow, "prompt", Target("3", "sampler_name"), specs(object_info))


def test_validation_refuses_text_written_to_a_file_input_and_never_lists_the_servers_files(
    object_info: dict[str, Any],
) -> None:
    workflow = detect_workflow(img2img(), "w", specs(object_info))
    # Forced past rebind (a hand-written manifest could say it): the check against the server names it.
    prompt = replace(workflow.params["prompt"], targets=(Target("10", "image"),))
    leaky = replace(workflow, params={**workflow.params, "prompt": prompt})
    info = {**object_info, **FILE_NODES}
    info["LoadImage"] = json.loads(json.dumps(info["LoadImage"]))
    info["LoadImage"]["input"]["required"]["image"] = [["alice_cat.png", "bob_secret.png"], {"image_upload": True}]
    problems = validate(leaky, info, dict(DEFAULT_MODELS))
    assert any("names a file on the server; only an image may" in p for p in problems), problems

    graph = img2img()
    graph["13"] = {"class_type": "LoadImageMask", "inputs": {"image": "nope.png", "channel": "alpha"}}
    said = " ".join(validate(detect_workflow(graph, "w", specs(object_info)), info, dict(DEFAULT_MODELS)))
    assert "set to a file the server does not have" in said
    assert "alice_cat" not in said and "bob_secret" not in said


def test_binding_refuses_text_ending_in_a_folder_annotation() -> None:
    workflow = detect_workflow(parse_api_graph(json.loads(SD15), "w"), "w")
    with pytest.raises(BadInputError, match="file on its server"):
        bind(workflow, {"prompt": "txt2img_00042_.png [output]"}, dict(DEFAULT_MODELS))
    assert bind(workflow, {"prompt": "a cat [photo]"}, dict(DEFAULT_MODELS)).values["prompt"] == "a cat [photo]"
