"""Prompt validation, ported from ComfyUI's ``execution.validate_prompt`` / ``validate_inputs``.

Same error types, messages, details and ``extra_info`` as the server: ``missing_node_type``, ``prompt_no_outputs``,
``prompt_outputs_failed_validation`` (with ``node_errors`` per node: ``errors``, ``dependent_outputs``,
``class_type``), ``required_input_missing``, ``bad_linked_input``, ``return_type_mismatch``,
``invalid_input_type``, ``value_smaller_than_min``, ``value_bigger_than_max``, ``value_not_in_list`` and
``exception_during_validation`` (a link to a node that does not exist). A prompt with at least one valid output is
accepted and the errors of the others come back in the 200 answer's ``node_errors``, as the server does.

One deliberate choice: ComfyUI keeps the output ids in a ``set``, so their order (the execution roots, and the
``outputs_to_execute`` list in ``/queue`` and ``/history``) depends on the process's string hash seed. The
recordings (``["7", "6"]``, ``["8", "7", "5"]``) are all consistent with reverse prompt order, which is used here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .object_info import LINK_TYPES, NODE_SPECS, input_spec, is_output_node

Error = dict[str, Any]


@dataclass
class Validation:
    ok: bool
    error: Error | None
    outputs: list[str]
    node_errors: dict[str, Any] = field(default_factory=dict)


def _convert(io_type: str, val: Any) -> Any:
    if io_type == "INT":
        if isinstance(val, bool):
            return int(val)
        return int(val)
    if io_type == "FLOAT":
        return float(val)
    if io_type == "STRING":
        return str(val)
    if io_type == "BOOLEAN":
        return bool(val)
    return val


class _Validator:
    def __init__(
        self, prompt: dict[str, Any], lists: Callable[[str], list[str]], input_exists: Callable[[str], bool]
    ) -> None:
        self.prompt = prompt
        self.lists = lists
        self.input_exists = input_exists
        self.validated: dict[str, tuple[bool, list[Error], str]] = {}

    def validate(self, unique_id: str) -> tuple[bool, list[Error], str]:
        if unique_id in self.validated:
            return self.validated[unique_id]
        node = self.prompt[unique_id]
        inputs = node.get("inputs", {})
        class_type = node["class_type"]
        spec = input_spec(class_type, self.lists)
        errors: list[Error] = []
        valid = True
        for category in ("required", "optional"):
            for name, (kind, opts) in spec[category].items():
                if name not in inputs:
                    if category == "required":
                        errors.append(_err("required_input_missing", "Required input is missing", name, name))
                    continue
                val = inputs[name]
                info = [kind, opts]
                if isinstance(val, list):
                    if len(val) != 2:
                        errors.append(
                            _err(
                                "bad_linked_input",
                                "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                                name,
                                name,
                                input_config=info,
                                received_value=val,
                            )
                        )
                        continue
                    o_id, slot = val
                    # A missing upstream node raises KeyError in ComfyUI too (exception_during_validation).
                    o_class = self.prompt[o_id]["class_type"]
                    outputs = NODE_SPECS[o_class]["output"]
                    received = outputs[slot]
                    if received != kind and kind != "*":
                        errors.append(
                            _err(
                                "return_type_mismatch",
                                "Return type mismatch between linked nodes",
                                f"{name}, received_type({received}) mismatch input_type({kind})",
                                name,
                                input_config=info,
                                received_type=received,
                                linked_node=val,
                            )
                        )
                        continue
                    if not self.validate(o_id)[0]:
                        valid = False
                    continue
                if isinstance(kind, str) and kind in LINK_TYPES:
                    continue
                if class_type == "LoadImage" and name == "image":
                    # LoadImage.VALIDATE_INPUTS replaces the combo check: the file must exist (subfolders too).
                    if not self.input_exists(str(val)):
                        errors.append(
                            {
                                "type": "custom_validation_failed",
                                "message": "Custom validation failed for node",
                                "details": f"image - Invalid image file: {val}",
                                "extra_info": {"input_name": "image"},
                            }
                        )
                    continue
                if isinstance(kind, str):
                    try:
                        val = _convert(kind, val)
                    except (TypeError, ValueError) as ex:
                        errors.append(
                            _err(
                                "invalid_input_type",
                                f"Failed to convert an input value to a {kind} value",
                                f"{name}, {val}, {ex}",
                                name,
                                input_config=info,
                                received_value=val,
                            )
                        )
                        continue
                    if "min" in opts and val < opts["min"]:
                        errors.append(
                            _err(
                                "value_smaller_than_min",
                                "Value {} smaller than min of {}".format(val, opts["min"]),
                                name,
                                name,
                                input_config=info,
                                received_value=val,
                            )
                        )
                        continue
                    if "max" in opts and val > opts["max"]:
                        errors.append(
                            _err(
                                "value_bigger_than_max",
                                "Value {} bigger than max of {}".format(val, opts["max"]),
                                name,
                                name,
                                input_config=info,
                                received_value=val,
                            )
                        )
                        continue
                else:
                    if val not in kind:
                        # ComfyUI omits long lists (scanned model paths) from the answer.
                        if len(kind) > 20:
                            list_info, config = f"(list of length {len(kind)})", None
                        else:
                            list_info, config = str(kind), info
                        errors.append(
                            _err(
                                "value_not_in_list",
                                "Value not in list",
                                f"{name}: {val!r} not in {list_info}",
                                name,
                                input_config=config,
                                received_value=val,
                            )
                        )
        ret = (valid and not errors, errors, unique_id)
        self.validated[unique_id] = ret
        return ret


def _err(kind: str, message: str, details: str, input_name: str, **extra: Any) -> Error:
    return {"type": kind, "message": message, "details": details, "extra_info": {"input_name": input_name, **extra}}


def validate_prompt(
    prompt: dict[str, Any], lists: Callable[[str], list[str]], input_exists: Callable[[str], bool]
) -> Validation:
    outputs: list[str] = []
    for x in prompt:
        node = prompt[x]
        if not isinstance(node, dict) or "class_type" not in node:
            title = node.get("_meta", {}).get("title") if isinstance(node, dict) else None
            return Validation(
                False,
                {
                    "type": "missing_node_type",
                    "message": f"Node '{title or f'ID #{x}'}' has no class_type. The workflow may be corrupted or "
                    "a custom node is missing.",
                    "details": f"Node ID '#{x}'",
                    "extra_info": {"node_id": x, "class_type": None, "node_title": title},
                },
                [],
            )
        class_type = node["class_type"]
        if class_type not in NODE_SPECS:
            title = node.get("_meta", {}).get("title", class_type)
            return Validation(
                False,
                {
                    "type": "missing_node_type",
                    "message": f"Node '{title}' not found. The custom node may not be installed.",
                    "details": f"Node ID '#{x}'",
                    "extra_info": {"node_id": x, "class_type": class_type, "node_title": title},
                },
                [],
            )
        if is_output_node(class_type):
            outputs.append(x)
    outputs.reverse()
    if not outputs:
        return Validation(
            False,
            {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "", "extra_info": {}},
            [],
        )
    validator = _Validator(prompt, lists, input_exists)
    good: list[str] = []
    failed: list[tuple[str, list[Error]]] = []
    node_errors: dict[str, Any] = {}
    for o in outputs:
        try:
            valid, reasons, _ = validator.validate(o)
        except Exception as ex:
            valid = False
            reasons = [
                {
                    "type": "exception_during_validation",
                    "message": "Exception when validating node",
                    "details": str(ex),
                    "extra_info": {"exception_type": type(ex).__name__, "traceback": []},
                }
            ]
            validator.validated[o] = (False, reasons, o)
        if valid:
            good.append(o)
            continue
        failed.append((o, reasons))
        for node_id, (node_valid, node_reasons, _) in validator.validated.items():
            if not node_valid and node_reasons:
                if node_id not in node_errors:
                    node_errors[node_id] = {
                        "errors": node_reasons,
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    }
                node_errors[node_id]["dependent_outputs"].append(o)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, errs in failed for e in errs)
        error = {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": details,
            "extra_info": {},
        }
        return Validation(False, error, [], node_errors)
    return Validation(True, None, good, node_errors)
