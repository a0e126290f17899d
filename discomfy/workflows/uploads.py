"""Workflows added from Discord: the checks an upload passes, its pending draft, and rebinding one parameter.

How it works: ``check_name`` keeps a name to ``[a-z0-9_-]{1,32}`` (it becomes a file name in the uploads folder,
so nothing else may pass). ``read_upload`` turns the downloaded bytes into an API graph, refusing — each with a
sentence the admin can act on — a file over the size limit, text that is not UTF-8 or not JSON, JSON that is not
an object, ComfyUI's UI format (``nodes`` / ``links`` arrays: how to export the API format is said), too many
nodes, over-long node ids or input names, node types outside the allow-list, and string inputs that look like
paths. The allow-list (``allowed_nodes``) is what the servers report as built in — ComfyUI's ``/object_info``
gives each node its ``python_module`` (server.py: ``RELATIVE_PYTHON_MODULE``, set in nodes.py's
``load_custom_node``): ``nodes`` for the core, ``comfy_extras.*`` for the bundled extras, ``comfy_api_nodes.*``
for paid API services, ``custom_nodes.*`` for anything installed — minus ``DENIED_NODES``, plus the operator's
``extra_nodes``. A checked upload becomes a ``Draft`` (detected bindings, the uploader, the guild), kept in
``Drafts`` — bounded (one per admin, a few in all) and expiring — until its uploader confirms, adjusts or cancels
it. ``rebind`` moves one parameter to another node input; ``manifest_text`` writes the manifest we store beside
the graph, read back by ``manifest.parse_manifest`` like any other.

Never: trust a name, node id, title or string from the file (all bounded and checked here; escaped where shown),
let anyone but the uploader use a draft, keep drafts without bound, or do I/O (``upload_files`` writes them).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from discomfy.errors import BadInputError, PermissionDeniedError, UserError
from discomfy.workflows.bind import FOLDER_ANNOTATION
from discomfy.workflows.detect import POLICY, number_param
from discomfy.workflows.graph import (
    SAVE_NODES,
    class_of,
    inputs_of,
    link_source,
    node_order,
    parse_api_graph,
)
from discomfy.workflows.model import Graph, Kind, Param, ParamType, Target, Workflow, WorkflowError
from discomfy.workflows.objectinfo import NodeSpec, expand_inputs, find_input

NAME = re.compile(r"[a-z0-9_-]{1,32}")
#: Select-menu option values are at most 100 characters (Discord); ids and input names stay far below that.
MAX_ID_CHARS = 64
#: Everything a Discord admin may bind a parameter to, and its type.
BINDABLE: dict[str, ParamType] = {
    "prompt": ParamType.STR,
    "negative": ParamType.STR,
    **{name: rule[0] for name, rule in POLICY.items()},
    "image": ParamType.IMAGE,
}

#: Built-in node types an upload may never use, though the servers report them as built in. Each writes model or
#: data files on the ComfyUI host, reads whole folders or arbitrary files there, or trains (hours of GPU):
DENIED_NODES: dict[str, str] = {
    # comfy_extras/nodes_model_merging.py and nodes_video_model.py: write a model file into models/ (output dir).
    "CheckpointSave": "writes a checkpoint file",
    "CLIPSave": "writes a model file",
    "VAESave": "writes a model file",
    "ModelSave": "writes a model file",
    "ImageOnlyCheckpointSave": "writes a checkpoint file",
    # comfy_extras/nodes_lora_extract.py, nodes_train.py: write LoRA files; training runs for hours.
    "LoraSave": "writes a LoRA file",
    "SaveLoRA": "writes a LoRA file",
    "SaveLoRANode": "writes a LoRA file",
    "TrainLoraNode": "trains a model (hours of GPU time)",
    # nodes.py: SaveLatent writes .latent files, LoadLatent reads them back from the input folder.
    "SaveLatent": "writes latent files",
    "LoadLatent": "reads latent files from the server",
    # comfy_extras/nodes_dataset.py: read or write whole folders named by an input.
    "LoadImageDataSetFromFolder": "reads a whole folder on the server",
    "LoadImageTextDataSetFromFolder": "reads a whole folder on the server",
    "LoadVideoDataSetFromFolder": "reads a whole folder on the server",
    "LoadVideoTextDataSetFromFolder": "reads a whole folder on the server",
    "SaveImageDataSetToFolder": "writes a folder of files",
    "SaveImageTextDataSetToFolder": "writes a folder of files",
    "SaveTrainingDataset": "writes a dataset",
    "LoadTrainingDataset": "reads a dataset from the server",
    # nodes.py: LoadImage's sibling whose list is the output folder — everyone's results, other servers' too.
    "LoadImageOutput": "reads the server's output folder (other people's results)",
}
#: ``python_module`` prefixes of the node types ComfyUI ships (``comfy_api_nodes`` is left out: it calls paid
#: services with the server's own account).
BUILT_IN_MODULES = ("nodes", "comfy_extras.")
#: Windows drive letters (``C:\\``, ``d:/``) and home references (``~/``) count as absolute paths.
_ABSOLUTE = re.compile(r"^(?:[/\\]|[A-Za-z]:[/\\]|~)")
_PARENT = re.compile(r"(?:^|[/\\])\.\.(?:[/\\]|$)")
_ANNOTATED = FOLDER_ANNOTATION  # `` [output]`` and friends: a way into the server's folders


def check_name(text: str) -> str:
    """The workflow name, or a ``BadInputError``: lowercase letters, digits, ``_`` and ``-``, 1 to 32."""
    name = text.strip()
    if not NAME.fullmatch(name):
        raise BadInputError(
            "A workflow name is 1 to 32 lowercase letters, digits, `_` or `-` (like `sdxl_refiner`); "
            "no spaces, dots or slashes."
        )
    return name


def built_in_nodes(object_info: Mapping[str, Any]) -> frozenset[str]:
    """The node types one server reports as shipped with ComfyUI (by ``python_module``), minus the denied."""
    found: set[str] = set()
    for class_type, entry in object_info.items() if isinstance(object_info, Mapping) else ():
        module = entry.get("python_module") if isinstance(entry, Mapping) else None
        if isinstance(module, str) and (module == "nodes" or module.startswith(BUILT_IN_MODULES[1])):
            found.add(str(class_type))
    return frozenset(found - set(DENIED_NODES))


def allowed_nodes(infos: Iterable[Mapping[str, Any]], extra: Iterable[str]) -> frozenset[str]:
    """The allow-list: the built-in node types of any of the servers, plus ``extra`` (the operator's own)."""
    allowed: set[str] = set(extra)
    for info in infos:
        allowed |= built_in_nodes(info)
    return frozenset(allowed)


@dataclass(frozen=True)
class UploadRules:
    max_bytes: int
    max_nodes: int
    allowed: frozenset[str]


def read_upload(data: bytes, name: str, rules: UploadRules) -> Graph:
    """The API graph in ``data``, or a ``BadInputError`` saying what is wrong and what to do."""
    if len(data) > rules.max_bytes:
        raise BadInputError(f"The file is over {rules.max_bytes // 1024} KiB, the most an upload may be.")
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise BadInputError(
            "The file is not text (UTF-8 JSON); export the workflow from ComfyUI with Workflow → Export (API)."
        ) from None
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"The file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "export it again from ComfyUI with Workflow → Export (API)."
        ) from None
    except RecursionError:
        raise BadInputError("The file nests too deeply to be a workflow export.") from None
    except ValueError:  # e.g. a number of more than 4300 digits (Python's int conversion limit)
        raise BadInputError("The file holds a value too large to be part of a workflow export.") from None
    if not isinstance(raw, dict):
        raise BadInputError(
            f"The file holds a JSON {type(raw).__name__.replace('dict', 'object')}, not a workflow: an API-format "
            "export is an object of nodes by id (ComfyUI: Workflow → Export (API))."
        )
    try:
        graph = parse_api_graph(raw, name)
    except WorkflowError as exc:
        raise BadInputError(exc.problem[0].upper() + exc.problem[1:]) from None
    if len(graph) > rules.max_nodes:
        raise BadInputError(f"The workflow has {len(graph)} nodes; an upload may have at most {rules.max_nodes}.")
    for node_id in graph:
        _check_node(graph, node_id, rules.allowed)
    return graph


def _check_node(graph: Graph, node_id: str, allowed: frozenset[str]) -> None:
    class_type = class_of(graph, node_id)
    if len(node_id) > MAX_ID_CHARS or len(class_type) > 128:
        raise BadInputError(f"A node id or type in the file is longer than {MAX_ID_CHARS} characters.")
    if class_type in DENIED_NODES:
        raise BadInputError(
            f"Node {_short(node_id)} is a `{_short(class_type)}`, which {DENIED_NODES[class_type]}: "
            "uploads may not use it."
        )
    if class_type not in allowed:
        raise BadInputError(
            f"Node {_short(node_id)} is a `{_short(class_type)}`, which is not a built-in node of our ComfyUI "
            "servers; an admin can allow it with extra_nodes under [workflow_uploads] in discomfy.toml."
        )
    for input_name, value in inputs_of(graph, node_id).items():
        if len(input_name) > MAX_ID_CHARS:
            raise BadInputError(f"Node {_short(node_id)} has an input name over {MAX_ID_CHARS} characters.")
        source = link_source(value)
        if source is not None and source[0] not in graph:
            raise BadInputError(
                f"Node {_short(node_id)} input `{_short(input_name)}` links to node {_short(source[0])}, "
                "which is not in the file."
            )
    for input_name, raw in inputs_of(graph, node_id).items():
        value = next((text for text in nested_strings(raw) if looks_like_path(text)), None)
        if value is not None:
            raise BadInputError(
                f"Node {_short(node_id)} input `{_short(input_name)}` looks like a path on the server "
                f"(`{_short(value)}`); uploads may only name files the server lists, without `..` or a leading `/`."
            )


def looks_like_path(value: str) -> bool:
    """An absolute path, one climbing out with ``..``, or a name ComfyUI looks up in its output, temp or input
    folder (``x.png [output]``): never a prompt, a sampler name or a model file name."""
    text = value.strip()
    return bool(_ABSOLUTE.match(text) or _PARENT.search(text) or _ANNOTATED.search(text))


def nested_strings(value: object, depth: int = 0) -> Iterator[str]:
    """Every string inside an input's value (dict and list inputs too, e.g. Load3D's ``image``), bounded."""
    if isinstance(value, str):
        yield value
    elif depth < 8 and isinstance(value, dict):
        for item in value.values():
            yield from nested_strings(item, depth + 1)
    elif depth < 8 and isinstance(value, list):
        for item in value:
            yield from nested_strings(item, depth + 1)


def unbound_file_inputs(workflow: Workflow, specs: Mapping[str, NodeSpec]) -> list[str]:
    """Inputs that name a file on the server (``InputSpec.names_a_file``: LoadImage, LoadAudio, LoadVideo, Load3D …)
    and are not written by an image parameter: an upload may read only the picture a user gives (the bot uploads it
    under a fresh name), never a file already there (someone else's upload or result)."""
    from_images = {t for p in workflow.params.values() if p.type is ParamType.IMAGE for t in p.targets}
    found: list[str] = []
    for node_id in sorted(workflow.graph, key=node_order):
        spec = specs.get(class_of(workflow.graph, node_id))
        if spec is None:
            continue
        for name, input_spec in expand_inputs(spec, inputs_of(workflow.graph, node_id)):
            if input_spec.names_a_file and Target(node_id, name) not in from_images:
                found.append(f"node {_short(node_id)} ({_short(spec.class_type)}) input `{_short(name)}`")
    return found


def _short(text: str, limit: int = 40) -> str:
    """Untrusted text for a message: one line, bounded, without Markdown code marks."""
    flat = " ".join(str(text).split()).replace("`", "'")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def with_kind(workflow: Workflow, kind: Kind | None) -> Workflow:
    """The detected workflow, as ``kind`` when the admin names one; the save nodes must fit it."""
    if kind is None or kind is workflow.kind:
        return workflow
    savers = {SAVE_NODES.get(class_of(workflow.graph, o), Kind.IMAGE) for o in workflow.outputs}
    makes_video = savers == {Kind.VIDEO}
    if (kind is Kind.VIDEO) != makes_video:
        raise BadInputError(
            f"This workflow saves {'videos' if makes_video else 'pictures'}, so it cannot be a {kind.value} workflow."
        )
    if kind is Kind.UPSCALE and "image" not in workflow.params:
        raise BadInputError("An upscale workflow needs a LoadImage node for the picture to enlarge.")
    return replace(workflow, kind=kind)


# -- drafts ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """An upload waiting for its admin: the detected workflow and what the Adjust menus have picked so far."""

    id: str
    owner_id: int
    guild_id: int
    workflow: Workflow
    created_at: float
    #: Problems the servers reported (shown; the draft is only made when at least one server can run it).
    servers: tuple[str, ...] = ()
    #: Adjust: the parameter being moved, then the node picked for it.
    param: str | None = None
    node: str | None = None

    @property
    def name(self) -> str:
        return self.workflow.name


@dataclass
class Drafts:
    """Pending uploads: one per admin (a new upload replaces it), at most ``limit`` in all, each for ``ttl`` s."""

    ttl: float = 900.0
    limit: int = 20
    clock: Callable[[], float] = time.monotonic
    _drafts: dict[str, Draft] = field(default_factory=dict)

    def new_id(self) -> str:
        return secrets.token_hex(16)

    def add(self, draft: Draft) -> None:
        self._expire()
        for old in [d for d in self._drafts.values() if d.owner_id == draft.owner_id]:
            del self._drafts[old.id]
        if len(self._drafts) >= self.limit:
            raise UserError("Too many workflow uploads are waiting for confirmation; try again in a few minutes.")
        self._drafts[draft.id] = draft

    def get(self, draft_id: str, user_id: int, guild_id: int | None) -> Draft:
        """The draft, for its own uploader in its own guild only (checked here, whoever saw the buttons)."""
        self._expire()
        draft = self._drafts.get(draft_id)
        if draft is None:
            raise UserError("This upload has expired or was already handled; run /workflow add again.")
        if draft.owner_id != user_id or draft.guild_id != guild_id:
            raise PermissionDeniedError("Only the admin who uploaded this workflow can confirm, adjust or cancel it.")
        return draft

    def put(self, draft: Draft) -> None:
        if draft.id in self._drafts:
            self._drafts[draft.id] = draft

    def pop(self, draft_id: str, user_id: int, guild_id: int | None) -> Draft:
        draft = self.get(draft_id, user_id, guild_id)
        del self._drafts[draft_id]
        return draft

    def __len__(self) -> int:
        self._expire()
        return len(self._drafts)

    def _expire(self) -> None:
        now = self.clock()
        for draft_id in [i for i, d in self._drafts.items() if now - d.created_at > self.ttl]:
            del self._drafts[draft_id]


# -- adjusting a binding -----------------------------------------------------------------------------------


def fits(ptype: ParamType, value: object) -> bool:
    """Whether a literal input holding ``value`` can take a parameter of type ``ptype``."""
    if ptype in (ParamType.STR, ParamType.IMAGE, ParamType.CHOICE):
        return isinstance(value, str)
    if ptype is ParamType.INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if ptype is ParamType.FLOAT:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, bool)


def param_type(workflow: Workflow, pname: str) -> ParamType:
    found = workflow.params.get(pname)
    return found.type if found is not None else BINDABLE[pname]


def bindable_nodes(workflow: Workflow, pname: str) -> list[str]:
    """Node ids with at least one literal input that ``pname`` could be bound to, in id order."""
    return [n for n in sorted(workflow.graph, key=node_order) if bindable_inputs(workflow, pname, n)]


def bindable_inputs(workflow: Workflow, pname: str, node: str) -> list[str]:
    ptype = param_type(workflow, pname)
    return [
        name
        for name, value in inputs_of(workflow.graph, node).items()
        if link_source(value) is None and fits(ptype, value)
    ]


def rebind(workflow: Workflow, pname: str, target: Target, specs: Mapping[str, NodeSpec] | None = None) -> Workflow:
    """The workflow with parameter ``pname`` writing to ``target`` alone (a new parameter if it had none)."""
    if pname not in BINDABLE and pname not in workflow.params:
        raise BadInputError(f"`{_short(pname)}` is not a parameter that can be bound.")
    if target.node not in workflow.graph or target.input not in bindable_inputs(workflow, pname, target.node):
        raise BadInputError(
            f"Input `{_short(target.input)}` of node {_short(target.node)} cannot take {pname}: it is a link, "
            "or holds another kind of value."
        )
    ptype = param_type(workflow, pname)
    value = inputs_of(workflow.graph, target.node).get(target.input)
    node_spec = (specs or {}).get(class_of(workflow.graph, target.node))
    input_spec = find_input(node_spec, inputs_of(workflow.graph, target.node), target.input) if node_spec else None
    if input_spec is not None and input_spec.names_a_file and ptype is not ParamType.IMAGE:
        raise BadInputError(
            f"Input `{_short(target.input)}` of node {_short(target.node)} names a file on the server: only the "
            "picture a user gives (the `image` parameter) may go there."
        )
    if input_spec is not None and ptype is ParamType.STR and input_spec.type != "STRING":
        raise BadInputError(
            f"Input `{_short(target.input)}` of node {_short(target.node)} is not a text input: {pname} is free text."
        )
    graph: Graph = {k: dict(v) for k, v in workflow.graph.items()}
    numbered = number_param(graph, pname, [target], specs) if pname in POLICY else None
    if numbered is not None:
        param: Param = numbered
    elif ptype in (ParamType.INT, ParamType.FLOAT):
        param = Param(pname, ptype, (target,), default=value)
    elif ptype is ParamType.IMAGE:
        param = Param(pname, ptype, (target,), required=True)
    elif ptype is ParamType.STR:
        old = workflow.params.get(pname)
        param = Param(pname, ptype, (target,), default=None if pname == "prompt" else value, required=pname == "prompt")
        param = replace(param, max_length=old.max_length if old else None)
    else:
        old_param = workflow.params[pname]
        param = replace(old_param, targets=(target,), default=value if value in old_param.choices else None)
    return replace(workflow, params={**workflow.params, pname: param})


# -- the manifest we write ---------------------------------------------------------------------------------


def manifest_text(workflow: Workflow, *, added_by: int) -> str:
    """The TOML manifest of a confirmed upload: its kind, description, outputs and every parameter, explicit."""
    lines = [
        f"# Added from Discord with /workflow add by user {added_by}; /workflow remove {workflow.name} removes it.",
        f"kind = {_toml(workflow.kind.value)}",
        f"description = {_toml(workflow.description)}",
        f"outputs = [{', '.join(_toml(o) for o in workflow.outputs)}]",
    ]
    for pname in sorted(workflow.params):
        param = workflow.params[pname]
        lines += ["", f"[params.{pname}]", f"type = {_toml(param.type.value)}"]
        targets = ", ".join(
            "{ "
            + f"node = {_toml(t.node)}, input = {_toml(t.input)}"
            + (f", multiply = {_toml(t.multiply)}" if t.multiply is not None else "")
            + " }"
            for t in param.targets
        )
        lines.append(f"targets = [{targets}]")
        for key, value in (
            ("default", param.default),
            ("min", param.minimum),
            ("max", param.maximum),
            ("step", param.step),
            ("max_length", param.max_length),
        ):
            if value is not None:
                lines.append(f"{key} = {_toml(value)}")
        if param.choices:
            lines.append(f"choices = [{', '.join(_toml(c) for c in param.choices)}]")
        lines.append(f"required = {_toml(param.required)}")
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else "0.0"
    # A TOML basic string: JSON's escapes are TOML's, except that TOML refuses DEL and surrogates raw.
    text = json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
    return re.sub(r"[\ud800-\udfff]", "\ufffd", text)
