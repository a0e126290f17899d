"""Which workflow a waiting job runs, decided when it is dispatched rather than when it was submitted. Pure.

How it works: a job names a workflow (the one the request named, or its kind's default); that workflow heads a
fallback chain (``Registry.with_fallbacks``: Wan 2.2 → LTX-Video → SVD). ``best_workflow`` is the first of the
chain whose model files a healthy server has — the same rule ``JobService.runnable`` applies up front — or None
while no healthy server has any (every server down: the job keeps its own and waits). A job submitted while every
server was down therefore runs on what a server can run when one returns, not only on what it named.

Moving a job to another workflow carries its options over (``carried_params``): each stored value the new
workflow takes and accepts, except values equal to the old workflow's default (those were most likely not asked
for, and the new workflow's own default suits it better: Wan's 1280×704 is not LTX-Video's size). The seed and
the input picture always travel. A value the new workflow refuses (Wan's 121 frames on SVD, whose most is 25) or
does not take (SVD takes no prompt) is left out, and named in what is returned, for the log. A parameter
without a manifest default has the template graph's value as its default.

Never: do I/O, import asyncio, or change a job's workflow to one no healthy server has the models of.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from discomfy.errors import BadInputError
from discomfy.workflows import ParamType, Registry, Workflow
from discomfy.workflows.bind import coerce


class Server(Protocol):
    """What the choice reads of a server (``comfy.pool.ServerState`` is one)."""

    @property
    def healthy(self) -> bool: ...

    @property
    def models(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class Carried:
    params: dict[str, Any]
    #: Options left behind: the new workflow does not take them or refuses their value.
    dropped: tuple[str, ...]


def best_workflow(
    registry: Registry, name: str, servers: Iterable[Server], models_of: Callable[[str], frozenset[str]]
) -> Workflow | None:
    """The first of ``name``'s fallback chain whose models (``models_of``) a healthy server has; None when no
    server is healthy or none has the models of any."""
    healthy = [s for s in servers if s.healthy]
    if not healthy:
        return None
    for candidate in registry.with_fallbacks(name):
        needed = models_of(candidate.name)
        if any(needed <= s.models for s in healthy):
            return candidate
    return None


def carried_params(old: Workflow | None, new: Workflow, params: Mapping[str, Any]) -> Carried:
    """The options of a job of ``old`` that a job of ``new`` keeps (see the module's header)."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in params.items():
        target = new.params.get(name)
        always = name == "seed" or (target is not None and target.type is ParamType.IMAGE)
        if not always and old is not None and name in old.params and value == _default(old, name):
            continue  # the old workflow's default: the new one's own default applies
        if target is None:
            dropped.append(name)
            continue
        try:
            coerce(target, value)
        except BadInputError:
            dropped.append(name)
            continue
        kept[name] = value
    return Carried(kept, tuple(dropped))


def _default(workflow: Workflow, name: str) -> Any:
    """What a job of ``workflow`` gets when ``name`` is not given: the manifest's default, else the graph's value."""
    param = workflow.params[name]
    if param.default is not None or not param.targets:
        return param.default
    target = param.targets[0]
    return workflow.graph.get(target.node, {}).get("inputs", {}).get(target.input)
