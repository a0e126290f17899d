from typing import Any

from discomfy.comfy.rejection import describe_rejection, parse_node_errors
from tests.comfy.recordings import records


def recorded_rejections() -> list[dict[str, Any]]:
    return [
        r["response"]
        for r in records("validation_error")
        if r.get("kind") == "http" and r.get("path") == "/prompt" and r.get("status") == 400
    ]


def test_recorded_node_errors_become_one_sentence_each() -> None:
    text = describe_rejection(recorded_rejections()[0])
    assert "EmptyImage › width: -5 is below the minimum 1" in text
    assert "ImageInvert › image: this input is missing" in text
    assert "ImageScale › upscale_method: 'nope' is not one of: nearest-exact, bilinear" in text


def test_a_bound_option_is_named_as_the_user_knows_it() -> None:
    body = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"},
        "node_errors": {
            "3": {
                "class_type": "KSampler",
                "errors": [
                    {
                        "type": "value_bigger_than_max",
                        "message": "Value 500 bigger than max of 150",
                        "details": "steps",
                        "extra_info": {
                            "input_name": "steps",
                            "input_config": ["INT", {"default": 20, "min": 1, "max": 150}],
                            "received_value": 500,
                        },
                    }
                ],
            }
        },
    }
    assert describe_rejection(body, option_names={("3", "steps"): "steps"}) == "steps: 500 is above the maximum 150"


def test_missing_node_type_names_the_class() -> None:
    assert "'NoSuchNode'" in describe_rejection(recorded_rejections()[1])


def test_no_outputs_says_what_to_add() -> None:
    assert "no output node" in describe_rejection(recorded_rejections()[2])


def test_other_errors_fall_back_to_comfyuis_words() -> None:
    assert describe_rejection(recorded_rejections()[3]).startswith("prompt_id must be a valid UUID")


def test_garbage_bodies_never_raise() -> None:
    for body in (None, [], "x", {"node_errors": []}, {"node_errors": {"1": {"errors": [None, 3]}}}, {"error": 5}):
        assert isinstance(describe_rejection(body), str)
    assert parse_node_errors({"node_errors": {"1": {"errors": [{"extra_info": None}]}}})[0].input_name == "?"
