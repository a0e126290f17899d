"""ComfyUI's ``GET /object_info`` turned into typed node specs, once, at the edge of this package.

How it works: ``parse_object_info`` reads the plain dict a server returns (``{class: {"input": {"required",
"optional"}, "output": [...], "output_node": bool, ...}}``) into ``NodeSpec``s. An input spec is
``[TYPE, {options}]`` where TYPE is ``"INT"``, ``"FLOAT"``, ``"STRING"``, ``"BOOLEAN"``, a link type
(``"MODEL"``), a list of choices (the old COMBO form), ``"COMBO"`` with ``{"options": [...]}`` (the newer form),
or ``"COMFY_DYNAMICCOMBO_V3"`` whose options each carry nested inputs; ``expand_inputs`` flattens those the way
ComfyUI does (``format`` = ``"mp4"`` brings in ``format.codec``).

Never: raise on a strange entry; a node or input we cannot read is skipped (validation then says so if it matters).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"


@dataclass(frozen=True)
class InputSpec:
    name: str
    #: ``INT``, ``FLOAT``, ``STRING``, ``BOOLEAN``, ``COMBO``, ``COMFY_DYNAMICCOMBO_V3``, or a link type.
    type: str
    required: bool
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    default: Any = None
    #: Dynamic combos: option key → the inputs that option adds (named relative to this input).
    options: Mapping[str, tuple[InputSpec, ...]] = field(default_factory=dict)
    #: The input names a file on the server (``image_upload``, ``audio_upload``, ``video_upload``, ``file_upload``,
    #: ``image_folder`` or ``remote`` in its options: LoadImage, LoadAudio, LoadVideo, Load3D, LoadImageOutput …).
    names_a_file: bool = False

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES or self.type == DYNAMIC_COMBO

    @property
    def is_dynamic(self) -> bool:
        """A V3 dynamic input (``COMFY_..._V3``): only dynamic combos are understood, others are not checked."""
        return self.type.startswith("COMFY_") and self.type.endswith("_V3")


@dataclass(frozen=True)
class NodeSpec:
    class_type: str
    display_name: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    output_node: bool = False


def parse_object_info(raw: Mapping[str, Any]) -> dict[str, NodeSpec]:
    specs: dict[str, NodeSpec] = {}
    if not isinstance(raw, Mapping):
        return specs
    for class_type, entry in raw.items():
        if not isinstance(entry, Mapping):
            continue
        outputs = entry.get("output")
        display = entry.get("display_name")
        specs[str(class_type)] = NodeSpec(
            class_type=str(class_type),
            display_name=display if isinstance(display, str) and display else str(class_type),
            inputs=parse_inputs(entry.get("input")),
            outputs=tuple(_output_type(o) for o in outputs) if isinstance(outputs, list) else (),
            output_node=entry.get("output_node") is True,
        )
    return specs


def parse_inputs(raw: object) -> tuple[InputSpec, ...]:
    """``{"required": {...}, "optional": {...}}`` → input specs (``hidden`` inputs are the server's business)."""
    if not isinstance(raw, Mapping):
        return ()
    found: list[InputSpec] = []
    for group, required in (("required", True), ("optional", False)):
        specs = raw.get(group)
        if not isinstance(specs, Mapping):
            continue
        for name, spec in specs.items():
            parsed = parse_input(str(name), spec, required)
            if parsed is not None:
                found.append(parsed)
    return tuple(found)


def parse_input(name: str, spec: object, required: bool) -> InputSpec | None:
    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, list | tuple) or not spec:
        return None
    head = spec[0]
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    default = extra.get("default")
    names_a_file = any(str(key).endswith("_upload") or key in ("image_folder", "remote") for key in extra)
    if isinstance(head, list | tuple):  # the old COMBO form: [["a", "b"], {...}]
        return InputSpec(name, "COMBO", required, choices=tuple(head), default=default, names_a_file=names_a_file)
    if not isinstance(head, str):
        return None
    if head == "COMBO":  # the newer form: ["COMBO", {"options": [...]}]
        options = extra.get("options")
        choices = tuple(options) if isinstance(options, list | tuple) else ()
        return InputSpec(name, "COMBO", required, choices=choices, default=default, names_a_file=names_a_file)
    if head == DYNAMIC_COMBO:
        nested: dict[str, tuple[InputSpec, ...]] = {}
        for option in extra.get("options") or ():
            if isinstance(option, Mapping) and isinstance(option.get("key"), str):
                nested[option["key"]] = parse_inputs(option.get("inputs"))
        return InputSpec(name, head, required, choices=tuple(nested), default=default, options=nested)
    return InputSpec(
        name,
        head,
        required,
        minimum=_number(extra.get("min")),
        maximum=_number(extra.get("max")),
        default=default,
        names_a_file=names_a_file,
    )


def expand_inputs(node: NodeSpec, live: Mapping[str, Any]) -> list[tuple[str, InputSpec]]:
    """The node's inputs by full name, with the inputs brought in by the chosen dynamic-combo options."""
    expanded: list[tuple[str, InputSpec]] = []

    def walk(specs: tuple[InputSpec, ...], prefix: str) -> None:
        for spec in specs:
            full = f"{prefix}{spec.name}"
            expanded.append((full, spec))
            chosen = live.get(full)
            if spec.type == DYNAMIC_COMBO and isinstance(chosen, str) and chosen in spec.options:
                walk(spec.options[chosen], f"{full}.")

    walk(node.inputs, "")
    return expanded


def find_input(node: NodeSpec, live: Mapping[str, Any], name: str) -> InputSpec | None:
    return next((spec for full, spec in expand_inputs(node, live) if full == name), None)


def _output_type(value: object) -> str:
    # A COMBO output is listed as its list of choices.
    return "COMBO" if isinstance(value, list) else str(value)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value
