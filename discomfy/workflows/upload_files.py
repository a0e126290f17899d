"""The uploads folder: where a confirmed ``/workflow add`` is written, and ``/workflow remove`` deletes it.

How it works: an upload belongs to the Discord server it was added in, so it lives in that server's folder:
``<data_dir>/workflows/<guild id>/NAME.json`` (the graph, as uploaded, re-serialised from the checked parse)
and ``NAME.toml`` (the manifest we wrote, ``uploads.manifest_text``), both created 0600 in 0700 folders. Names
are one namespace: a name is written only if no server's folder has it (and ``O_EXCL``: two confirms of one
name in one server cannot both win; of two servers racing, the registry loads the lower guild id's and the
other confirm removes its files) and never if the shipped folder has it; the graph is written last, through a
temporary file linked into place, so the registry (which lists ``*.json``) never reads a half-written graph.
The names come from ``uploads.check_name`` and are checked again here, so no path can leave the folder.

Never: overwrite or remove a file that is not an upload (only ``NAME.json`` / ``NAME.toml`` in a server's
folder), remove another server's upload, or run on the event loop (callers use ``asyncio.to_thread``).
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

    def guild_folder(self, guild_id: int) -> Path:
        if guild_id <= 0:  # a DM has no server to own an upload
            raise BadInputError("Workflows can only be added, and removed, in a server.")
        return self.folder / str(guild_id)

    def _paths(self, name: str, guild_id: int) -> tuple[Path, Path]:
        name = check_name(name)
        folder = self.guild_folder(guild_id)
        return folder / f"{name}.json", folder / f"{name}.toml"

    def owner(self, name: str) -> int | None:
        """The server whose folder has an upload ``name`` (either file), or None."""
        name = check_name(name)
        if not self.folder.is_dir():
            return None
        for folder in sorted(self.folder.iterdir()):
            found = (folder / f"{name}.json").exists() or (folder / f"{name}.toml").exists()
            if folder.is_dir() and folder.name.isdigit() and found:
                return int(folder.name)
        return None

    def taken(self, name: str, guild_id: int) -> str | None:
        """Why ``name`` cannot be added in server ``guild_id`` now, or None."""
        name = check_name(name)
        if (self.shipped / f"{name}.json").exists():
            return f"`{name}` is a workflow that ships with the bot; pick another name."
        owner = self.owner(name)
        if owner == guild_id:
            return f"A workflow called `{name}` was already added; `/workflow remove {name}` it first."
        if owner is not None:  # another server's: say only that the name is taken
            return f"The name `{name}` is taken; pick another name."
        return None

    def save(self, name: str, graph: Graph, manifest: str, *, guild_id: int) -> Path:
        refusal = self.taken(name, guild_id)
        if refusal is not None:
            raise BadInputError(refusal)
        graph_path, manifest_path = self._paths(name, guild_id)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        graph_path.parent.mkdir(mode=0o700, exist_ok=True)
        _write_new(manifest_path, manifest.encode("utf-8"))
        temporary = graph_path.parent / f".{name}.json.part"
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

    def remove(self, name: str, *, guild_id: int) -> bool:
        """Delete the two files of server ``guild_id``'s upload ``name``; False when it has none (another
        server's upload of that name is never touched)."""
        graph, manifest = self._paths(name, guild_id)
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
