"""Rule 1 of STYLE.md: pure modules import no asyncio, aiohttp, websockets, nextcord or sqlite."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "discomfy"
PURE_MODULES = [
    "config.py",
    "errors.py",
    "outcome.py",
    "bot/render.py",
    "jobs/admission.py",
    "bot/custom_ids.py",
    "bot/permissions.py",
    "bot/render_job.py",
    "comfy/types.py",
    "comfy/events.py",
    "comfy/protocol.py",
    "comfy/graph_info.py",
    "comfy/progress.py",
    "workflows/__init__.py",
    "workflows/model.py",
    "workflows/graph.py",
    "workflows/objectinfo.py",
    "workflows/manifest.py",
    "workflows/detect.py",
    "workflows/bind.py",
    "workflows/validate.py",
    "workflows/registry.py",
    "jobs/state.py",
    "jobs/records.py",
    "jobs/schema.py",
    "jobs/fairqueue.py",
    "jobs/rechoice.py",
    "media/plan.py",
    "media/sniff.py",
    "media/bombs.py",
    "workflows/uploads.py",
    "workflows/upload_files.py",
    "bot/render_workflows.py",
    "metrics.py",
]
FORBIDDEN = {"asyncio", "aiohttp", "websockets", "nextcord", "sqlite3", "aiosqlite", "tenacity"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_io_library(module: str) -> None:
    assert imported_roots(PACKAGE / module) & FORBIDDEN == set()
