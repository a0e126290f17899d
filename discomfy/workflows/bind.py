"""Binding: the bot's parameters written into a fresh copy of a workflow's graph, checked and coerced first.

How it works: ``bind`` checks the names it is given, then for each parameter takes the given value (or the
default, or, for ``seed``, a random one it records), coerces it to the parameter's type and checks its bounds
(``coerce``; each refusal is a ``BadInputError`` naming the parameter and what it accepts), fills the
``{models.ROLE}`` placeholders into a deep copy of the graph and writes every value to every target. Optional
stages (``model.Stage``) run when ``params`` says ``NAME = true`` (the job service decides from the servers'
models); the choice is recorded with the values, so binding them again gives the same graph.

Never: mutate ``Workflow.graph`` (it is shared by every job), or let a value through unchecked.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from discomfy.errors import BadInputError
from discomfy.workflows.graph import cut_stage, fill_model_refs, fill_models, inputs_of, model_files
from discomfy.workflows.model import BoundGraph, Graph, Param, ParamType, Workflow

#: Seeds we choose ourselves: ComfyUI's frontend and most custom nodes accept this range.
SEED_RANGE = 2**32
#: The widest seed a user may give: KSampler's own limit (``0xffffffffffffffff``).
SEED_MAX = 2**64 - 1

#: ComfyUI resolves a file name ending in `` [output]``, `` [temp]`` or `` [input]`` in that folder
#: (folder_paths.annotated_filepath): text a user types never ends so (a graph writing text to a file input would
#: otherwise read any result on the server).
FOLDER_ANNOTATION = re.compile(r"\[\s*(?:output|temp|input)\s*\]\s*$", re.IGNORECASE)
_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}


def bind(
    workflow: Workflow,
    params: Mapping[str, Any],
    models: Mapping[str, str],
    *,
    rng: random.Random | None = None,
) -> BoundGraph:
    """A new graph with ``params`` applied; raises ``BadInputError`` for a value the workflow refuses."""
    unknown = sorted(set(params) - set(workflow.params) - set(workflow.stages))
    if unknown:
        takes = ", ".join(workflow.params) or "no options"
        raise BadInputError(f"'{unknown[0]}' is not an option of the {workflow.name} workflow (it takes: {takes}).")
    values: dict[str, Any] = {}
    chosen: dict[str, Any] = {}
    for name, declared in workflow.params.items():
        param = resolve_param(declared, models, workflow.name)
        given = params.get(name)
        if isinstance(given, str) and not given.strip() and param.type is not ParamType.STR:
            given = None  # a blank modal field or option means "not given", except for text
        if given is not None:
            values[name] = coerce(param, given)
        elif param.is_seed:
            values[name] = chosen[name] = (rng or random.SystemRandom()).randrange(SEED_RANGE)
        elif param.default is not None:
            values[name] = coerce(param, param.default)
        elif param.required:
            raise BadInputError(f"{name} is required by the {workflow.name} workflow.")
    graph = fill_models(workflow.graph, models, workflow.name)
    for name, value in values.items():
        for target in workflow.params[name].targets:
            graph[target.node]["inputs"][target.input] = value if target.multiply is None else value * target.multiply
    for name, param in workflow.params.items():
        if name not in values and param.targets:  # left as the file has it: record it all the same
            values[name] = inputs_of(graph, param.targets[0].node).get(param.targets[0].input)
    for name in workflow.stages:
        values[name] = coerce(Param(name, ParamType.BOOL, ()), params.get(name, False))
    graph = with_stages(workflow, graph, {name for name in workflow.stages if values[name]})
    return BoundGraph(
        workflow=workflow.name,
        graph=graph,
        values=values,
        models=model_files(graph),
        outputs=workflow.outputs,
        chosen=chosen,
        frame_nodes={node: rule for node, rule in workflow.frame_progress.items() if node in graph},
    )


def with_stages(workflow: Workflow, graph: Graph, on: set[str] | frozenset[str]) -> Graph:
    """``graph`` with the optional stages named in ``on`` kept (the fps they scale multiplied) and the others cut
    out (``graph.cut_stage``)."""
    for stage in workflow.stages.values():
        if stage.name not in on:
            graph = cut_stage(graph, stage)
        elif stage.fps is not None and stage.multiplier is not None:
            times = inputs_of(graph, stage.multiplier.node)[stage.multiplier.input]
            graph[stage.fps.node]["inputs"][stage.fps.input] = inputs_of(graph, stage.fps.node)[stage.fps.input] * times
    return graph


def resolve_param(param: Param, models: Mapping[str, str], workflow: str) -> Param:
    """The parameter with ``{models.ROLE}`` filled in its default and choices."""
    default = param.default
    if isinstance(default, str):
        default = fill_model_refs(default, models, workflow)
    choices = tuple(fill_model_refs(c, models, workflow) for c in param.choices)
    if default == param.default and choices == param.choices:
        return param
    return replace(param, default=default, choices=choices)


def coerce(param: Param, value: Any) -> Any:
    """``value`` as the parameter's type, within its bounds, or a ``BadInputError`` saying what is accepted."""
    match param.type:
        case ParamType.INT:
            return _check_number(param, _to_int(param, value))
        case ParamType.FLOAT:
            return _check_number(param, _to_float(param, value))
        case ParamType.BOOL:
            return _to_bool(param, value)
        case ParamType.CHOICE:
            return _to_choice(param, value)
        case ParamType.IMAGE:
            return _to_image(param, value)
        case _:
            return _to_str(param, value)


def fmt(number: float) -> str:
    """``150``, ``7.5``: numbers as a person writes them."""
    if isinstance(number, int) or float(number).is_integer():
        return str(int(number))
    return f"{number:.6g}"


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _bounds(param: Param) -> str:
    """`` between 1 and 4`` (or `` of at least 1``…): so a refusal of a non-number still says what would do."""
    low, high = param.minimum, param.maximum
    if low is not None and high is not None:
        return f" between {fmt(low)} and {fmt(high)}"
    if low is not None:
        return f" of at least {fmt(low)}"
    return f" of at most {fmt(high)}" if high is not None else ""


def _to_int(param: Param, value: Any) -> int:
    if isinstance(value, bool):
        raise BadInputError(f"{param.name} must be a whole number{_bounds(param)} (you gave {value}).")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise BadInputError(f"{param.name} must be a whole number{_bounds(param)} (you gave {_shown(value)}).")


def _to_float(param: Param, value: Any) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", "."))
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise BadInputError(f"{param.name} must be a number{_bounds(param)} (you gave {_shown(value)}).")
    return number


def _check_number[N: (int, float)](param: Param, number: N) -> N:
    low, high = param.minimum, param.maximum
    if param.is_seed and high is None:
        high = SEED_MAX
    if (low is not None and number < low) or (high is not None and number > high):
        if low is not None and high is not None:
            raise BadInputError(f"{param.name} must be between {fmt(low)} and {fmt(high)} (you gave {fmt(number)}).")
        if low is not None:
            raise BadInputError(f"{param.name} must be at least {fmt(low)} (you gave {fmt(number)}).")
        raise BadInputError(f"{param.name} must be at most {fmt(high or 0)} (you gave {fmt(number)}).")
    if param.step and isinstance(number, int) and (number - int(low or 0)) % param.step:
        base = int(low or 0)
        if base % param.step == 0:
            raise BadInputError(f"{param.name} must be a multiple of {param.step} (you gave {number}).")
        below = number - (number - base) % param.step  # frame counts like 4n+1: say so, and the nearest ones
        near = " or ".join(str(n) for n in (below, below + param.step) if high is None or n <= high)
        raise BadInputError(
            f"{param.name} must be {base} plus a multiple of {param.step}, like {near} (you gave {number})."
        )
    return number


def _to_bool(param: Param, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise BadInputError(f"{param.name} must be yes or no (you gave {_shown(value)}).")


def _to_choice(param: Param, value: Any) -> str:
    text = str(value).strip()
    if text in param.choices:
        return text
    folded = {c.casefold(): c for c in param.choices}
    if text.casefold() in folded:
        return folded[text.casefold()]
    listed = ", ".join(param.choices[:20]) + (", …" if len(param.choices) > 20 else "")
    raise BadInputError(f"{param.name} must be one of: {listed} (you gave {_shown(value)}).")


def _to_str(param: Param, value: Any) -> str:
    if not isinstance(value, str):
        raise BadInputError(f"{param.name} must be text (you gave {_shown(value)}).")
    if param.required and not value.strip():
        raise BadInputError(f"{param.name} cannot be empty.")
    if param.max_length is not None and len(value) > param.max_length:
        raise BadInputError(
            f"{param.name} is too long: {len(value)} characters, at most {param.max_length} are allowed."
        )
    if FOLDER_ANNOTATION.search(value):
        raise BadInputError(
            f"{param.name} ends in a folder mark like [output], which ComfyUI reads as a file on its server; "
            "leave it out."
        )
    return value


def _to_image(param: Param, value: Any) -> str:
    # The name of a file uploaded to the server's input folder (``/upload/image`` answers it).
    if not isinstance(value, str) or not value.strip() or ".." in value.replace("\\", "/").split("/"):
        raise BadInputError(f"{param.name} must be an uploaded image (you gave {_shown(value)}).")
    return value
