"""The package's layering, checked from its source: no import cycles, no imports tucked into functions, and the
lower layers never reach up into the bot or into Discord's library.

    app.py                   wires everything (may import every layer)
    bot/                     Discord: nextcord lives here and only here
    jobs/                    admission, the fair queue, the job service and runner, the stores
    comfy/  workflows/  media/
    config.py  errors.py  outcome.py  logs.py  retry.py   (the ground floor)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "discomfy"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level?) for every import in the file; ``from x import y`` counts as
    ``x.y`` when that is one of our modules, else ``x``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    # Imports under ``if TYPE_CHECKING:`` at module level count as module level (they never run).
    for node in tree.body:
        if isinstance(node, ast.If):
            top_level.update(id(child) for child in ast.walk(node))
    found: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((full if full in MODULES else node.module, node.lineno, id(node) in top_level))
    return found


def our_imports(name: str) -> set[str]:
    return {target for target, _, _ in imports_of(MODULES[name]) if target in MODULES and target != name}


def test_the_module_list_is_found() -> None:
    assert {"discomfy.app", "discomfy.bot.client", "discomfy.jobs.service", "discomfy.comfy.engine"} <= set(MODULES)


def test_no_module_imports_inside_a_function() -> None:
    tucked = [
        f"{name}:{line} imports {target}"
        for name, path in MODULES.items()
        for target, line, top in imports_of(path)
        if not top
    ]
    assert tucked == []


def test_there_is_no_import_cycle() -> None:
    graph = {name: our_imports(name) for name in MODULES}
    # A package's __init__ re-exporting its modules is not a cycle of logic: ignore edges into a package.
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    graph = {
        name: {t for t in targets if t not in packages or name.startswith(t + ".") is False}
        for name, targets in graph.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


LOWER = ("discomfy.jobs", "discomfy.comfy", "discomfy.workflows", "discomfy.media")
GROUND = (
    "discomfy.config",
    "discomfy.errors",
    "discomfy.outcome",
    "discomfy.logs",
    "discomfy.retry",
    "discomfy.metrics",
)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _under(n, LOWER + GROUND)))
def test_lower_layers_never_import_the_bot_the_app_or_nextcord(name: str) -> None:
    targets = {target for target, _, _ in imports_of(MODULES[name])}
    assert not [t for t in targets if _under(t, ("discomfy.bot", "discomfy.app", "nextcord"))]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _under(n, GROUND)))
def test_the_ground_floor_imports_no_other_layer(name: str) -> None:
    targets = {t for t, _, _ in imports_of(MODULES[name]) if t.startswith("discomfy")}
    assert all(_under(t, GROUND) for t in targets), targets


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if _under(n, ("discomfy.comfy", "discomfy.workflows", "discomfy.media")))
)
def test_comfy_workflows_and_media_never_import_the_job_layer(name: str) -> None:
    targets = {t for t, _, _ in imports_of(MODULES[name])}
    assert not [t for t in targets if _under(t, ("discomfy.jobs",))]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _under(n, ("discomfy.bot",))))
def test_the_bot_never_reaches_into_comfyui_internals(name: str) -> None:
    """The bot talks to the job service; the engine, the stream and the HTTP client are the service's business
    (the pool is read for /status, the progress snapshot is what the bot draws)."""
    targets = {t for t, _, _ in imports_of(MODULES[name])}
    allowed = {"discomfy.comfy.progress", "discomfy.comfy.pool"}
    assert not [t for t in targets if _under(t, ("discomfy.comfy",)) and t not in allowed]


def test_only_the_bot_and_app_import_nextcord() -> None:
    users = sorted(n for n, p in MODULES.items() if any(_under(t, ("nextcord",)) for t, _, _ in imports_of(p)))
    assert all(_under(n, ("discomfy.bot", "discomfy.app")) for n in users), users
