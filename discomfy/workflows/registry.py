"""The registry: every workflow of a folder, loaded, indexed by name and kind, with each broken file explained.

How it works: ``load_workflows`` reads each ``NAME.json`` (API format) and, if present, ``NAME.toml`` beside it
(the manifest); without a manifest the parameters are detected (``detect``), with bounds from ``/object_info``
when one is given. A file that cannot be used adds one sentence to ``Registry.problems`` and is skipped: a
broken file never stops the others. Then fallbacks are checked (they must exist and make the same kind) and one
default per kind is chosen (the manifest's ``default = true``, else the first by name). Workflows added from
Discord live in a second folder (``uploads``, in the data directory), one folder per Discord server:
``uploads/<guild id>/NAME.json``. They load the same way, after the shipped ones, never take a shipped one's
name or another server's (one namespace), and belong to their server (``owners``): ``for_guild`` is the registry
as one server's members see it, without the other servers' uploads. Defaults are chosen among the shipped
workflows only; a server's own upload can be its default of a kind no shipped workflow makes. A fallback never
leads to another server's upload (a shipped workflow's fallback is a shipped one).

Never: raise for a bad workflow file (only for a programming error), read anything outside the folders, or
let an upload be seen, defaulted to or fallen back on from another server (or a DM).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from discomfy.errors import BadInputError
from discomfy.workflows.bind import with_stages
from discomfy.workflows.detect import detect_workflow
from discomfy.workflows.graph import fill_models, model_files, parse_api_graph, unknown_role
from discomfy.workflows.manifest import parse_manifest
from discomfy.workflows.model import Kind, Workflow, WorkflowError
from discomfy.workflows.objectinfo import parse_object_info
from discomfy.workflows.validate import validate


@dataclass(frozen=True)
class Registry:
    workflows: Mapping[str, Workflow]
    #: One sentence per file that could not be loaded (or setting that was dropped), for the start-up log.
    problems: tuple[str, ...] = ()
    models: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[Kind, str] = field(default_factory=dict)
    #: Names of the workflows added from Discord (the uploads folder), which ``/workflow remove`` may remove.
    uploaded: frozenset[str] = frozenset()
    #: The Discord server each upload belongs to (name → guild id): it exists for that server only.
    owners: Mapping[str, int] = field(default_factory=dict)

    def for_guild(self, guild_id: int | None) -> Registry:
        """The registry as a member of ``guild_id`` sees it (None: a DM): the shipped workflows and this server's
        own uploads. Its defaults are the shipped ones, plus, for a kind no shipped workflow makes, the first of
        this server's uploads of that kind; its fallbacks never leave it."""
        if not self.owners:
            return self
        hidden = {name for name, owner in self.owners.items() if owner != guild_id}
        workflows = {n: w for n, w in self.workflows.items() if n not in hidden}
        defaults = dict(self.defaults)
        for name in sorted(workflows):
            defaults.setdefault(workflows[name].kind, name)
        owners = {n: g for n, g in self.owners.items() if n not in hidden}
        return replace(self, workflows=workflows, defaults=defaults, uploaded=frozenset(owners), owners=owners)

    def names(self) -> list[str]:
        return sorted(self.workflows)

    def find(self, name: str) -> Workflow | None:
        return self.workflows.get(name)

    def get(self, name: str) -> Workflow:
        """The workflow ``name``, or a ``BadInputError`` listing the ones there are."""
        found = self.workflows.get(name)
        if found is None:
            raise BadInputError(f"there is no workflow called '{name}'; there are: {', '.join(self.names())}.")
        return found

    def of_kind(self, kind: Kind) -> list[Workflow]:
        return [self.workflows[n] for n in self.names() if self.workflows[n].kind is kind]

    def default(self, kind: Kind) -> Workflow | None:
        name = self.defaults.get(kind)
        return self.workflows.get(name) if name else None

    def with_fallbacks(self, name: str) -> list[Workflow]:
        """The workflow, then its fallback, then the fallback's fallback, …: the order to try them in."""
        chain: list[Workflow] = []
        current = self.workflows.get(name)
        while current is not None and current not in chain:
            chain.append(current)
            current = self.workflows.get(current.fallback) if current.fallback else None
        return chain

    def needed_models(self, name: str, stages: Iterable[str] = ()) -> frozenset[str]:
        """The model files workflow ``name`` loads with the optional ``stages`` on (none: without them), with the
        configured models filled in."""
        workflow = self.get(name)
        return model_files(with_stages(workflow, fill_models(workflow.graph, self.models, name), frozenset(stages)))

    def first_runnable(self, name: str, available: Iterable[str]) -> Workflow | None:
        """The first of ``with_fallbacks(name)`` whose models are all in ``available`` (a server's files)."""
        have = frozenset(available)
        return next((w for w in self.with_fallbacks(name) if self.needed_models(w.name) <= have), None)

    def validate(self, object_info: Mapping[str, Any]) -> list[str]:
        """The problems of every workflow against one server's ``/object_info`` (see ``validate.validate``)."""
        return [p for n in self.names() for p in validate(self.workflows[n], object_info, self.models)]


def load_workflows(
    folder: Path,
    models: Mapping[str, str],
    object_info: Mapping[str, Any] | None = None,
    *,
    uploads: Path | None = None,
) -> Registry:
    """Every workflow in ``folder``, then those added from Discord in ``uploads`` (``uploads/<guild id>/``; a name
    the folder or another server already has is skipped with a problem: an upload never replaces a shipped
    workflow or another server's); ``object_info`` (a server's, as returned) narrows detected bounds."""
    if not folder.is_dir():
        return Registry({}, (f"the workflows folder {folder} does not exist (see workflows_dir in discomfy.toml).",))
    specs = parse_object_info(object_info) if object_info else None
    loaded: dict[str, Workflow] = {}
    problems: list[str] = []
    _load_folder(folder, models, specs, loaded, problems)
    _check_fallbacks(loaded, problems)
    defaults = _defaults(loaded, problems)
    owners: dict[str, int] = {}
    for guild_id, guild_folder in _guild_folders(uploads, problems):
        added: dict[str, Workflow] = {}
        _load_folder(guild_folder, models, specs, added, problems)
        for name, workflow in added.items():
            if name in owners:
                problems.append(
                    f"uploaded workflow '{name}' of server {guild_id} has the name of server {owners[name]}'s "
                    "and is skipped; remove one."
                )
            elif name in loaded:
                problems.append(f"uploaded workflow '{name}' has the name of a shipped one and is skipped; remove it.")
            else:
                loaded[name] = workflow
                owners[name] = guild_id
    _check_upload_fallbacks(loaded, owners, problems)
    return Registry(loaded, tuple(problems), dict(models), defaults, frozenset(owners), owners)


def _guild_folders(uploads: Path | None, problems: list[str]) -> list[tuple[int, Path]]:
    """The uploads folder's per-server folders (named by the guild id), in order. A workflow file directly in it
    belongs to no server, so it is skipped with a problem (never shown to every server)."""
    if uploads is None or not uploads.is_dir():
        return []
    for stray in sorted(uploads.glob("*.json")):
        problems.append(
            f"uploaded workflow {stray.name} belongs to no Discord server and is skipped; move it (and its .toml) "
            f"into {uploads}/<server id>/ or remove it."
        )
    found = [(int(p.name), p) for p in uploads.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) > 0]
    return sorted(found)


def _check_upload_fallbacks(loaded: dict[str, Workflow], owners: Mapping[str, int], problems: list[str]) -> None:
    """An upload may fall back on a shipped workflow or an upload of its own server, nothing else."""
    for name in owners:
        workflow = loaded[name]
        target = loaded.get(workflow.fallback) if workflow.fallback else None
        if workflow.fallback is None:
            continue
        if target is None or owners.get(target.name, owners[name]) != owners[name]:
            problems.append(f"{name}: its fallback '{workflow.fallback}' is not a loaded workflow; it has none now.")
        elif target.kind is not workflow.kind:
            problems.append(
                f"{name}: its fallback '{target.name}' makes {target.kind.value}, not {workflow.kind.value}; "
                "it has none now."
            )
        else:
            continue
        loaded[name] = replace(workflow, fallback=None)


def _load_folder(
    folder: Path,
    models: Mapping[str, str],
    specs: Mapping[str, Any] | None,
    loaded: dict[str, Workflow],
    problems: list[str],
) -> None:
    for path in sorted(folder.glob("*.json")):
        try:
            workflow = load_workflow(path, models, specs)
        except WorkflowError as exc:
            problems.append(f"{exc.file or path.name}: {exc.problem}")
            continue
        loaded[workflow.name] = workflow
    for manifest in sorted(folder.glob("*.toml")):
        if not manifest.with_suffix(".json").exists():
            problems.append(f"{manifest.name}: a manifest without its workflow; put {manifest.stem}.json beside it.")


def load_workflow(path: Path, models: Mapping[str, str], specs: Mapping[str, Any] | None = None) -> Workflow:
    """One workflow file (and its manifest); ``WorkflowError`` says what is wrong with it."""
    name = path.stem
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"workflow '{name}' is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "export it again from ComfyUI with Workflow → Export (API)."
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"workflow '{name}' cannot be read: {exc}.") from exc
    graph = parse_api_graph(raw, name)
    manifest = path.with_suffix(".toml")
    if manifest.exists():
        try:
            text = manifest.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise WorkflowError(f"the manifest of workflow '{name}' cannot be read: {exc}.") from exc
        try:
            workflow = parse_manifest(text, graph, name, source=path)
        except WorkflowError as exc:
            raise WorkflowError(exc.problem, file=manifest.name) from exc
    else:
        workflow = detect_workflow(graph, name, specs, source=path)
    missing = sorted(workflow.model_roles - set(models))
    if missing:
        raise unknown_role(missing[0], models, name)
    return workflow


def _check_fallbacks(loaded: dict[str, Workflow], problems: list[str]) -> None:
    for name, workflow in list(loaded.items()):
        target = loaded.get(workflow.fallback) if workflow.fallback else None
        if workflow.fallback and target is None:
            problems.append(f"{name}: its fallback '{workflow.fallback}' is not a loaded workflow; it has none now.")
        elif target is not None and target.kind is not workflow.kind:
            problems.append(
                f"{name}: its fallback '{target.name}' makes {target.kind.value}, not {workflow.kind.value}; "
                "it has none now."
            )
        else:
            continue
        loaded[name] = replace(workflow, fallback=None)


def _defaults(loaded: Mapping[str, Workflow], problems: list[str]) -> dict[Kind, str]:
    defaults: dict[Kind, str] = {}
    for name in sorted(loaded):
        workflow = loaded[name]
        if not workflow.default:
            continue
        if workflow.kind in defaults:
            problems.append(
                f"{name}: '{defaults[workflow.kind]}' is already the default {workflow.kind.value} workflow; "
                f"remove default = true from one of them."
            )
            continue
        defaults[workflow.kind] = name
    for name in sorted(loaded):
        defaults.setdefault(loaded[name].kind, name)
    return defaults
