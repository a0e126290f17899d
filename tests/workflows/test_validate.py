"""Validation against a real server's /object_info: the shipped workflows pass; each problem is said plainly."""

from __future__ import annotations

from typing import Any

import pytest

from discomfy.workflows import Graph, Workflow, detect_workflow, models_on_server, parse_manifest, validate

from .conftest import SHIPPED, SHIPPED_NAMES, shipped_graph


def shipped(name: str) -> Workflow:
    return parse_manifest((SHIPPED / f"{name}.toml").read_text(encoding="utf-8"), shipped_graph(name), name)


def problems_of(graph: Graph, object_info: dict[str, Any], models: dict[str, str]) -> list[str]:
    return validate(detect_workflow(graph, "w"), object_info, models)


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_shipped_workflow_validates_clean(name: str, object_info: dict[str, Any], models: dict[str, str]) -> None:
    assert validate(shipped(name), object_info, models) == []


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_shipped_graph_validates_clean_without_its_manifest(
    name: str, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    assert validate(detect_workflow(shipped_graph(name), name), object_info, models) == []


def test_validation_does_not_change_the_workflow(object_info: dict[str, Any], models: dict[str, str]) -> None:
    workflow = shipped("txt2img")
    before = repr(workflow)
    validate(workflow, object_info, models)
    assert repr(workflow) == before


def test_unknown_node_type_is_named(txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]) -> None:
    txt2img_graph["6"]["class_type"] = "VAEDecodeTiledFancy"
    assert problems_of(txt2img_graph, object_info, models) == [
        "workflow 'w': node 6 \"Decode image\" (VAEDecodeTiledFancy) uses the node type 'VAEDecodeTiledFancy', "
        "which this server does not have (a custom node that is not installed?)."
    ]


def test_missing_model_file_is_named(txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]) -> None:
    problems = problems_of(txt2img_graph, object_info, models | {"checkpoint": "sdxl_base.safetensors"})
    assert problems == [
        "workflow 'w': node 1 \"Load checkpoint\" (CheckpointLoaderSimple) needs the model file "
        "'sdxl_base.safetensors' (input 'ckpt_name'), which this server does not have "
        "(it offers: ltx-video-2b-v0.9.5.safetensors, svd_xt.safetensors, v1-5-pruned-emaonly.safetensors)."
    ]


def test_missing_model_in_the_newer_combo_form_is_named(object_info: dict[str, Any], models: dict[str, str]) -> None:
    object_info["UpscaleModelLoader"]["input"]["required"]["model_name"][1]["options"] = []
    problems = validate(shipped("upscale"), object_info, models)
    assert problems == [
        "workflow 'upscale': node 2 \"Load upscale model\" (UpscaleModelLoader) needs the model file "
        "'RealESRGAN_x4plus.pth' (input 'model_name'), which this server does not have (it offers none)."
    ]


def test_number_above_maximum_is_named(
    txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    txt2img_graph["5"]["inputs"]["steps"] = 20000
    assert problems_of(txt2img_graph, object_info, models) == [
        "workflow 'w': node 5 \"Sampler\" (KSampler) has its input 'steps' set to 20000, above its maximum 10000."
    ]


def test_number_below_minimum_is_named(
    txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    txt2img_graph["4"]["inputs"]["width"] = 8
    assert problems_of(txt2img_graph, object_info, models) == [
        "workflow 'w': node 4 \"Image size\" (EmptyLatentImage) has its input 'width' set to 8, below its minimum 16."
    ]


def test_text_for_a_number_is_named(txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]) -> None:
    txt2img_graph["5"]["inputs"]["cfg"] = "high"
    assert problems_of(txt2img_graph, object_info, models) == [
        "workflow 'w': node 5 \"Sampler\" (KSampler) has its input 'cfg' set to 'high', but it must be a number."
    ]


def test_value_not_in_old_style_combo_is_named(
    txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    txt2img_graph["5"]["inputs"]["scheduler"] = "turbo"
    (problem,) = problems_of(txt2img_graph, object_info, models)
    assert problem.startswith(
        "workflow 'w': node 5 \"Sampler\" (KSampler) has its input 'scheduler' set to 'turbo', "
        "which is not one of its choices (it offers: simple, sgm_uniform, karras"
    )


def test_value_not_in_new_style_combo_is_named(object_info: dict[str, Any], models: dict[str, str]) -> None:
    graph = shipped_graph("img2vid")
    graph["9"]["inputs"]["format"] = "avi"
    assert validate(detect_workflow(graph, "v"), object_info, models) == [
        "workflow 'v': node 9 \"Save video\" (SaveVideo) has its input 'format' set to 'avi', which is not one of "
        "its choices (it offers: auto, mp4, mkv, webm)."
    ]


def test_value_not_in_a_nested_dynamic_combo_is_named(object_info: dict[str, Any], models: dict[str, str]) -> None:
    graph = shipped_graph("img2vid")
    graph["9"]["inputs"]["format"] = "webm"  # webm offers auto and av1, not h264
    (problem,) = validate(detect_workflow(graph, "v"), object_info, models)
    assert "has its input 'format.codec' set to 'h264', which is not one of its choices (it offers: auto, av1)" in (
        problem
    )


def test_missing_nested_dynamic_input_is_named(object_info: dict[str, Any], models: dict[str, str]) -> None:
    graph = shipped_graph("img2vid")
    del graph["9"]["inputs"]["format.codec"]
    assert validate(detect_workflow(graph, "v"), object_info, models) == [
        "workflow 'v': node 9 \"Save video\" (SaveVideo) is missing its required input 'format.codec'."
    ]


def test_missing_required_input_is_named(
    txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    del txt2img_graph["4"]["inputs"]["batch_size"]
    assert problems_of(txt2img_graph, object_info, models) == [
        "workflow 'w': node 4 \"Image size\" (EmptyLatentImage) is missing its required input 'batch_size'."
    ]


def test_missing_optional_input_is_fine(object_info: dict[str, Any], models: dict[str, str]) -> None:
    graph = shipped_graph("img2vid")
    assert "bit_depth" not in graph["8"]["inputs"] and validate(detect_workflow(graph, "v"), object_info, models) == []


def test_link_to_a_missing_node_is_named(
    txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    txt2img_graph["6"]["inputs"]["vae"] = ["99", 2]
    assert problems_of(txt2img_graph, object_info, models) == [
        "workflow 'w': node 6 \"Decode image\" (VAEDecode) has its input 'vae' linked to node 99, "
        "which is not in the workflow."
    ]


def test_link_to_an_output_out_of_range_is_named(
    txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    txt2img_graph["6"]["inputs"]["vae"] = ["1", 3]
    assert problems_of(txt2img_graph, object_info, models) == [
        "workflow 'w': node 6 \"Decode image\" (VAEDecode) has its input 'vae' linked to output 3 of "
        'node 1 "Load checkpoint" (CheckpointLoaderSimple), which has only 3 outputs.'
    ]


def test_link_of_the_wrong_type_is_named(
    txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    txt2img_graph["6"]["inputs"]["vae"] = ["1", 1]
    assert problems_of(txt2img_graph, object_info, models) == [
        "workflow 'w': node 6 \"Decode image\" (VAEDecode) has its input 'vae' expecting VAE, but it is linked to "
        'output 1 of node 1 "Load checkpoint" (CheckpointLoaderSimple), which gives CLIP.'
    ]


def test_a_widget_fed_by_a_link_of_its_type_is_fine(
    txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    object_info["PrimitiveInt"] = {"input": {"required": {"value": ["INT", {}]}}, "output": ["INT"]}
    txt2img_graph["40"] = {"class_type": "PrimitiveInt", "inputs": {"value": 30}}
    txt2img_graph["5"]["inputs"]["steps"] = ["40", 0]
    assert problems_of(txt2img_graph, object_info, models) == []


def test_a_value_where_a_link_is_needed_is_named(
    txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    txt2img_graph["6"]["inputs"]["vae"] = "vae.safetensors"
    assert problems_of(txt2img_graph, object_info, models) == [
        "workflow 'w': node 6 \"Decode image\" (VAEDecode) has its input 'vae' set to a value, but it must be "
        "linked to a node giving VAE."
    ]


def test_a_parameter_wider_than_its_input_is_named(object_info: dict[str, Any], models: dict[str, str]) -> None:
    object_info["KSampler"]["input"]["required"]["steps"][1]["max"] = 50
    assert validate(shipped("txt2img"), object_info, models) == [
        "workflow 'txt2img': parameter 'steps' allows 60, but input 'steps' of node 5 \"Sampler\" (KSampler) "
        "accepts at most 50."
    ]


def test_a_multiplied_parameter_is_compared_after_multiplying(
    object_info: dict[str, Any], models: dict[str, str]
) -> None:
    object_info["ImageScaleBy"]["input"]["required"]["scale_by"][1]["max"] = 0.5
    (problem,) = validate(shipped("upscale"), object_info, models)
    assert "parameter 'scale' allows 4, but input 'scale_by' of node 4" in problem


def test_a_parameter_choice_the_server_lacks_is_named(object_info: dict[str, Any], models: dict[str, str]) -> None:
    choices = object_info["KSampler"]["input"]["required"]["sampler_name"][0]
    choices.remove("uni_pc")
    (problem,) = validate(shipped("txt2img"), object_info, models)
    assert problem.startswith(
        "workflow 'txt2img': parameter 'sampler' offers 'uni_pc', which input 'sampler_name' of node 5"
    )


def test_an_unconfigured_model_role_is_named(object_info: dict[str, Any]) -> None:
    (problem,) = validate(shipped("txt2img"), object_info, {})
    assert "uses {models.checkpoint}, but no model file is configured for the role 'checkpoint'" in problem


def test_the_uploaded_image_is_not_checked_against_the_servers_files(
    object_info: dict[str, Any], models: dict[str, str]
) -> None:
    object_info["LoadImage"]["input"]["required"]["image"][0] = []
    assert validate(shipped("upscale_simple"), object_info, models) == []


def test_every_problem_of_a_graph_is_reported(
    txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    txt2img_graph["5"]["inputs"]["steps"] = 0
    txt2img_graph["6"]["class_type"] = "Nope"
    assert len(problems_of(txt2img_graph, object_info, models)) == 2


def test_models_on_server_reads_both_combo_forms(object_info: dict[str, Any]) -> None:
    assert models_on_server(object_info) == {
        "v1-5-pruned-emaonly.safetensors",
        "svd_xt.safetensors",
        "RealESRGAN_x4plus.pth",
        "wan2.2_ti2v_5B_fp16.safetensors",
        "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        "wan2.2_vae.safetensors",
        "ltx-video-2b-v0.9.5.safetensors",
        "t5xxl_fp16.safetensors",
        "rife47.pth",
    }


def test_a_parameter_on_an_input_the_node_lacks_is_named(
    txt2img_graph: Graph, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    workflow = parse_manifest('kind = "image"\n[params.steps]\ntype = "int"\ntarget = "5.stepz"\n', txt2img_graph, "w")
    assert validate(workflow, object_info, models) == [
        "workflow 'w': parameter 'steps' writes to input 'stepz' of node 5 \"Sampler\" (KSampler), "
        "which that node does not have."
    ]
