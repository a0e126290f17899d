"""Optional stages (``[stages.NAME]`` in a manifest): the frame interpolation of the shipped video workflows, how
binding keeps or cuts it, what a server must have for it, and one test per mistake an operator can make."""

from __future__ import annotations

from typing import Any

import pytest

from discomfy.config import DEFAULT_MODELS
from discomfy.errors import BadInputError
from discomfy.workflows import Graph, Target, WorkflowError, bind, load_workflows, parse_manifest
from discomfy.workflows.validate import validate

from .conftest import SHIPPED, shipped_graph

VIDEO = ("img2vid_wan22", "img2vid_ltxv", "img2vid")
#: img2vid (SVD): 7 VAEDecode → 11 FrameInterpolate (10 its model) → 8 CreateVideo → 9 SaveVideo.
STAGE = """
[stages.interpolate]
nodes = ["10", "11"]
bypass = "11.images"
fps = "8.fps"
multiplier = "11.multiplier"
"""
BASE = 'kind = "video"\n[params.image]\ntype = "image"\ntarget = "2.image"\n'


def problem(text: str, graph: Graph | None = None) -> str:
    with pytest.raises(WorkflowError) as caught:
        parse_manifest(BASE + text, graph or shipped_graph("img2vid"), "v")
    return caught.value.problem


@pytest.fixture(scope="module")
def registry(models: dict[str, str]) -> Any:
    return load_workflows(SHIPPED, models)


@pytest.fixture(scope="module")
def models() -> dict[str, str]:
    return dict(DEFAULT_MODELS)


@pytest.mark.parametrize("name", VIDEO)
def test_each_video_workflow_declares_its_interpolation_stage(name: str, registry: Any) -> None:
    stage = registry.get(name).stages["interpolate"]
    graph = shipped_graph(name)
    assert {graph[n]["class_type"] for n in stage.nodes} == {"FrameInterpolationModelLoader", "FrameInterpolate"}
    assert graph[stage.bypass.node]["class_type"] == "FrameInterpolate" and stage.bypass.input == "images"
    assert graph[stage.fps.node]["class_type"] == "CreateVideo"
    assert graph[stage.multiplier.node]["inputs"]["multiplier"] == 2


@pytest.mark.parametrize("name", VIDEO)
def test_without_the_stage_its_nodes_are_cut_and_the_video_takes_the_decoded_frames(
    name: str, registry: Any, models: dict[str, str]
) -> None:
    workflow = registry.get(name)
    stage = workflow.stages["interpolate"]
    bound = bind(workflow, {"image": "a.png"}, models)
    decoder = shipped_graph(name)[stage.bypass.node]["inputs"]["images"]
    assert not stage.nodes & set(bound.graph)
    assert bound.graph[stage.fps.node]["inputs"]["images"] == decoder
    assert bound.values["interpolate"] is False and models["interpolation_model"] not in bound.models


@pytest.mark.parametrize("name", VIDEO)
def test_with_the_stage_the_fps_is_multiplied_so_the_video_lasts_as_long(
    name: str, registry: Any, models: dict[str, str]
) -> None:
    workflow = registry.get(name)
    stage = workflow.stages["interpolate"]
    without = bind(workflow, {"image": "a.png", "seed": 1}, models)
    bound = bind(workflow, {"image": "a.png", "seed": 1, "interpolate": True}, models)
    assert stage.nodes <= set(bound.graph)
    assert bound.graph[stage.fps.node]["inputs"]["fps"] == 2 * without.graph[stage.fps.node]["inputs"]["fps"]
    assert bound.graph[stage.fps.node]["inputs"]["images"] == [stage.bypass.node, 0]
    assert bound.values["interpolate"] is True and bound.values["fps"] == without.values["fps"]
    assert bound.models == without.models | {models["interpolation_model"]}


def test_binding_the_recorded_values_again_gives_the_same_graph(registry: Any, models: dict[str, str]) -> None:
    workflow = registry.get("img2vid")
    bound = bind(workflow, {"image": "a.png", "interpolate": True}, models)
    assert bind(workflow, dict(bound.values), models).graph == bound.graph


def test_a_stage_value_that_is_not_yes_or_no_is_refused(registry: Any, models: dict[str, str]) -> None:
    with pytest.raises(BadInputError, match="interpolate must be yes or no"):
        bind(registry.get("img2vid"), {"image": "a.png", "interpolate": "maybe"}, models)


@pytest.mark.parametrize("name", VIDEO)
def test_the_stage_model_is_not_needed_to_run_the_workflow(name: str, registry: Any, models: dict[str, str]) -> None:
    assert models["interpolation_model"] not in registry.needed_models(name)
    assert models["interpolation_model"] in registry.needed_models(name, {"interpolate"})


def test_a_server_without_the_interpolation_model_or_node_validates_clean(
    registry: Any, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    workflow = registry.get("img2vid")
    assert validate(workflow, object_info, models) == []
    object_info["FrameInterpolationModelLoader"]["input"]["required"]["model_name"][1]["options"] = []
    assert validate(workflow, object_info, models) == []
    del object_info["FrameInterpolate"], object_info["FrameInterpolationModelLoader"]
    assert validate(workflow, object_info, models) == []


def test_a_stage_input_of_the_wrong_kind_is_still_named(
    registry: Any, object_info: dict[str, Any], models: dict[str, str]
) -> None:
    object_info["FrameInterpolate"]["input"]["required"]["multiplier"][1]["min"] = 3
    [said] = validate(registry.get("img2vid"), object_info, models)
    assert 'node 11 "Interpolating" (FrameInterpolate)' in said and "multiplier" in said


def test_the_stage_is_read() -> None:
    workflow = parse_manifest(BASE + STAGE + 'description = "Smoother."\n', shipped_graph("img2vid"), "v")
    stage = workflow.stages["interpolate"]
    assert (stage.nodes, stage.bypass, stage.fps, stage.multiplier, stage.description) == (
        frozenset({"10", "11"}),
        Target("11", "images"),
        Target("8", "fps"),
        Target("11", "multiplier"),
        "Smoother.",
    )


def test_fps_and_multiplier_are_optional_together() -> None:
    text = BASE + '[stages.interpolate]\nnodes = ["10", "11"]\nbypass = "11.images"\n'
    stage = parse_manifest(text, shipped_graph("img2vid"), "v").stages["interpolate"]
    assert (stage.fps, stage.multiplier) == (None, None)
    assert "multiplier must be" in problem(
        '[stages.interpolate]\nnodes = ["10", "11"]\nbypass = "11.images"\nfps = "8.fps"\n'
    )


def test_an_unknown_stage_key_is_refused() -> None:
    assert "stage 'interpolate' has an unknown key 'node'" in problem(STAGE + 'node = "10"\n')


def test_a_stage_node_not_in_the_workflow_is_refused() -> None:
    assert "node 99 is not in the workflow" in problem(STAGE.replace('"10", "11"', '"10", "11", "99"'))


def test_a_bypass_outside_the_stage_or_not_a_link_is_refused() -> None:
    assert "bypass must name a node of the stage" in problem(
        STAGE.replace('bypass = "11.images"', 'bypass = "8.images"')
    )
    assert "bypass must name a node of the stage" in problem(
        STAGE.replace('bypass = "11.images"', 'bypass = "11.multiplier"')
    )


def test_a_node_outside_taking_another_stage_output_is_refused() -> None:
    graph = shipped_graph("img2vid")
    graph["8"]["inputs"]["images"] = ["10", 0]  # the model, not the frames
    assert "node 8 ('images') takes output 0 of node 10 inside the stage" in problem(STAGE, graph)


def test_a_parameter_writing_into_the_stage_is_refused() -> None:
    text = STAGE + '[params.smooth]\ntype = "int"\ntarget = "11.multiplier"\n'
    assert "parameter 'smooth' writes to 11.multiplier, inside the stage" in problem(text)


def test_an_output_node_in_the_stage_is_refused() -> None:
    text = 'kind = "video"\noutputs = ["9", "11"]\n' + STAGE
    with pytest.raises(WorkflowError, match="node 11 is an output node"):
        parse_manifest(text, shipped_graph("img2vid"), "v")


def test_a_stage_named_like_a_parameter_is_refused() -> None:
    assert "has the name of a parameter" in problem(STAGE.replace("stages.interpolate", "stages.image"))


def test_a_multiplier_below_two_is_refused() -> None:
    graph = shipped_graph("img2vid")
    graph["11"]["inputs"]["multiplier"] = 1
    assert "multiplier must name a whole number of 2 or more inside the stage" in problem(STAGE, graph)
