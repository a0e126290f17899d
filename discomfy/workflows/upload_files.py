"""The uploads folder: where a confirmed ``/workflow add`` is written, and ``/workflow remove`` deletes it.

How it works: ``<data_dir>/workflows/NAME.json`` (the graph, as uploaded, re-serialised from the checked parse)
and ``NAME.toml`` (the manifest we wrote, ``uploads.manifest_text``), both created 0600 in a 0700 folder. A name
is written only if neither file exists (``O_EXCL``: two confirms of one name cannot both win) and never if
the shipped folder has it; the graph is written last, through a temporary file linked into place, so the
registry (which lists ``*.json``) never reads a half-written graph. The names come from ``uploads.check_name``
and are checked again here, so no path can leave the folder.

Never: overwrite or remove a file that is not an upload (only ``NAME.json`` / ``NAME.toml`` in this folder), or
run on the event loop (callers use ``asyncio.to_thread``).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from discomfy.errors import BadInputError
from discomfy.workflows.model import Graph
from discomfy.workflows.uploads import check_name


class UploadFolder:
    def __init__(self, folder: Path, shipped: Path) -> None:
        self.folder = folder
        self.shipped = shipped

    def _paths(self, name: str) -> tuple[Path, Path]:
        name = check_name(name)
        return self.folder / f"{name}.json", self.folder / f"{name}.toml"

    def taken(self, name: str) -> str | None:
        """Why ``name`` cannot be added now, or None."""
        graph, manifest = self._paths(name)
        if (self.shipped / f"{name}.json").exists():
            return f"`{name}` is a workflow that ships with the bot; pick another name."
        if graph.exists() or manifest.exists():
            return f"A workflow called `{name}` was already added; `/workflow remove {name}` it first."
        return None

    def save(self, name: str, graph: Graph, manifest: str) -> Path:
        refusal = self.taken(name)
        if refusal is not None:
            raise BadInputError(refusal)
        graph_path, manifest_path = self._paths(name)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_new(manifest_path, manifest.encode("utf-8"))
        temporary = self.folder / f".{name}.json.part"
        try:
            temporary.unlink(missing_ok=True)
            _write_new(temporary, json.dumps(graph, ensure_ascii=False, indent=1).encode("utf-8"))
            os.link(temporary, graph_path)  # fails if it exists: never replaces one
        except BaseException:
            manifest_path.unlink(missing_ok=True)
            raise
        finally:
            temporary.unlink(missing_ok=True)
        return graph_path

    def remove(self, name: str) -> bool:
        """Delete an upload's two files; False when there was none."""
        graph, manifest = self._paths(name)
        found = graph.exists() or manifest.exists()
        for path in (graph, manifest):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return found


def _write_new(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError as exc:
        raise BadInputError(f"A workflow file {path.name} already exists; remove that workflow first.") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
