"""Validation of a workflow against one server's ``/object_info``, in plain sentences for the operator.

How it works: ``validate`` fills the models into a copy of the graph, then checks each node the way ComfyUI's
``POST /prompt`` would: the node type exists; required inputs are there (dynamic combos such as SaveVideo's
``format`` → ``format.codec`` are expanded first); links point at existing nodes and outputs of the right type;
literal numbers are within min / max, booleans are booleans, and COMBO values are among the choices (a missing
model file is said as such, except in an optional stage's nodes: a server without them runs the workflow without
the stage). Then each parameter's bounds and choices are compared with the inputs it writes
to. It returns the problems, one sentence each, naming the workflow, the node (title and class) and the input.

Never: raise, do I/O, or change the workflow; an empty list means the server can run it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from discomfy.workflows.bind import fmt, resolve_param
from discomfy.workflows.graph import (
    MODEL_EXTENSIONS,
    class_of,
    fill_models,
    inputs_of,
    is_model_input,
    link_source,
    node_label,
    node_order,
)
from discomfy.workflows.model import Graph, Param, ParamType, Workflow, WorkflowError
from discomfy.workflows.objectinfo import (
    DYNAMIC_COMBO,
    InputSpec,
    NodeSpec,
    expand_inputs,
    find_input,
    parse_object_info,
)


def validate(workflow: Workflow, object_info: Mapping[str, Any], models: Mapping[str, str]) -> list[str]:
    """Every reason the server answering this ``/object_info`` could not run the workflow (empty if none)."""
    try:
        graph = fill_models(workflow.graph, models, workflow.name)
    except WorkflowError as exc:
        return [exc.problem]
    specs = parse_object_info(object_info)
    uploaded = {(t.node, t.input) for p in workflow.params.values() if p.type is ParamType.IMAGE for t in p.targets}
    checker = _Checker(workflow.name, graph, specs)
    # An optional stage's node type or model file missing on a server only keeps the stage off there.
    checker.optional = frozenset(n for stage in workflow.stages.values() for n in stage.nodes)
    for node_id in sorted(graph, key=node_order):
        checker.node(node_id, uploaded)
    # Detected parameters take their bounds from the file: a bad value there is reported on its node already (but
    # where a parameter writes is checked for every workflow).
    for param in workflow.params.values():
        try:
            checker.param(resolve_param(param, models, workflow.name), bounds=not workflow.detected)
        except WorkflowError as exc:
            checker.problems.append(exc.problem)
    return checker.problems


def models_on_server(object_info: Mapping[str, Any]) -> frozenset[str]:
    """Every model file the server offers in a loader's choices (both COMBO forms)."""
    names: set[str] = set()
    for spec in parse_object_info(object_info).values():
        for _, input_spec in expand_inputs(spec, {}):
            for choice in input_spec.choices or ():
                if isinstance(choice, str) and choice.lower().endswith(MODEL_EXTENSIONS):
                    names.add(choice)
    return frozenset(names)


class _Checker:
    def __init__(self, workflow: str, graph: Graph, specs: Mapping[str, NodeSpec]) -> None:
        self.workflow = workflow
        self.graph = graph
        self.specs = specs
        self.problems: list[str] = []
        #: Nodes of optional stages (``Stage``): the server may lack their type or model file.
        self.optional: frozenset[str] = frozenset()

    def say(self, node_id: str, text: str) -> None:
        self.problems.append(f"workflow '{self.workflow}': {node_label(self.graph, node_id)} {text}.")

    def node(self, node_id: str, uploaded: set[tuple[str, str]]) -> None:
        class_type = class_of(self.graph, node_id)
        spec = self.specs.get(class_type)
        if spec is None and node_id in self.optional:
            return
        if spec is None:
            self.say(
                node_id,
                f"uses the node type '{class_type}', which this server does not have "
                "(a custom node that is not installed?)",
            )
            return
        live = inputs_of(self.graph, node_id)
        expanded = dict(expand_inputs(spec, live))
        for name, declared in expanded.items():
            if declared.required and name not in live:
                self.say(node_id, f"is missing its required input '{name}'")
        for name, value in live.items():
            input_spec = expanded.get(name)
            if input_spec is None:
                continue  # ComfyUI ignores inputs a node does not declare
            source = link_source(value)
            if source is not None:
                self.link(node_id, name, input_spec, source)
            elif (node_id, name) not in uploaded:
                self.literal(node_id, name, input_spec, value)

    def link(self, node_id: str, name: str, spec: InputSpec, source: tuple[str, int]) -> None:
        source_id, slot = source
        if source_id not in self.graph:
            self.say(node_id, f"has its input '{name}' linked to node {source_id}, which is not in the workflow")
            return
        source_spec = self.specs.get(class_of(self.graph, source_id))
        if source_spec is None:
            return  # already said: unknown node type
        outputs = source_spec.outputs
        if not 0 <= slot < len(outputs):
            self.say(
                node_id,
                f"has its input '{name}' linked to output {slot} of {node_label(self.graph, source_id)}, "
                f"which has only {len(outputs)} output{'s' if len(outputs) != 1 else ''}",
            )
            return
        given = outputs[slot]
        if not _types_match(spec.type, given):
            self.say(
                node_id,
                f"has its input '{name}' expecting {spec.type}, but it is linked to output {slot} of "
                f"{node_label(self.graph, source_id)}, which gives {given}",
            )

    def literal(self, node_id: str, name: str, spec: InputSpec, value: Any) -> None:
        if spec.is_dynamic and spec.type != DYNAMIC_COMBO:
            return  # other V3 dynamic inputs (autogrow, …) are the server's to check
        if not spec.is_widget:
            self.say(
                node_id, f"has its input '{name}' set to a value, but it must be linked to a node giving {spec.type}"
            )
        elif spec.type in ("COMBO", DYNAMIC_COMBO):
            self.combo(node_id, name, spec, value)
        elif spec.type in ("INT", "FLOAT"):
            self.number(node_id, name, spec, value)
        elif spec.type == "BOOLEAN" and not isinstance(value, bool):
            self.say(node_id, f"has its input '{name}' set to {value!r}, but it must be true or false")
        elif spec.type == "STRING" and isinstance(value, list | dict):
            self.say(node_id, f"has its input '{name}' set to {value!r}, but it must be text")

    def combo(self, node_id: str, name: str, spec: InputSpec, value: Any) -> None:
        choices = spec.choices or ()
        if value in choices:
            return
        if spec.names_a_file:  # the list is the server's own files (other people's pictures): never shown
            self.say(node_id, f"has its input '{name}' set to a file the server does not have")
            return
        if is_model_input(name, value) and node_id in self.optional:
            return
        if is_model_input(name, value):
            self.say(
                node_id,
                f"needs the model file '{value}' (input '{name}'), which this server does not have" + _offer(choices),
            )
        else:
            self.say(
                node_id, f"has its input '{name}' set to {value!r}, which is not one of its choices" + _offer(choices)
            )

    def number(self, node_id: str, name: str, spec: InputSpec, value: Any) -> None:
        kind = "a whole number" if spec.type == "INT" else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.say(node_id, f"has its input '{name}' set to {value!r}, but it must be {kind}")
        elif spec.type == "INT" and isinstance(value, float) and not value.is_integer():
            self.say(node_id, f"has its input '{name}' set to {fmt(value)}, but it must be {kind}")
        elif spec.minimum is not None and value < spec.minimum:
            self.say(node_id, f"has its input '{name}' set to {fmt(value)}, below its minimum {fmt(spec.minimum)}")
        elif spec.maximum is not None and value > spec.maximum:
            self.say(node_id, f"has its input '{name}' set to {fmt(value)}, above its maximum {fmt(spec.maximum)}")

    def say_param(self, param: Param, text: str) -> None:
        self.problems.append(f"workflow '{self.workflow}': parameter '{param.name}' {text}.")

    def param(self, param: Param, *, bounds: bool = True) -> None:
        for target in param.targets:
            node_spec = self.specs.get(class_of(self.graph, target.node))
            if node_spec is None:
                continue
            spec = find_input(node_spec, inputs_of(self.graph, target.node), target.input)
            where = f"input '{target.input}' of {node_label(self.graph, target.node)}"
            if spec is None:
                self.say_param(param, f"writes to {where}, which that node does not have")
            elif spec.names_a_file and param.type is not ParamType.IMAGE:
                # ComfyUI looks such a name up in its folders (``x.png [output]`` too): only a picture the bot
                # uploaded for the job may go there, never text a user typed.
                self.say_param(param, f"writes to {where}, which names a file on the server; only an image may")
            elif spec.type in ("COMBO", DYNAMIC_COMBO) and param.type is ParamType.STR:
                self.say_param(param, f"writes free text to {where}, which takes one of a list of choices")
            elif not bounds:
                continue
            elif spec.type in ("INT", "FLOAT"):
                scale = target.multiply if target.multiply is not None else 1
                high, low = param.maximum, param.minimum
                if high is not None and spec.maximum is not None and high * scale > spec.maximum:
                    self.say_param(param, f"allows {fmt(high)}, but {where} accepts at most {fmt(spec.maximum)}")
                if low is not None and spec.minimum is not None and low * scale < spec.minimum:
                    self.say_param(param, f"allows {fmt(low)}, but {where} accepts at least {fmt(spec.minimum)}")
            elif spec.type == "COMBO" and param.type is ParamType.CHOICE:
                refused = [c for c in param.choices if c not in (spec.choices or ())]
                if refused:
                    offer = _offer(spec.choices or ())
                    self.say_param(param, f"offers '{refused[0]}', which {where} does not accept{offer}")


def _types_match(wanted: str, given: str) -> bool:
    if "*" in (wanted, given) or wanted == given:
        return True
    if wanted in ("COMBO", DYNAMIC_COMBO):
        return given in ("COMBO", "STRING", "*")
    return bool(set(wanted.split(",")) & set(given.split(",")))


def _offer(choices: tuple[Any, ...]) -> str:
    if not choices:
        return " (it offers none)"
    shown = ", ".join(str(c) for c in choices[:8]) + (", …" if len(choices) > 8 else "")
    return f" (it offers: {shown})"
