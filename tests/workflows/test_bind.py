"""Binding: defaults, bounds, choices, coercion, the seed we choose, models filled, the shared graph untouched."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest

from discomfy.errors import BadInputError
from discomfy.workflows import SEED_RANGE, Registry, Workflow, bind, load_workflows

from .conftest import SHIPPED


@pytest.fixture
def registry(models: dict[str, str]) -> Registry:
    return load_workflows(SHIPPED, models)


@pytest.fixture
def txt2img(registry: Registry) -> Workflow:
    return registry.get("txt2img")


def refusal(workflow: Workflow, params: dict[str, object], models: dict[str, str]) -> str:
    with pytest.raises(BadInputError) as caught:
        bind(workflow, params, models)
    return caught.value.user_message


def test_values_are_written_to_their_targets(txt2img: Workflow, models: dict[str, str]) -> None:
    bound = bind(txt2img, {"prompt": "a red fox", "steps": 12, "seed": 7}, models)
    assert (bound.graph["2"]["inputs"]["text"], bound.graph["5"]["inputs"]["steps"]) == ("a red fox", 12)
    assert bound.graph["5"]["inputs"]["seed"] == 7


def test_defaults_are_applied_and_recorded(txt2img: Workflow, models: dict[str, str]) -> None:
    bound = bind(txt2img, {"prompt": "x"}, models)
    assert bound.values["steps"] == 20 and bound.graph["4"]["inputs"]["width"] == 512
    assert bound.values["negative"] == "blurry, low quality, watermark, text"


def test_the_shared_graph_is_never_changed(txt2img: Workflow, models: dict[str, str]) -> None:
    before = copy.deepcopy(txt2img.graph)
    bound = bind(txt2img, {"prompt": "changed", "steps": 3, "width": 256}, models)
    bound.graph["5"]["inputs"]["cfg"] = 99.0
    assert txt2img.graph == before


def test_two_bindings_share_no_nested_dict(txt2img: Workflow, models: dict[str, str]) -> None:
    first, second = bind(txt2img, {"prompt": "a"}, models), bind(txt2img, {"prompt": "b"}, models)
    first.graph["2"]["inputs"]["text"] = "mutated"
    assert second.graph["2"]["inputs"]["text"] == "b"


def test_model_placeholders_are_filled_from_the_settings(txt2img: Workflow, models: dict[str, str]) -> None:
    bound = bind(txt2img, {"prompt": "x"}, models | {"checkpoint": "dreamy.safetensors"})
    assert bound.graph["1"]["inputs"]["ckpt_name"] == "dreamy.safetensors"


def test_models_needed_are_returned_for_routing(txt2img: Workflow, models: dict[str, str]) -> None:
    assert bind(txt2img, {"prompt": "x"}, models).models == {"v1-5-pruned-emaonly.safetensors"}


def test_a_model_free_workflow_needs_no_models(registry: Registry, models: dict[str, str]) -> None:
    assert bind(registry.get("upscale_simple"), {"image": "in.png"}, models).models == frozenset()


def test_output_node_ids_are_returned(txt2img: Workflow, models: dict[str, str]) -> None:
    assert bind(txt2img, {"prompt": "x"}, models).outputs == ("7",)


def test_an_empty_seed_is_chosen_and_recorded(txt2img: Workflow, models: dict[str, str]) -> None:
    bound = bind(txt2img, {"prompt": "x"}, models, rng=random.Random(1))
    seed = bound.graph["5"]["inputs"]["seed"]
    assert 0 <= seed < SEED_RANGE and bound.values["seed"] == seed and bound.chosen == {"seed": seed}


def test_a_seed_given_as_none_is_also_chosen(txt2img: Workflow, models: dict[str, str]) -> None:
    assert "seed" in bind(txt2img, {"prompt": "x", "seed": None}, models).chosen


def test_chosen_seeds_vary(txt2img: Workflow, models: dict[str, str]) -> None:
    seeds = {bind(txt2img, {"prompt": "x"}, models).values["seed"] for _ in range(5)}
    assert len(seeds) > 1


def test_a_recorded_seed_reproduces_the_same_graph(txt2img: Workflow, models: dict[str, str]) -> None:
    first = bind(txt2img, {"prompt": "x"}, models)
    again = bind(txt2img, dict(first.values), models)
    assert again.graph == first.graph and again.chosen == {}


def test_a_given_seed_is_not_marked_chosen(txt2img: Workflow, models: dict[str, str]) -> None:
    assert bind(txt2img, {"prompt": "x", "seed": 42}, models).chosen == {}


def test_a_seed_up_to_comfyuis_limit_is_accepted(txt2img: Workflow, models: dict[str, str]) -> None:
    assert bind(txt2img, {"prompt": "x", "seed": 2**64 - 1}, models).values["seed"] == 2**64 - 1


def test_a_seed_above_comfyuis_limit_is_refused(txt2img: Workflow, models: dict[str, str]) -> None:
    assert "seed must be between 0 and 18446744073709551615" in refusal(txt2img, {"prompt": "x", "seed": 2**64}, models)


def test_out_of_range_number_names_the_range(txt2img: Workflow, models: dict[str, str]) -> None:
    assert refusal(txt2img, {"prompt": "x", "steps": 500}, models) == "steps must be between 1 and 60 (you gave 500)."


def test_below_range_float_names_the_range(txt2img: Workflow, models: dict[str, str]) -> None:
    assert refusal(txt2img, {"prompt": "x", "cfg": 0.5}, models) == "cfg must be between 1 and 20 (you gave 0.5)."


def test_size_off_its_step_is_refused(txt2img: Workflow, models: dict[str, str]) -> None:
    assert refusal(txt2img, {"prompt": "x", "width": 500}, models) == "width must be a multiple of 64 (you gave 500)."


def test_numbers_given_as_text_are_coerced(txt2img: Workflow, models: dict[str, str]) -> None:
    bound = bind(txt2img, {"prompt": "x", "steps": " 25 ", "cfg": "6,5", "seed": "12"}, models)
    assert (bound.values["steps"], bound.values["cfg"], bound.values["seed"]) == (25, 6.5, 12)


def test_an_integer_for_a_float_becomes_a_float(txt2img: Workflow, models: dict[str, str]) -> None:
    cfg = bind(txt2img, {"prompt": "x", "cfg": 8}, models).graph["5"]["inputs"]["cfg"]
    assert cfg == 8.0 and isinstance(cfg, float)


def test_a_whole_float_for_an_int_becomes_an_int(txt2img: Workflow, models: dict[str, str]) -> None:
    steps = bind(txt2img, {"prompt": "x", "steps": 30.0}, models).graph["5"]["inputs"]["steps"]
    assert steps == 30 and isinstance(steps, int)


def test_a_fraction_for_an_int_is_refused(txt2img: Workflow, models: dict[str, str]) -> None:
    assert refusal(txt2img, {"prompt": "x", "steps": 2.5}, models) == (
        "steps must be a whole number between 1 and 60 (you gave 2.5)."
    )


def test_text_for_a_number_is_refused(txt2img: Workflow, models: dict[str, str]) -> None:
    assert (
        refusal(txt2img, {"prompt": "x", "cfg": "lots"}, models)
        == "cfg must be a number between 1 and 20 (you gave lots)."
    )


def test_a_boolean_for_a_number_is_refused(txt2img: Workflow, models: dict[str, str]) -> None:
    assert "steps must be a whole number" in refusal(txt2img, {"prompt": "x", "steps": True}, models)


def test_choices_match_regardless_of_case(txt2img: Workflow, models: dict[str, str]) -> None:
    assert bind(txt2img, {"prompt": "x", "sampler": "DPMPP_2M"}, models).graph["5"]["inputs"]["sampler_name"] == (
        "dpmpp_2m"
    )


def test_an_unknown_choice_lists_the_choices(txt2img: Workflow, models: dict[str, str]) -> None:
    message = refusal(txt2img, {"prompt": "x", "scheduler": "fast"}, models)
    assert (
        message == "scheduler must be one of: normal, karras, exponential, sgm_uniform, simple, beta (you gave fast)."
    )


def test_a_missing_required_parameter_is_named(txt2img: Workflow, models: dict[str, str]) -> None:
    assert refusal(txt2img, {}, models) == "prompt is required by the txt2img workflow."


def test_an_empty_required_text_is_refused(txt2img: Workflow, models: dict[str, str]) -> None:
    assert refusal(txt2img, {"prompt": "   "}, models) == "prompt cannot be empty."


def test_an_empty_optional_text_is_kept(txt2img: Workflow, models: dict[str, str]) -> None:
    assert bind(txt2img, {"prompt": "x", "negative": ""}, models).graph["3"]["inputs"]["text"] == ""


def test_too_long_text_says_the_limit(txt2img: Workflow, models: dict[str, str]) -> None:
    message = refusal(txt2img, {"prompt": "x" * 1501}, models)
    assert message == "prompt is too long: 1501 characters, at most 1500 are allowed."


def test_an_unknown_parameter_lists_the_known_ones(txt2img: Workflow, models: dict[str, str]) -> None:
    message = refusal(txt2img, {"prompt": "x", "stepz": 3}, models)
    assert message.startswith("'stepz' is not an option of the txt2img workflow (it takes: prompt, negative, seed")


def test_a_multiplier_scales_the_value(registry: Registry, models: dict[str, str]) -> None:
    bound = bind(registry.get("upscale"), {"image": "in.png", "scale": 3}, models)
    assert bound.graph["4"]["inputs"]["scale_by"] == 0.75 and bound.values["scale"] == 3.0


def test_one_parameter_fills_every_target(registry: Registry, models: dict[str, str]) -> None:
    bound = bind(registry.get("img2vid"), {"image": "in.png", "fps": 8, "width": 768}, models)
    inputs = {node: bound.graph[node]["inputs"] for node in ("3", "4", "8")}
    assert (inputs["4"]["fps"], inputs["8"]["fps"]) == (8, 8.0) and isinstance(inputs["8"]["fps"], float)
    assert inputs["3"]["width"] == inputs["4"]["width"] == 768


def test_an_image_parameter_takes_the_uploaded_name(registry: Registry, models: dict[str, str]) -> None:
    bound = bind(registry.get("upscale"), {"image": "discomfy/ab12.png"}, models)
    assert bound.graph["1"]["inputs"]["image"] == "discomfy/ab12.png"


def test_an_image_name_leaving_the_input_folder_is_refused(registry: Registry, models: dict[str, str]) -> None:
    assert "image must be an uploaded image" in refusal(registry.get("upscale"), {"image": "../secret.png"}, models)


def test_a_missing_image_is_refused(registry: Registry, models: dict[str, str]) -> None:
    assert refusal(registry.get("img2vid"), {}, models) == "image is required by the img2vid workflow."


def test_a_bool_parameter_accepts_yes_and_no(tmp_path: Path, models: dict[str, str]) -> None:
    (tmp_path / "w.json").write_text((SHIPPED / "txt2img.json").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "w.toml").write_text(
        'kind = "image"\n[params.flag]\ntype = "bool"\ntarget = "7.filename_prefix"\n', encoding="utf-8"
    )
    workflow = load_workflows(tmp_path, models).get("w")
    assert bind(workflow, {"flag": "Yes"}, models).values["flag"] is True
    assert "flag must be yes or no (you gave maybe)" in refusal(workflow, {"flag": "maybe"}, models)


def test_an_optional_parameter_left_out_keeps_the_files_value(tmp_path: Path, models: dict[str, str]) -> None:
    (tmp_path / "w.json").write_text((SHIPPED / "txt2img.json").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "w.toml").write_text('kind = "image"\n[params.steps]\ntype = "int"\ntarget = "5.steps"\n', "utf-8")
    bound = bind(load_workflows(tmp_path, models).get("w"), {}, models)
    assert bound.values["steps"] == 20 and bound.graph["5"]["inputs"]["steps"] == 20


def test_a_blank_seed_is_chosen_like_a_missing_one(txt2img: Workflow, models: dict[str, str]) -> None:
    assert "seed" in bind(txt2img, {"prompt": "x", "seed": "  "}, models).chosen


def test_a_blank_number_takes_the_default(txt2img: Workflow, models: dict[str, str]) -> None:
    assert bind(txt2img, {"prompt": "x", "steps": ""}, models).values["steps"] == 20
