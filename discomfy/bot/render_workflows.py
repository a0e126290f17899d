"""The words of ``/workflow``: an upload's summary, the Adjust menus' labels, /workflow list and info. Pure.

How it works: each function takes typed things (a ``Draft``, a ``Workflow``, where it runs) and returns an embed
as a plain dict (``nextcord.Embed.from_dict`` makes it) or select options as (label, value, description)
tuples. Everything that came from an uploaded file (node titles, class names, default texts) is escaped and
bounded with ``escape_user_text``; the lengths stay under Discord's limits (embed description ≤ 4096, field
value ≤ 1024, select label / description ≤ 100, ≤ 25 options).

Never: import nextcord, do I/O, or show a file's text unescaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from discomfy.bot.render_job import escape_user_text
from discomfy.workflows.graph import class_of, inputs_of, node_title
from discomfy.workflows.model import Kind, Param, Target, Workflow
from discomfy.workflows.uploads import BINDABLE, Draft

#: Parameters a workflow of each kind is expected to offer; those not found are listed as "not bound".
EXPECTED: dict[Kind, tuple[str, ...]] = {
    Kind.IMAGE: ("prompt", "negative", "seed", "steps", "cfg", "width", "height", "batch"),
    Kind.VIDEO: ("image", "prompt", "negative", "seed", "steps", "cfg", "frames", "fps"),
    Kind.UPSCALE: ("image",),
}
#: Discord: ≤ 25 options in a select menu, labels and descriptions ≤ 100 characters.
MAX_OPTIONS = 25
Option = tuple[str, str, str]


def target_text(workflow: Workflow, target: Target) -> str:
    graph = workflow.graph
    title = escape_user_text(node_title(graph[target.node]), 40) if target.node in graph else "?"
    kind = escape_user_text(class_of(graph, target.node), 40)
    return f"node {escape_user_text(target.node, 20)} {title} ({kind}) · `{escape_user_text(target.input, 40)}`"


def param_line(workflow: Workflow, param: Param) -> str:
    where = "; ".join(target_text(workflow, t) for t in param.targets[:3])
    more = f" (+{len(param.targets) - 3} more)" if len(param.targets) > 3 else ""
    return f"**{param.name}** → {where}{more}{bounds_text(param)}"


def bounds_text(param: Param) -> str:
    parts: list[str] = []
    if param.minimum is not None or param.maximum is not None:
        parts.append(f"{_num(param.minimum)}–{_num(param.maximum)}")
    if param.default is not None and param.default != "":
        parts.append(f"default {escape_user_text(str(param.default), 40)}")
    if param.choices:
        parts.append(f"{len(param.choices)} choices")
    if param.required:
        parts.append("required")
    return f" ({', '.join(parts)})" if parts else ""


def _num(value: float | None) -> str:
    if value is None:
        return "…"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def draft_embed(draft: Draft, servers: Sequence[str]) -> dict[str, Any]:
    workflow = draft.workflow
    found = [param_line(workflow, workflow.params[n]) for n in sorted(workflow.params)]
    missing = [n for n in EXPECTED[workflow.kind] if n not in workflow.params]
    lines = [
        f"A **{workflow.kind.value}** workflow with {len(workflow.graph)} nodes, saving from "
        + ", ".join(escape_user_text(o, 20) for o in workflow.outputs)
        + ".",
        "",
        "**Found:**",
        *(found or ["nothing it can bind"]),
    ]
    if missing:
        lines += ["", "**Not bound** (the file's own values are used): " + ", ".join(missing)]
    lines += ["", "**Runs on:** " + (", ".join(servers) or "no server right now")]
    lines += ["", "Confirm to add it to /generate, Adjust to bind a parameter elsewhere, or Cancel."]
    return {
        "title": f"Add workflow `{draft.name}`?",
        "description": _fit("\n".join(lines), 4000),
        "footer": {"text": "Only you can see this; it expires in 15 minutes."},
    }


def param_options(draft: Draft) -> list[Option]:
    """Adjust, step 1: which parameter to (re)bind."""
    options = []
    for name in BINDABLE:
        param = draft.workflow.params.get(name)
        now = f"now {param.targets[0].node}.{param.targets[0].input}" if param else "not bound"
        options.append((name, name, escape_user_text(now, 90)))
    return options[:MAX_OPTIONS]


def node_options(workflow: Workflow, nodes: Sequence[str]) -> list[Option]:
    """Adjust, step 2: the nodes that have an input the parameter fits."""
    return [
        (
            _label(f"{node} · {node_title(workflow.graph[node])}"),
            node,
            _label(class_of(workflow.graph, node)),
        )
        for node in nodes[:MAX_OPTIONS]
    ]


def input_options(workflow: Workflow, node: str, names: Sequence[str]) -> list[Option]:
    """Adjust, step 3: the node's literal inputs the parameter fits, with their current values."""
    values = inputs_of(workflow.graph, node)
    return [(_label(name), name, _label(f"now {values.get(name)!r}")) for name in names[:MAX_OPTIONS]]


def _label(text: str) -> str:
    flat = " ".join(str(text).split())
    return (flat if len(flat) <= 100 else flat[:99] + "…") or "?"


def list_embed(
    workflows: Sequence[Workflow], runs_on: Mapping[str, Sequence[str]], uploaded: frozenset[str]
) -> dict[str, Any]:
    lines = []
    for workflow in workflows:
        where = ", ".join(runs_on.get(workflow.name, ())) or "no server right now"
        added = " · added from Discord" if workflow.name in uploaded else ""
        description = f" — {escape_user_text(workflow.description, 100)}" if workflow.description else ""
        lines.append(f"**{workflow.name}** ({workflow.kind.value}{added}){description}\n  runs on: {where}")
    return {"title": "Workflows", "description": _fit("\n".join(lines) or "No workflows are loaded.", 4000)}


def info_embed(
    workflow: Workflow, models: Sequence[str], runs_on: Sequence[str], problems: Sequence[str], uploaded: bool
) -> dict[str, Any]:
    params = [param_line(workflow, workflow.params[n]) for n in sorted(workflow.params)]
    fields = [
        {"name": "Parameters", "value": _fit("\n".join(params) or "none", 1024)},
        {"name": "Models it needs", "value": _fit(", ".join(_code(m) for m in models) or "none", 1024)},
        {"name": "Runs on", "value": _fit(", ".join(runs_on) or "no server right now", 1024)},
    ]
    if problems:
        why = "\n".join(escape_user_text(p, 200) for p in problems[:5])
        fields.append({"name": "Why not elsewhere", "value": _fit(why, 1024)})
    origin = "added from Discord" if uploaded else "ships with the bot"
    description = escape_user_text(workflow.description, 300) if workflow.description else ""
    return {
        "title": f"Workflow {workflow.name}",
        "description": f"A {workflow.kind.value} workflow, {origin}. {description}".strip(),
        "fields": fields,
    }


def problems_text(problems: Sequence[str], limit: int = 5) -> str:
    shown = "\n".join(f"• {escape_user_text(p, 300)}" for p in problems[:limit])
    more = f"\n… and {len(problems) - limit} more (see the log)" if len(problems) > limit else ""
    return _fit(shown + more, 1800)


def _code(text: str) -> str:
    """A file name as inline code: one line, bounded, without backticks (so it cannot close the span)."""
    flat = " ".join(text.split()).replace("`", "'")[:80]
    return f"`{flat}`" if flat else "?"


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
