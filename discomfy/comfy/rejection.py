"""Turns ComfyUI's ``POST /prompt`` 400 body into one sentence a Discord user understands.

ComfyUI answers a graph it will not run with ``{"error": {type, message, details, extra_info},
"node_errors": {node_id: {"errors": [{type, message, details, extra_info: {input_name, input_config,
received_value}}], "class_type": ...}}}``. We name the *bot option* at fault when the caller can map a node
input back to one (``steps: 500 is above the maximum 150``), else the node's title and input.

Pure: no I/O. Never raises on a malformed body; it falls back to ComfyUI's own words.

``scrub_paths`` is the one filter of server file paths out of any text ComfyUI wrote that a user may read: a
rejection (here), a node's ``execution_error`` (``progress.py``, ``types.py``). A path becomes its file name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Longest list of allowed values we spell out in a message.
MAX_CHOICES_SHOWN = 8


#: Characters that end a path in running text (quotes, brackets, separators of a message).
_STOP = "\\s'\"`<>|*?,;()\\[\\]{}"
#: A Windows path: ``C:\\dir\\…\\name``, ``C:/dir/name`` or a UNC ``\\\\host\\share\\name``, doubled backslashes (a
#: Python repr) included. Folders may hold spaces (``Program Files``); the last part may not.
_WINDOWS_PATH = re.compile(
    rf"(?<![\w\\/])(?:[A-Za-z]:[\\/]+|\\{{2,4}}(?=[^\\/\s]))(?:[^\\/\n'\"`<>|*?:]+[\\/]+)*[^\\/:{_STOP}]*"
)
#: A POSIX path: ``/a/…/name`` or ``~/…/name``, at least two parts, not inside a URL or a word (``and/or``).
_POSIX_PATH = re.compile(rf"(?<![\w.:/~\\-])~?/+[^/{_STOP}]+(?:/+[^/{_STOP}]*)+")
_LAST_PART = re.compile(r"[^\\/]+")


def scrub_paths(text: str) -> str:
    """``text`` with every absolute file path (POSIX, ``~/``, Windows, UNC) cut down to its last part.

    ComfyUI's errors quote its own files (``No such file or directory: '/opt/comfy/input/x.png'``,
    ``C:\\ComfyUI\\models\\x.safetensors``): a user may read the file name, never where the server keeps it.
    """
    return _POSIX_PATH.sub(_last_part, _WINDOWS_PATH.sub(_last_part, text))


def _last_part(match: re.Match[str]) -> str:
    parts = _LAST_PART.findall(match.group(0))
    return parts[-1] if parts else ""


@dataclass(frozen=True)
class InputProblem:
    node_id: str
    class_type: str
    kind: str
    input_name: str
    message: str
    details: str
    received: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


def parse_node_errors(body: Any) -> list[InputProblem]:
    """Every per-input problem in a /prompt answer, in node-id order."""
    if not isinstance(body, dict) or not isinstance(body.get("node_errors"), dict):
        return []
    problems = []
    for node_id, entry in sorted(body["node_errors"].items(), key=lambda kv: _node_sort_key(kv[0])):
        if not isinstance(entry, dict):
            continue
        for error in entry.get("errors") or []:
            if isinstance(error, dict):
                problems.append(_problem(str(node_id), str(entry.get("class_type") or "?"), error))
    return problems


def describe_rejection(
    body: Any,
    *,
    option_names: Mapping[tuple[str, str], str] | None = None,
    node_titles: Mapping[str, str] | None = None,
) -> str:
    """One user-facing sentence (or a few, joined by '; ') for a /prompt rejection, without server paths."""
    return scrub_paths(_rejection_words(body, option_names=option_names, node_titles=node_titles))


def _rejection_words(
    body: Any,
    *,
    option_names: Mapping[tuple[str, str], str] | None,
    node_titles: Mapping[str, str] | None,
) -> str:
    names = option_names or {}
    titles = node_titles or {}
    problems = parse_node_errors(body)
    if problems:
        return "; ".join(_describe(p, names, titles) for p in problems[:5])
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind = str(error.get("type") or "")
        extra = _dict(error.get("extra_info"))
        if kind == "missing_node_type":
            class_type = extra.get("class_type") or "?"
            return f"the image server does not have the node type '{class_type}' (a custom node may not be installed)"
        if kind == "prompt_no_outputs":
            return "the workflow has no output node (add a Save Image node)"
        message = str(error.get("message") or "the image server refused the workflow")
        details = str(error.get("details") or "")
        return f"{message}: {details}" if details and details != message else message
    if isinstance(error, str) and error:
        return error
    return "the image server refused the workflow without saying why"


def _describe(p: InputProblem, names: Mapping[tuple[str, str], str], titles: Mapping[str, str]) -> str:
    name = names.get((p.node_id, p.input_name)) or f"{titles.get(p.node_id) or p.class_type} › {p.input_name}"
    if p.kind == "value_bigger_than_max" and p.maximum is not None:
        return f"{name}: {_show(p.received)} is above the maximum {_show(p.maximum)}"
    if p.kind == "value_smaller_than_min" and p.minimum is not None:
        return f"{name}: {_show(p.received)} is below the minimum {_show(p.minimum)}"
    if p.kind == "value_not_in_list":
        if not p.choices:
            return f"{name}: '{p.received}' is not available on the image server"
        shown = ", ".join(p.choices[:MAX_CHOICES_SHOWN])
        more = f" (and {len(p.choices) - MAX_CHOICES_SHOWN} more)" if len(p.choices) > MAX_CHOICES_SHOWN else ""
        return f"{name}: '{p.received}' is not one of: {shown}{more}"
    if p.kind == "required_input_missing":
        return f"{name}: this input is missing"
    return f"{name}: {p.message}" + (f" ({p.details})" if p.details and p.details != p.input_name else "")


def _problem(node_id: str, class_type: str, error: dict[str, Any]) -> InputProblem:
    extra = _dict(error.get("extra_info"))
    config = extra.get("input_config")
    options: dict[str, Any] = {}
    choices: tuple[str, ...] = ()
    if isinstance(config, list) and config:
        if isinstance(config[0], list):
            choices = tuple(str(c) for c in config[0])
        if len(config) > 1 and isinstance(config[1], dict):
            options = config[1]
    return InputProblem(
        node_id=node_id,
        class_type=class_type,
        kind=str(error.get("type") or ""),
        input_name=str(extra.get("input_name") or error.get("details") or "?"),
        message=str(error.get("message") or ""),
        details=str(error.get("details") or ""),
        received=extra.get("received_value"),
        minimum=_number(options.get("min")),
        maximum=_number(options.get("max")),
        choices=choices,
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _node_sort_key(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 30, node_id)
