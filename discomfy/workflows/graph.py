"""Reading ComfyUI API-format graphs: shape checks, links, node labels, model placeholders, save nodes.

How it works: an API-format graph is ``{node_id: {"class_type", "inputs", "_meta": {"title"}}}`` where an input
is either a literal or a link ``[source_node_id, output_index]``. ``parse_api_graph`` checks that shape once (and
recognises the UI format, ``{"nodes": [...], "links": [...]}``, to say how to export the right one); the helpers
here then trust it. ``fill_models`` replaces ``{models.ROLE}`` in string literals on a deep copy.

Never: change a graph it was given; every function that "changes" one returns a new one.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from discomfy.workflows.model import Graph, Kind, Stage, WorkflowError

#: ``{models.checkpoint}`` in a string literal → the file configured for that role in ``Settings.models``.
MODEL_REF = re.compile(r"\{models\.([A-Za-z0-9_-]+)\}")

#: File endings of model files, to tell ``ckpt_name = "x.safetensors"`` from ``sampler_name = "euler"``.
MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".pt2", ".bin", ".gguf", ".sft", ".onnx")

#: Core save nodes and what they make (videos and animations are delivered as video).
SAVE_NODES: dict[str, Kind] = {
    "SaveImage": Kind.IMAGE,
    "SaveVideo": Kind.VIDEO,
    "SaveAnimatedWEBP": Kind.VIDEO,
    "SaveWEBM": Kind.VIDEO,
    "SaveAnimatedPNG": Kind.VIDEO,
}


def is_link(value: object) -> bool:
    """``["4", 0]``: an input fed by output 0 of node 4 (ids are strings in API format; ints are tolerated)."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def link_source(value: object) -> tuple[str, int] | None:
    if not is_link(value):
        return None
    assert isinstance(value, list | tuple)
    return str(value[0]), int(value[1])


def parse_api_graph(raw: object, name: str) -> Graph:
    """Check that ``raw`` (decoded JSON) is an API-format graph; raise ``WorkflowError`` saying what is wrong."""
    if isinstance(raw, dict) and isinstance(raw.get("nodes"), list) and "links" in raw:
        raise WorkflowError(
            f"workflow '{name}' is in ComfyUI's UI format (the one 'Save' writes), not the API format the bot "
            "needs: open it in ComfyUI and export it with Workflow → Export (API)."
        )
    if isinstance(raw, dict) and isinstance(raw.get("prompt"), dict) and "class_type" not in raw:
        raise WorkflowError(
            f"workflow '{name}' looks like a whole /prompt request; keep only the graph under \"prompt\" "
            "(or export it with Workflow → Export (API))."
        )
    if not isinstance(raw, dict) or not raw:
        raise WorkflowError(
            f"workflow '{name}' is not an API-format graph (an object of nodes by id); "
            "export it from ComfyUI with Workflow → Export (API)."
        )
    graph: Graph = {}
    for node_id, node in raw.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) or not node["class_type"]:
            raise WorkflowError(
                f"workflow '{name}': node {node_id} has no 'class_type'; the file is not an API-format export "
                "(use Workflow → Export (API) in ComfyUI)."
            )
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            raise WorkflowError(f"workflow '{name}': node {node_id} has 'inputs' that are not an object.")
        graph[str(node_id)] = copy.deepcopy(node)
    return graph


def node_title(node: Mapping[str, Any]) -> str:
    meta = node.get("_meta")
    title = meta.get("title") if isinstance(meta, dict) else None
    return title if isinstance(title, str) and title.strip() else str(node.get("class_type", "?"))


def node_label(graph: Mapping[str, Mapping[str, Any]], node_id: str) -> str:
    """``node 3 "Sampler" (KSampler)``: how a node is named in every message to an operator."""
    node = graph.get(node_id)
    if node is None:
        return f"node {node_id}"
    title, class_type = node_title(node), str(node.get("class_type", "?"))
    return f'node {node_id} "{title}"' + ("" if title == class_type else f" ({class_type})")


def inputs_of(graph: Mapping[str, Mapping[str, Any]], node_id: str) -> Mapping[str, Any]:
    node = graph.get(node_id)
    inputs = node.get("inputs") if node is not None else None
    return inputs if isinstance(inputs, dict) else {}


def class_of(graph: Mapping[str, Mapping[str, Any]], node_id: str) -> str:
    node = graph.get(node_id)
    return str(node.get("class_type", "")) if node is not None else ""


def nodes_of_class(graph: Mapping[str, Mapping[str, Any]], classes: Iterable[str]) -> list[str]:
    """Node ids of these classes, in a stable order (numeric ids by number)."""
    wanted = set(classes)
    return sorted((i for i, n in graph.items() if n.get("class_type") in wanted), key=node_order)


def node_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 62, node_id)


def upstream(graph: Mapping[str, Mapping[str, Any]], start: Iterable[str]) -> set[str]:
    """Every node the ``start`` nodes depend on through links, themselves included."""
    seen: set[str] = set()
    todo = [s for s in start if s in graph]
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        for value in inputs_of(graph, node_id).values():
            source = link_source(value)
            if source is not None and source[0] in graph:
                todo.append(source[0])
    return seen


def string_literals(graph: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, str, str]]:
    """(node id, input name, value) of every string literal input."""
    for node_id in graph:
        for input_name, value in inputs_of(graph, node_id).items():
            if isinstance(value, str):
                yield node_id, input_name, value


def model_roles(graph: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    return frozenset(role for _, _, value in string_literals(graph) for role in MODEL_REF.findall(value))


def fill_models(graph: Mapping[str, Mapping[str, Any]], models: Mapping[str, str], workflow: str) -> Graph:
    """A deep copy of ``graph`` with every ``{models.ROLE}`` replaced by ``models[ROLE]``."""
    filled: Graph = copy.deepcopy(dict(graph))  # type: ignore[arg-type]
    for node_id, input_name, value in list(string_literals(filled)):
        if MODEL_REF.search(value):
            filled[node_id]["inputs"][input_name] = fill_model_refs(value, models, workflow)
    return filled


def fill_model_refs(value: str, models: Mapping[str, str], workflow: str) -> str:
    def replace(match: re.Match[str]) -> str:
        role = match.group(1)
        if role not in models:
            raise unknown_role(role, models, workflow)
        return models[role]

    return MODEL_REF.sub(replace, value)


def unknown_role(role: str, models: Mapping[str, str], workflow: str) -> WorkflowError:
    known = ", ".join(sorted(models)) or "none"
    return WorkflowError(
        f"workflow '{workflow}' uses {{models.{role}}}, but no model file is configured for the role "
        f"'{role}': add `{role} = \"file.safetensors\"` under [models] in discomfy.toml (known: {known})."
    )


def is_model_input(input_name: str, value: object) -> bool:
    """A loader input naming a model file: ``ckpt_name``, ``model_name``, ``lora_name``, … with a file name."""
    return (isinstance(value, str) and input_name.endswith("_name") and value.lower().endswith(MODEL_EXTENSIONS)) or (
        isinstance(value, str) and input_name == "ckpt_name"
    )


def model_files(graph: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """The model files a (filled) graph loads, for routing it to a server that has them all."""
    return frozenset(value for _, name, value in string_literals(graph) if is_model_input(name, value))


def save_nodes(graph: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return nodes_of_class(graph, SAVE_NODES)


def cut_stage(graph: Mapping[str, Mapping[str, Any]], stage: Stage) -> Graph:
    """A copy of ``graph`` without ``stage``'s nodes: every input linked to the bypass node's output takes what
    feeds its bypass input instead (the manifest check made sure nothing else links into the stage)."""
    source = inputs_of(graph, stage.bypass.node).get(stage.bypass.input)
    cut: Graph = {nid: copy.deepcopy(dict(node)) for nid, node in graph.items() if nid not in stage.nodes}
    for node in cut.values():
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            continue
        for name, value in inputs.items():
            link = link_source(value)
            if link is not None and link[0] == stage.bypass.node:
                inputs[name] = copy.deepcopy(source)
    return cut
