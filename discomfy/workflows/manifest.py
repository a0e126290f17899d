"""Manifests: the small TOML file beside a workflow that says what it makes and where each parameter goes.

How it works: ``parse_manifest`` reads the TOML text (``tomllib``) and checks every key against the graph it
describes: the kind, the parameters (type, targets as ``"node.input"`` or ``{node, input, multiply}``, default,
min/max/step, choices, required), the output nodes, the fallback and the optional stages (``[stages.NAME]``:
nodes cut out when no server has their models, see ``model.Stage``). Every mistake is a ``WorkflowError``
naming the manifest, the parameter and the key, so an operator can fix it without reading this code. The
format is documented in ``workflows/README.md``.

Never: accept a key it does not know (a typo would silently do nothing), or a default its own bounds refuse.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discomfy.errors import BadInputError
from discomfy.workflows.bind import coerce
from discomfy.workflows.graph import MODEL_REF, inputs_of, is_link, link_source, model_roles, save_nodes
from discomfy.workflows.model import Graph, Kind, Param, ParamType, Stage, Target, Workflow, WorkflowError

TOP_KEYS = {
    "kind",
    "description",
    "default",
    "fallback",
    "outputs",
    "params",
    "stages",
    "extend_max_frames",
    "frame_progress",
}
FRAME_PROGRESS_KEYS = {"multiplier"}
STAGE_KEYS = {"nodes", "bypass", "fps", "multiplier", "description"}
PARAM_KEYS = {
    "type",
    "target",
    "targets",
    "default",
    "min",
    "max",
    "step",
    "choices",
    "required",
    "max_length",
    "description",
}
TARGET_KEYS = {"node", "input", "multiply"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_NUMERIC = (ParamType.INT, ParamType.FLOAT)


def parse_manifest(text: str, graph: Graph, name: str, *, source: Path | None = None) -> Workflow:
    """The workflow ``name`` with ``graph``, as its manifest describes it."""
    where = f"manifest of workflow '{name}'"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkflowError(f"the {where} is not valid TOML: {exc}.") from exc
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        known = ", ".join(sorted(TOP_KEYS))
        raise WorkflowError(f"the {where} has an unknown key '{unknown[0]}'; known keys: {known}.")
    kind_text = raw.get("kind")
    try:
        kind = Kind(str(kind_text))
    except ValueError:
        kinds = ", ".join(k.value for k in Kind)
        raise WorkflowError(f"the {where} must say kind = one of {kinds} (it says {kind_text!r}).") from None
    raw_params = raw.get("params", {})
    if not isinstance(raw_params, dict):
        raise WorkflowError(f"the {where}: 'params' must be tables, written as [params.NAME] sections.")
    params = {pname: _param(pname, spec, graph, where) for pname, spec in raw_params.items()}
    outputs = _outputs(raw.get("outputs"), graph, where)
    raw_stages = raw.get("stages", {})
    if not isinstance(raw_stages, dict):
        raise WorkflowError(f"the {where}: 'stages' must be tables, written as [stages.NAME] sections.")
    stages = {sname: _stage(sname, spec, graph, where, params, outputs) for sname, spec in raw_stages.items()}
    fallback = raw.get("fallback")
    if fallback is not None and (not isinstance(fallback, str) or not fallback or fallback == name):
        raise WorkflowError(f"the {where}: fallback must be the name of another workflow, not {fallback!r}.")
    extend_max_frames = _positive_int(raw.get("extend_max_frames"), f"the {where}: extend_max_frames")
    if extend_max_frames is not None and (kind is not Kind.VIDEO or not any(_is_image(p) for p in params.values())):
        raise WorkflowError(
            f"the {where}: extend_max_frames is for video workflows that take a picture (their first frame)."
        )
    frame_progress = _frame_progress(raw.get("frame_progress", {}), graph, where)
    roles = model_roles(graph) | {
        role
        for p in params.values()
        for text_value in (p.default, *p.choices)
        if isinstance(text_value, str)
        for role in MODEL_REF.findall(text_value)
    }
    return Workflow(
        name=name,
        kind=kind,
        graph=graph,
        params=params,
        outputs=outputs,
        description=_string(raw.get("description", ""), f"the {where}: description"),
        fallback=fallback,
        default=_flag(raw.get("default", False), f"the {where}: default"),
        source=source,
        model_roles=roles,
        stages=stages,
        extend_max_frames=extend_max_frames,
        frame_progress=frame_progress,
    )


def _frame_progress(raw: object, graph: Graph, where: str) -> dict[str, str | None]:
    """``[frame_progress.NODE]``: that node's progress counts frames (a custom node looping over frames), one
    tick per frame, or — with ``multiplier = "INPUT"`` — ticks that are its new frames only, ``INPUT`` holding
    how many frames each pair becomes (as ComfyUI's FrameInterpolate counts)."""
    if not isinstance(raw, dict):
        raise WorkflowError(f"the {where}: 'frame_progress' must be tables, written as [frame_progress.NODE].")
    found: dict[str, str | None] = {}
    for node, spec in raw.items():
        at = f"the {where}, frame_progress.{node}"
        if node not in graph:
            raise WorkflowError(f"{at}: the graph has no node '{node}'.")
        multiplier = _section(spec, at, f"frame_progress.{node}", FRAME_PROGRESS_KEYS).get("multiplier")
        if multiplier is not None and (not isinstance(multiplier, str) or multiplier not in inputs_of(graph, node)):
            raise WorkflowError(f"{at}: multiplier must name one of the node's inputs, not {multiplier!r}.")
        found[node] = multiplier
    return found


def _section(spec: object, at: str, header: str, known: set[str]) -> dict[str, Any]:
    """A ``[header]`` table of the manifest, with only ``known`` keys (a typo must not silently do nothing)."""
    if not isinstance(spec, dict):
        raise WorkflowError(f"{at} must be a table, written as a [{header}] section.")
    unknown = sorted(set(spec) - known)
    if unknown:
        raise WorkflowError(f"{at} has an unknown key '{unknown[0]}'; known keys: {', '.join(sorted(known))}.")
    return spec


def _is_image(param: Param) -> bool:
    return param.type is ParamType.IMAGE


def _param(pname: str, spec: object, graph: Graph, where: str) -> Param:
    at = f"the {where}, parameter '{pname}'"
    if not _NAME.match(pname):
        raise WorkflowError(f"{at}: names are lowercase letters, digits and _ (like negative or batch_size).")
    spec = _section(spec, at, f"params.{pname}", PARAM_KEYS)
    try:
        ptype = ParamType(str(spec.get("type")))
    except ValueError:
        types = ", ".join(t.value for t in ParamType)
        raise WorkflowError(f"{at}: type must be one of {types} (it says {spec.get('type')!r}).") from None
    targets = _targets(spec, graph, at)
    if ptype not in _NUMERIC and any(t.multiply is not None for t in targets):
        raise WorkflowError(f"{at}: 'multiply' only works for int and float parameters.")
    choices = spec.get("choices", [])
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise WorkflowError(f'{at}: choices must be a list of strings like ["euler", "dpmpp_2m"].')
    if ptype is ParamType.CHOICE and not choices:
        raise WorkflowError(f"{at}: a choice parameter needs a list of choices.")
    param = Param(
        name=pname,
        type=ptype,
        targets=targets,
        default=spec.get("default"),
        minimum=_number(spec.get("min"), f"{at}: min"),
        maximum=_number(spec.get("max"), f"{at}: max"),
        step=_positive_int(spec.get("step"), f"{at}: step"),
        choices=tuple(choices),
        required=_flag(spec.get("required", ptype is ParamType.IMAGE), f"{at}: required"),
        max_length=_positive_int(spec.get("max_length"), f"{at}: max_length"),
        description=_string(spec.get("description", ""), f"{at}: description"),
    )
    if param.minimum is not None and param.maximum is not None and param.minimum > param.maximum:
        raise WorkflowError(f"{at}: min ({param.minimum}) is above max ({param.maximum}).")
    templated = any(MODEL_REF.search(text) for text in (str(param.default), *param.choices))
    if param.default is not None and not templated:
        try:  # a default or choices naming {models.ROLE} are checked when filled, at bind time
            coerce(param, param.default)
        except BadInputError as exc:
            raise WorkflowError(f"{at}: its default does not fit its own rules: {exc.user_message}") from None
    return param


def _stage(
    sname: str, spec: object, graph: Graph, where: str, params: Mapping[str, Param], outputs: tuple[str, ...]
) -> Stage:
    """``[stages.NAME]``: an optional part of the graph (see ``model.Stage``), checked so that cutting it out
    always leaves a graph ComfyUI accepts."""
    at = f"the {where}, stage '{sname}'"
    if not _NAME.match(sname):
        raise WorkflowError(f"{at}: names are lowercase letters, digits and _ (like interpolate).")
    if sname in params:
        raise WorkflowError(f"{at} has the name of a parameter; give one of them another name.")
    spec = _section(spec, at, f"stages.{sname}", STAGE_KEYS)
    raw_nodes = spec.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes or not all(isinstance(n, str) for n in raw_nodes):
        raise WorkflowError(f'{at}: nodes must be a list of node ids like ["13", "14"].')
    nodes = frozenset(raw_nodes)
    if missing := sorted(nodes - set(graph)):
        raise WorkflowError(f"{at}: node {missing[0]} is not in the workflow.")
    if inside := sorted(nodes & set(outputs)):
        raise WorkflowError(f"{at}: node {inside[0]} is an output node; a stage that may be cut out cannot be one.")
    for param in params.values():
        if hit := [t for t in param.targets if t.node in nodes]:
            raise WorkflowError(f"{at}: parameter '{param.name}' writes to {hit[0]}, inside the stage.")
    bypass = _one_target(spec.get("bypass"), graph, f"{at}: bypass")
    fed_by = link_source(inputs_of(graph, bypass.node).get(bypass.input))
    if bypass.node not in nodes or fed_by is None or fed_by[0] in nodes:
        raise WorkflowError(
            f"{at}: bypass must name a node of the stage and its linked input fed from outside the stage, "
            'like "14.images".'
        )
    for node_id in sorted(set(graph) - nodes):
        for input_name, value in inputs_of(graph, node_id).items():
            source = link_source(value)
            if source is not None and source[0] in nodes and source != (bypass.node, 0):
                raise WorkflowError(
                    f"{at}: node {node_id} ('{input_name}') takes output {source[1]} of node {source[0]} inside the "
                    f"stage; only output 0 of the bypass node {bypass.node} may leave it."
                )
    fps = multiplier = None
    if "fps" in spec or "multiplier" in spec:
        fps = _one_target(spec.get("fps"), graph, f"{at}: fps")
        multiplier = _one_target(spec.get("multiplier"), graph, f"{at}: multiplier")
        fps_value, times = (
            inputs_of(graph, fps.node).get(fps.input),
            inputs_of(graph, multiplier.node).get(multiplier.input),
        )
        if fps.node in nodes or not _plain_number(fps_value):
            raise WorkflowError(f'{at}: fps must name a number input outside the stage, like "11.fps".')
        if multiplier.node not in nodes or not isinstance(times, int) or isinstance(times, bool) or times < 2:
            raise WorkflowError(
                f'{at}: multiplier must name a whole number of 2 or more inside the stage, like "14.multiplier".'
            )
    return Stage(
        name=sname,
        nodes=nodes,
        bypass=bypass,
        fps=fps,
        multiplier=multiplier,
        description=_string(spec.get("description", ""), f"{at}: description"),
    )


def _one_target(raw: object, graph: Graph, at: str) -> Target:
    if not isinstance(raw, str) or "." not in raw:
        raise WorkflowError(f'{at} must be "node.input", like "14.images" (it says {raw!r}).')
    node, _, input_name = raw.partition(".")
    if node not in graph or input_name not in inputs_of(graph, node):
        raise WorkflowError(f"{at}: {raw} is not an input of a node in the workflow.")
    return Target(node, input_name)


def _plain_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _targets(spec: Mapping[str, Any], graph: Graph, at: str) -> tuple[Target, ...]:
    if "target" in spec and "targets" in spec:
        raise WorkflowError(f"{at}: give either target or targets, not both.")
    raw = spec.get("targets", [spec["target"]] if "target" in spec else [])
    if not isinstance(raw, list) or not raw:
        raise WorkflowError(f'{at} needs a target like target = "6.text" (node id, a dot, the input name).')
    targets: list[Target] = []
    for item in raw:
        if isinstance(item, str) and "." in item:
            node, _, input_name = item.partition(".")
            target = Target(node, input_name)
        elif isinstance(item, dict) and not set(item) - TARGET_KEYS and {"node", "input"} <= set(item):
            target = Target(str(item["node"]), str(item["input"]), _number(item.get("multiply"), f"{at}: multiply"))
        else:
            raise WorkflowError(f'{at}: the target {item!r} is not "node.input" or {{ node = "6", input = "text" }}.')
        if target.node not in graph:
            raise WorkflowError(f"{at}: its target {target} names node {target.node}, which is not in the workflow.")
        if is_link(graph[target.node].get("inputs", {}).get(target.input)):
            raise WorkflowError(
                f"{at}: its target {target} is fed by a link from another node; bind the value where it is typed."
            )
        targets.append(target)
    return tuple(targets)


def _outputs(raw: object, graph: Graph, where: str) -> tuple[str, ...]:
    if raw is None:
        found = save_nodes(graph)
        if not found:
            raise WorkflowError(
                f"the {where}: the workflow has no save node (SaveImage, SaveVideo, …); add one, "
                'or name the output nodes with outputs = ["9"].'
            )
        return tuple(found)
    if not isinstance(raw, list) or not raw or not all(isinstance(o, str) for o in raw):
        raise WorkflowError(f'the {where}: outputs must be a list of node ids like ["9"].')
    missing = [o for o in raw if o not in graph]
    if missing:
        raise WorkflowError(f"the {where}: output node {missing[0]} is not in the workflow.")
    return tuple(raw)


def _number(value: object, at: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkflowError(f"{at} must be a number, not {value!r}.")
    return value


def _positive_int(value: object, at: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorkflowError(f"{at} must be a whole number of 1 or more, not {value!r}.")
    return value


def _flag(value: object, at: str) -> bool:
    if not isinstance(value, bool):
        raise WorkflowError(f"{at} must be true or false, not {value!r}.")
    return value


def _string(value: object, at: str) -> str:
    if not isinstance(value, str):
        raise WorkflowError(f"{at} must be a string in quotes, not {value!r}.")
    return value
