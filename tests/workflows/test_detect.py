"""Detection: the parameters of a workflow dropped in without a manifest, found through its links."""

from __future__ import annotations

from typing import Any

import pytest

from discomfy.workflows import Graph, Kind, ParamType, Target, WorkflowError, detect_workflow
from discomfy.workflows.objectinfo import parse_object_info

from .conftest import shipped_graph


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": class_type}}


def targets(graph: Graph, name: str, info: dict[str, Any] | None = None) -> tuple[Target, ...]:
    return detect_workflow(graph, "w", parse_object_info(info) if info else None).params[name].targets


def custom_sampler_graph() -> Graph:
    """The Flux / SD3 style: RandomNoise + CFGGuider + KSamplerSelect + BasicScheduler → SamplerCustomAdvanced."""
    graph = shipped_graph("txt2img")
    del graph["5"]
    graph.update(
        {
            "10": node("RandomNoise", noise_seed=5),
            "11": node("CFGGuider", model=["1", 0], positive=["2", 0], negative=["3", 0], cfg=4.5),
            "12": node("KSamplerSelect", sampler_name="euler"),
            "13": node("BasicScheduler", model=["1", 0], scheduler="simple", steps=28, denoise=1.0),
            "14": node(
                "SamplerCustomAdvanced",
                noise=["10", 0],
                guider=["11", 0],
                sampler=["12", 0],
                sigmas=["13", 0],
                latent_image=["4", 0],
            ),
        }
    )
    graph["6"]["inputs"]["samples"] = ["14", 0]
    return graph


def test_shipped_txt2img_without_manifest_is_an_image_workflow(txt2img_graph: Graph) -> None:
    workflow = detect_workflow(txt2img_graph, "w")
    assert (workflow.kind, workflow.outputs, workflow.detected) == (Kind.IMAGE, ("7",), True)


def test_prompt_and_negative_follow_the_sampler_links(txt2img_graph: Graph) -> None:
    params = detect_workflow(txt2img_graph, "w").params
    assert params["prompt"].targets == (Target("2", "text"),) and params["prompt"].required
    assert params["negative"].targets == (Target("3", "text"),)
    assert params["negative"].default == "blurry, low quality, watermark, text"


def test_ksampler_numbers_are_found_with_the_files_defaults(txt2img_graph: Graph) -> None:
    params = detect_workflow(txt2img_graph, "w").params
    found = {n: (params[n].targets, params[n].default) for n in ("steps", "cfg", "denoise")}
    assert found == {
        "steps": ((Target("5", "steps"),), 20),
        "cfg": ((Target("5", "cfg"),), 7.0),
        "denoise": ((Target("5", "denoise"),), 1.0),
    }


def test_seed_is_found_on_ksampler_with_no_default(txt2img_graph: Graph) -> None:
    seed = detect_workflow(txt2img_graph, "w").params["seed"]
    assert (seed.targets, seed.default) == ((Target("5", "seed"),), None)


def test_latent_size_and_batch_are_found(txt2img_graph: Graph) -> None:
    params = detect_workflow(txt2img_graph, "w").params
    assert [params[n].targets for n in ("width", "height", "batch")] == [
        (Target("4", "width"),),
        (Target("4", "height"),),
        (Target("4", "batch_size"),),
    ]
    assert params["width"].step == 8


def test_sd3_empty_latent_is_found(txt2img_graph: Graph) -> None:
    txt2img_graph["4"]["class_type"] = "EmptySD3LatentImage"
    assert targets(txt2img_graph, "width") == (Target("4", "width"),)


def test_without_object_info_policy_bounds_apply(txt2img_graph: Graph) -> None:
    steps = detect_workflow(txt2img_graph, "w").params["steps"]
    assert (steps.minimum, steps.maximum) == (1, 150)


def test_object_info_narrows_the_bounds(txt2img_graph: Graph, object_info: dict[str, Any]) -> None:
    object_info["KSampler"]["input"]["required"]["steps"][1]["max"] = 50
    steps = detect_workflow(txt2img_graph, "w", parse_object_info(object_info)).params["steps"]
    assert steps.maximum == 50


def test_object_info_gives_sampler_and_scheduler_choices(txt2img_graph: Graph, object_info: dict[str, Any]) -> None:
    params = detect_workflow(txt2img_graph, "w", parse_object_info(object_info)).params
    assert params["sampler"].type is ParamType.CHOICE and "dpmpp_2m" in params["sampler"].choices
    assert params["scheduler"].default == "normal" and "karras" in params["scheduler"].choices


def test_without_object_info_sampler_names_are_left_to_the_file(txt2img_graph: Graph) -> None:
    assert "sampler" not in detect_workflow(txt2img_graph, "w").params


def test_a_files_value_beyond_policy_is_still_allowed(txt2img_graph: Graph) -> None:
    txt2img_graph["5"]["inputs"]["steps"] = 200
    assert detect_workflow(txt2img_graph, "w").params["steps"].maximum == 200


def test_ksampler_advanced_seed_is_noise_seed(txt2img_graph: Graph) -> None:
    inputs = txt2img_graph["5"]["inputs"]
    inputs["noise_seed"] = inputs.pop("seed")
    del inputs["denoise"]
    inputs |= {"add_noise": "enable", "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}
    txt2img_graph["5"]["class_type"] = "KSamplerAdvanced"
    params = detect_workflow(txt2img_graph, "w").params
    assert params["seed"].targets == (Target("5", "noise_seed"),)
    assert params["prompt"].targets == (Target("2", "text"),) and params["steps"].targets == (Target("5", "steps"),)


def test_custom_sampler_seed_is_on_random_noise() -> None:
    assert targets(custom_sampler_graph(), "seed") == (Target("10", "noise_seed"),)


def test_custom_sampler_prompts_come_through_the_guider() -> None:
    graph = custom_sampler_graph()
    assert (targets(graph, "prompt"), targets(graph, "negative")) == ((Target("2", "text"),), (Target("3", "text"),))


def test_custom_sampler_steps_cfg_and_denoise_come_from_guider_and_scheduler() -> None:
    graph = custom_sampler_graph()
    assert [targets(graph, n) for n in ("steps", "cfg", "denoise")] == [
        (Target("13", "steps"),),
        (Target("11", "cfg"),),
        (Target("13", "denoise"),),
    ]


def test_custom_sampler_choices_come_from_select_and_scheduler(object_info: dict[str, Any]) -> None:
    graph = custom_sampler_graph()
    assert targets(graph, "sampler", object_info) == (Target("12", "sampler_name"),)
    assert targets(graph, "scheduler", object_info) == (Target("13", "scheduler"),)


def test_basic_guider_conditioning_is_the_prompt() -> None:
    graph = custom_sampler_graph()
    graph["11"] = node("BasicGuider", model=["1", 0], conditioning=["2", 0])
    params = detect_workflow(graph, "w").params
    assert params["prompt"].targets == (Target("2", "text"),) and "negative" not in params


def test_prompt_is_found_through_a_conditioning_combine(txt2img_graph: Graph) -> None:
    txt2img_graph["20"] = node("CLIPTextEncode", text="style words", clip=["1", 1])
    txt2img_graph["21"] = node("ConditioningCombine", conditioning_1=["2", 0], conditioning_2=["20", 0])
    txt2img_graph["5"]["inputs"]["positive"] = ["21", 0]
    assert targets(txt2img_graph, "prompt") == (Target("2", "text"), Target("20", "text"))


def test_two_output_conditioning_nodes_keep_positive_and_negative_apart(txt2img_graph: Graph) -> None:
    txt2img_graph["30"] = node(
        "ControlNetApplyAdvanced", positive=["2", 0], negative=["3", 0], control_net=["31", 0], image=["32", 0]
    )
    txt2img_graph["5"]["inputs"] |= {"positive": ["30", 0], "negative": ["30", 1]}
    assert (targets(txt2img_graph, "prompt"), targets(txt2img_graph, "negative")) == (
        (Target("2", "text"),),
        (Target("3", "text"),),
    )


def test_a_text_fed_by_a_link_is_not_bound(txt2img_graph: Graph) -> None:
    txt2img_graph["2"]["inputs"]["text"] = ["40", 0]
    txt2img_graph["40"] = node("PrimitiveStringMultiline", value="a cat")
    assert "prompt" not in detect_workflow(txt2img_graph, "w").params


def test_load_image_becomes_a_required_image_parameter() -> None:
    image = detect_workflow(shipped_graph("upscale_simple"), "w").params["image"]
    assert (image.type, image.targets, image.required) == (ParamType.IMAGE, (Target("1", "image"),), True)


def test_load_image_without_sampler_is_an_upscale_workflow() -> None:
    assert detect_workflow(shipped_graph("upscale"), "w").kind is Kind.UPSCALE


def test_load_image_with_a_sampler_is_an_image_workflow(txt2img_graph: Graph) -> None:
    txt2img_graph["50"] = node("LoadImage", image="in.png")
    assert detect_workflow(txt2img_graph, "w").kind is Kind.IMAGE


@pytest.mark.parametrize("saver", ["SaveVideo", "SaveAnimatedWEBP", "SaveWEBM", "SaveAnimatedPNG"])
def test_a_video_or_animation_saver_makes_a_video_workflow(saver: str, txt2img_graph: Graph) -> None:
    txt2img_graph["7"]["class_type"] = saver
    assert detect_workflow(txt2img_graph, "w").kind is Kind.VIDEO


def test_shipped_img2vid_without_manifest_is_a_video_workflow() -> None:
    workflow = detect_workflow(shipped_graph("img2vid"), "w")
    assert (workflow.kind, workflow.outputs) == (Kind.VIDEO, ("9",))
    assert workflow.params["seed"].targets == (Target("6", "seed"),) and "prompt" not in workflow.params


def test_a_graph_without_save_node_is_refused(txt2img_graph: Graph) -> None:
    del txt2img_graph["7"]
    with pytest.raises(WorkflowError, match="has no save node"):
        detect_workflow(txt2img_graph, "w")


def test_model_roles_in_the_graph_are_recorded(txt2img_graph: Graph) -> None:
    assert detect_workflow(txt2img_graph, "w").model_roles == {"checkpoint"}


def test_a_size_fed_by_a_link_is_not_bound(txt2img_graph: Graph) -> None:
    txt2img_graph["4"]["inputs"]["width"] = ["41", 0]
    params = detect_workflow(txt2img_graph, "w").params
    assert "width" not in params and "height" in params
