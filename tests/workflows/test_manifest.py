"""Manifest parsing: what each key means, and one test per mistake an operator can make."""

from __future__ import annotations

import pytest

from discomfy.workflows import Graph, Kind, ParamType, Target, WorkflowError, parse_manifest

BASE = 'kind = "image"\n'


def manifest(body: str) -> str:
    return BASE + body


def problem(graph: Graph, text: str) -> str:
    with pytest.raises(WorkflowError) as caught:
        parse_manifest(text, graph, "t2i")
    return caught.value.problem


def test_kind_description_default_and_fallback_are_read(txt2img_graph: Graph) -> None:
    workflow = parse_manifest(
        'kind = "upscale"\ndescription = "Bigger."\ndefault = true\nfallback = "plain"\n', txt2img_graph, "t2i"
    )
    assert (workflow.kind, workflow.description, workflow.default, workflow.fallback) == (
        Kind.UPSCALE,
        "Bigger.",
        True,
        "plain",
    )


def test_outputs_default_to_the_save_nodes(txt2img_graph: Graph) -> None:
    assert parse_manifest(BASE, txt2img_graph, "t2i").outputs == ("7",)


def test_outputs_can_be_named(txt2img_graph: Graph) -> None:
    assert parse_manifest(manifest('outputs = ["6"]\n'), txt2img_graph, "t2i").outputs == ("6",)


def test_string_target_is_node_dot_input(txt2img_graph: Graph) -> None:
    workflow = parse_manifest(manifest('[params.prompt]\ntype = "str"\ntarget = "2.text"\n'), txt2img_graph, "t2i")
    assert workflow.params["prompt"].targets == (Target("2", "text"),)


def test_input_names_with_dots_keep_everything_after_the_node_id(txt2img_graph: Graph) -> None:
    text = manifest('[params.codec]\ntype = "str"\ntarget = "7.format.codec"\n')
    assert parse_manifest(text, txt2img_graph, "t2i").params["codec"].targets == (Target("7", "format.codec"),)


def test_a_parameter_can_bind_several_targets_with_a_multiplier(txt2img_graph: Graph) -> None:
    text = manifest(
        '[params.size]\ntype = "int"\ntargets = ["4.width", { node = "4", input = "height", multiply = 0.5 }]\n'
    )
    assert parse_manifest(text, txt2img_graph, "t2i").params["size"].targets == (
        Target("4", "width"),
        Target("4", "height", 0.5),
    )


def test_all_parameter_keys_are_read(txt2img_graph: Graph) -> None:
    text = manifest(
        '[params.steps]\ntype = "int"\ntarget = "5.steps"\ndefault = 20\nmin = 1\nmax = 60\nstep = 1\n'
        'required = false\ndescription = "Steps."\n'
    )
    param = parse_manifest(text, txt2img_graph, "t2i").params["steps"]
    assert (param.type, param.default, param.minimum, param.maximum, param.step, param.description) == (
        ParamType.INT,
        20,
        1,
        60,
        1,
        "Steps.",
    )


def test_image_parameters_are_required_unless_said_otherwise(txt2img_graph: Graph) -> None:
    text = manifest('[params.image]\ntype = "image"\ntarget = "2.text"\n')
    assert parse_manifest(text, txt2img_graph, "t2i").params["image"].required is True


def test_model_roles_are_collected_from_graph_and_manifest(txt2img_graph: Graph) -> None:
    text = manifest(
        '[params.model]\ntype = "choice"\ntarget = "1.ckpt_name"\ndefault = "{models.checkpoint}"\n'
        'choices = ["{models.checkpoint}", "{models.other}"]\n'
    )
    assert parse_manifest(text, txt2img_graph, "t2i").model_roles == {"checkpoint", "other"}


def test_invalid_toml_is_reported_with_the_workflow_name(txt2img_graph: Graph) -> None:
    assert "manifest of workflow 't2i' is not valid TOML" in problem(txt2img_graph, "kind = ")


def test_unknown_top_level_key_is_refused(txt2img_graph: Graph) -> None:
    assert "unknown key 'kinds'" in problem(txt2img_graph, manifest('kinds = "image"\n'))


def test_missing_or_wrong_kind_names_the_kinds(txt2img_graph: Graph) -> None:
    assert "kind = one of image, upscale, video (it says 'picture')" in problem(txt2img_graph, 'kind = "picture"\n')


def test_unknown_parameter_key_is_refused(txt2img_graph: Graph) -> None:
    text = manifest('[params.steps]\ntype = "int"\ntarget = "5.steps"\nmaximum = 3\n')
    assert "parameter 'steps' has an unknown key 'maximum'" in problem(txt2img_graph, text)


def test_unknown_parameter_type_is_refused(txt2img_graph: Graph) -> None:
    text = manifest('[params.steps]\ntype = "integer"\ntarget = "5.steps"\n')
    assert "type must be one of int, float, str, bool, choice, image (it says 'integer')" in problem(
        txt2img_graph, text
    )


def test_parameter_without_target_is_refused(txt2img_graph: Graph) -> None:
    assert "needs a target like" in problem(txt2img_graph, manifest('[params.steps]\ntype = "int"\n'))


def test_target_on_a_missing_node_is_refused(txt2img_graph: Graph) -> None:
    text = manifest('[params.steps]\ntype = "int"\ntarget = "55.steps"\n')
    assert "names node 55, which is not in the workflow" in problem(txt2img_graph, text)


def test_target_on_a_linked_input_is_refused(txt2img_graph: Graph) -> None:
    text = manifest('[params.model]\ntype = "str"\ntarget = "5.model"\n')
    assert "is fed by a link" in problem(txt2img_graph, text)


def test_malformed_target_is_refused(txt2img_graph: Graph) -> None:
    text = manifest('[params.steps]\ntype = "int"\ntarget = "steps"\n')
    assert 'is not "node.input"' in problem(txt2img_graph, text)


def test_multiply_on_a_text_parameter_is_refused(txt2img_graph: Graph) -> None:
    text = manifest('[params.prompt]\ntype = "str"\ntargets = [{ node = "2", input = "text", multiply = 2 }]\n')
    assert "'multiply' only works for int and float" in problem(txt2img_graph, text)


def test_choice_parameter_needs_choices(txt2img_graph: Graph) -> None:
    text = manifest('[params.sampler]\ntype = "choice"\ntarget = "5.sampler_name"\n')
    assert "needs a list of choices" in problem(txt2img_graph, text)


def test_min_above_max_is_refused(txt2img_graph: Graph) -> None:
    text = manifest('[params.steps]\ntype = "int"\ntarget = "5.steps"\nmin = 10\nmax = 5\n')
    assert "min (10) is above max (5)" in problem(txt2img_graph, text)


def test_default_outside_its_own_bounds_is_refused(txt2img_graph: Graph) -> None:
    text = manifest('[params.steps]\ntype = "int"\ntarget = "5.steps"\ndefault = 500\nmin = 1\nmax = 150\n')
    assert "its default does not fit its own rules: steps must be between 1 and 150 (you gave 500)" in problem(
        txt2img_graph, text
    )


def test_default_not_among_the_choices_is_refused(txt2img_graph: Graph) -> None:
    text = manifest(
        '[params.sampler]\ntype = "choice"\ntarget = "5.sampler_name"\ndefault = "x"\nchoices = ["euler"]\n'
    )
    assert "sampler must be one of: euler" in problem(txt2img_graph, text)


def test_badly_named_parameter_is_refused(txt2img_graph: Graph) -> None:
    text = manifest('[params.Steps]\ntype = "int"\ntarget = "5.steps"\n')
    assert "names are lowercase letters" in problem(txt2img_graph, text)


def test_output_on_a_missing_node_is_refused(txt2img_graph: Graph) -> None:
    assert "output node 42 is not in the workflow" in problem(txt2img_graph, manifest('outputs = ["42"]\n'))


def test_graph_without_save_node_needs_outputs(txt2img_graph: Graph) -> None:
    del txt2img_graph["7"]
    assert "has no save node" in problem(txt2img_graph, BASE)


def test_extend_max_frames_is_read_for_a_video_workflow_that_takes_a_picture(txt2img_graph: Graph) -> None:
    text = 'kind = "video"\nextend_max_frames = 481\n[params.image]\ntype = "image"\ntarget = "6.text"\n'
    assert parse_manifest(text, txt2img_graph, "t2i").extend_max_frames == 481
    assert parse_manifest(BASE, txt2img_graph, "t2i").extend_max_frames is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('kind = "image"\nextend_max_frames = 100\n', "for video workflows that take a picture"),
        ('kind = "video"\nextend_max_frames = 100\n', "for video workflows that take a picture"),
        ('kind = "video"\nextend_max_frames = 0\n', "extend_max_frames must be a whole number of 1 or more"),
        ('kind = "video"\nextend_max_frames = "long"\n', "extend_max_frames must be a whole number"),
    ],
)
def test_a_bad_extend_max_frames_is_refused(txt2img_graph: Graph, text: str, says: str) -> None:
    assert says in problem(txt2img_graph, text)


def test_fallback_to_itself_is_refused(txt2img_graph: Graph) -> None:
    assert "fallback must be the name of another workflow" in problem(txt2img_graph, manifest('fallback = "t2i"\n'))


def test_non_boolean_default_flag_is_refused(txt2img_graph: Graph) -> None:
    assert "default must be true or false" in problem(txt2img_graph, manifest('default = "yes"\n'))
