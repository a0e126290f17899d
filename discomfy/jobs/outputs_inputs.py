"""Temporary inputs of the output store: Discord attachments sent to ComfyUI, stored once per content.

How it works: ``inputs/<sha256>.<ext>`` under the data directory, written atomically. Each ``save`` counts
one use of the file and each ``release`` gives one back; the file is removed with the last use. The counts
live in memory: on start, ``reconcile`` rebuilds them from the active jobs whose params mention the hash (the
path, or the name the file was uploaded to ComfyUI under, keeps it) and removes inputs nobody uses.

Never: remove an input an active job of this process still counts; touch a path outside ``inputs/``; do
file I/O on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discomfy.jobs.outputs_files import (
    OutputStoreError,
    Writer,
    extension_of,
    remove,
    remove_found,
    sha256_hex,
    target_of_temp,
    user_message_for,
    walk_files,
    write_atomic,
)
from discomfy.jobs.state import Job

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class InputsReconciled:
    removed: int = 0
    in_use: int = 0
    temps_removed: int = 0


class InputFiles:
    """The ``inputs/`` directory and the count of uses of each file in it."""

    def __init__(self, directory: Path, writer: Writer) -> None:
        self.directory = directory
        self._writer = writer
        self._lock = asyncio.Lock()
        self._uses: dict[Path, int] = {}

    async def save(self, data: bytes, extension: str) -> Path:
        ext = extension_of(f"x.{extension.lstrip('.')}")
        async with self._lock:
            try:
                path = await asyncio.to_thread(self._store, data, ext)
            except OSError as exc:
                log.error("could not save an input of %d bytes: %s", len(data), exc)
                raise OutputStoreError(user_message_for(exc), f"saving an input: {exc}") from exc
            self._uses[path] = self._uses.get(path, 0) + 1
        return path

    def _store(self, data: bytes, ext: str) -> Path:
        path = self.directory / f"{sha256_hex(data)}.{ext}"
        # Content-addressed and written atomically: a file of the right size under this name is this content.
        if not (path.is_file() and path.stat().st_size == len(data)):
            write_atomic(path, data, self._writer)
        return path

    async def release(self, path: Path) -> None:
        path = Path(path)
        if path.parent != self.directory:
            log.warning("release_input: %s is not a stored input; left alone", path)
            return
        async with self._lock:
            left = self._uses.get(path, 0) - 1
            if left > 0:
                self._uses[path] = left
                return
            self._uses.pop(path, None)
            try:
                await asyncio.to_thread(remove, path)
            except OSError as exc:
                log.warning("could not remove input %s: %s", path, exc)

    def uses(self, path: Path) -> int:
        return self._uses.get(Path(path), 0)

    async def reconcile(self, active: Iterable[Job], now: float, orphan_age: float) -> InputsReconciled:
        """Count active jobs' uses of each input; remove leftover temps and unused inputs older than orphan_age."""
        uses: dict[str, int] = {}
        for job in active:
            for sha in set(_hashes_in(job.params.values())):
                uses[sha] = uses.get(sha, 0) + 1
        removed, in_use, temps = 0, 0, 0
        async with self._lock:
            for file in await asyncio.to_thread(lambda: list(walk_files(self.directory))):
                if target_of_temp(file.path) is not None:
                    temps += await asyncio.to_thread(remove_found, file, "an interrupted write")
                    continue
                count = uses.get(file.path.name.split(".", 1)[0], 0)
                if count or file.path in self._uses:
                    self._uses[file.path] = max(count, self._uses.get(file.path, 0))
                    in_use += 1
                elif now - file.mtime >= orphan_age:
                    removed += await asyncio.to_thread(remove_found, file, "an input no active job uses")
        return InputsReconciled(removed, in_use, temps)


def _hashes_in(values: Iterable[Any]) -> Iterable[str]:
    """Every sha256 hex string inside job params (nested lists and dicts included)."""
    for value in values:
        if isinstance(value, str):
            yield from _SHA256.findall(value)
        elif isinstance(value, dict):
            yield from _hashes_in(value.values())
        elif isinstance(value, list | tuple):
            yield from _hashes_in(value)
