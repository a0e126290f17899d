"""The output store: every result file on disk, with its row, before delivery starts — and nothing owed is lost.

How it works:
- Layout, under the data directory (``root``); rows store paths relative to it, with forward slashes:
      outputs/<yyyy-mm>/<job_id>_<index>.<ext>   a job's results (month of saving, UTC)
      inputs/<sha256>.<ext>                      temporary inputs (a Discord attachment), one per content
  A write in progress is ``.<name>.<8 hex>.part`` next to its target (see ``outputs_files.write_atomic``).
- ``save(job, files)`` first inspects every file in a worker thread (``outputs_files.inspect``): what it is comes
  from its bytes, never from the server's name — the stored file is named with the extension of what it is, and
  a file that is no picture or video we deliver (a script named ``.png``), or a decompression bomb, is skipped
  with its reason in the log. If none is left, ``OutputStoreError`` with ``failure`` ``BAD_OUTPUT`` (or
  ``TOO_LARGE`` when a bomb was among them) ends the job. Then it writes every kept file (mode 0600; temporary
  file, fsync, rename; in one worker thread, which also hashes them), then adds one ``outputs`` row per file.
  It returns only when files and rows are both there, so delivery starts from the disk, and a restart finds
  the rows (``JobStore.undelivered_outputs``).
  If anything fails, the files and rows of that call are removed and ``OutputStoreError`` says why in user
  words (disk full, folder unwritable). A re-save of the same job (after a restart) reuses identical files.
- Caps (``max_files``, ``max_bytes``) count every file still on disk. ``enforce_caps`` (call it after each
  delivery and on start) evicts only *delivered* files, oldest delivery first, that are not the source of an
  active job (``JobStore.delivered_outputs_oldest_first`` leaves those out). Evicting deletes the file and
  marks the row evicted (``JobStore.evict_output``); the row keeps its Discord attachment URL, so buttons on
  the result fall back to the attachment. Undelivered files are never evicted, even past the cap.
- Claiming a source: a job that uses a stored output as its source (upscale / animate: ``parent_id`` and
  ``source_index``) must create its row inside ``async with store.claim_source(job_id, index) as source``.
  Claims, eviction passes and reconciling share one asyncio lock, so an eviction pass that read its candidate
  list before the row existed cannot delete the file after it: the pass either ends before the claim starts
  or starts after the row exists (and the row, while its job is active, keeps the file out of the list).
- ``reconcile`` (on start) matches the directory with the rows: leftover ``.part`` files are deleted; files
  without a row are deleted once older than ``ORPHAN_AGE`` (younger ones may be a save between rename and
  row); rows whose file is gone are marked evicted — for an undelivered one that is a lost result: logged as an
  error, the job's ``error`` is set and the row is listed in the report for the caller to tell the user.
- Inputs (``outputs_inputs.py``) are stored once per content hash and counted: each ``save_input`` is one
  use, each ``release_input`` gives one back, and the file goes with the last. On start, ``reconcile`` counts
  the active jobs whose params mention an input's hash (its path or uploaded name) and removes the rest.
- The blocking work (writing, probing with Pillow / PyAV, walking, removing) is in ``outputs_files.py``.

Never: delete an undelivered file or the source of an active job; overwrite a file a row points at (a changed
re-save gets a new name); leave a half-written file under a final name; run file I/O on the event loop (all
of it goes through ``asyncio.to_thread``); let an ``OSError`` from saving escape untranslated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from discomfy.comfy.stream import FetchedFile
from discomfy.config import MIB, StorageSettings
from discomfy.errors import DiscomfyError
from discomfy.jobs.outputs_files import (
    NOTHING_DELIVERABLE,
    Inspected,
    OutputStoreError,
    Probe,
    Refused,
    Writer,
    default_writer,
    has_content,
    inspect,
    read_bytes,
    remove,
    remove_empty_dirs,
    remove_found,
    remove_quietly,
    sha256_hex,
    target_of_temp,
    user_message_for,
    walk_files,
    write_atomic,
)
from discomfy.jobs.outputs_inputs import InputFiles
from discomfy.jobs.records import StoredOutput
from discomfy.jobs.state import Job, JobId
from discomfy.jobs.store import JobStore, JobStoreError
from discomfy.outcome import Failure

__all__ = ["LOST_MESSAGE", "ORPHAN_AGE", "OutputStore", "OutputStoreError", "ReconcileReport"]

log = logging.getLogger(__name__)

#: A file without a row younger than this may be a save between its rename and its row: left alone.
ORPHAN_AGE = 60.0
#: Set as the job's ``error`` when reconciling finds one of its undelivered files gone.
LOST_MESSAGE = "The result file of this job was lost from the bot's disk before it could be sent. Please run it again."


@dataclass(frozen=True)
class ReconcileReport:
    """What ``reconcile`` did; counts of files unless said otherwise."""

    temps_removed: int = 0
    orphans_removed: int = 0
    #: Files without a row, too young to be sure they are not a save in progress.
    orphans_kept: int = 0
    #: Delivered files missing from disk: their rows are now marked evicted (buttons use the attachment).
    missing_delivered: int = 0
    #: Undelivered files missing from disk (rows now marked evicted, job ``error`` set): tell their owners.
    lost: tuple[StoredOutput, ...] = ()
    inputs_removed: int = 0
    inputs_in_use: int = 0

    @property
    def lost_jobs(self) -> frozenset[JobId]:
        return frozenset(o.job_id for o in self.lost)

    @property
    def changed(self) -> bool:
        return any((self.temps_removed, self.orphans_removed, self.missing_delivered, self.lost, self.inputs_removed))


@dataclass(frozen=True)
class _Plan:
    index: int
    data: bytes
    #: What the file is, from its bytes: its extension, mime type and facts.
    inspected: Inspected
    #: Where the file goes, relative to root, unless a row already points there with other content.
    rel: str
    old: StoredOutput | None


@dataclass(frozen=True)
class _Written:
    plan: _Plan
    rel: str
    sha256: str
    mime: str
    facts: Probe
    #: The old row's file already had this content: nothing was written.
    reused: bool


class OutputStore:
    """Result files and temporary inputs under ``root`` (the data directory), with rows in ``jobs``."""

    def __init__(
        self,
        root: Path,
        jobs: JobStore,
        *,
        max_files: int = 100,
        max_bytes: int = 2048 * MIB,
        clock: Callable[[], float] = time.time,
        writer: Writer = default_writer,
    ) -> None:
        self.root = Path(root)
        self.jobs = jobs
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._clock = clock
        self._writer = writer
        #: Eviction passes, source claims and reconciling: see "Claiming a source" above.
        self._lock = asyncio.Lock()
        self._inputs = InputFiles(self.root / "inputs", writer)
        #: Jobs whose ``save`` is running: their files may be on disk before their rows.
        self._saving: dict[str, int] = {}

    @classmethod
    def from_settings(cls, storage: StorageSettings, jobs: JobStore, **kwargs: Any) -> OutputStore:
        return cls(
            storage.data_dir, jobs, max_files=storage.max_output_files, max_bytes=storage.max_output_bytes, **kwargs
        )

    @property
    def outputs_dir(self) -> Path:
        return self.root / "outputs"

    @property
    def inputs_dir(self) -> Path:
        return self._inputs.directory

    def path(self, output: StoredOutput) -> Path:
        rel = PurePosixPath(output.path)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"output path {output.path!r} is not inside the data directory")
        return self.root.joinpath(*rel.parts)

    # -- saving and reading results --

    async def save(self, job: Job, files: Sequence[FetchedFile]) -> list[StoredOutput]:
        """Write ``files`` (index = position) and their rows; both are there when this returns.

        Raises ``OutputStoreError`` (with a user message) when the disk is full or the folder unwritable, or
        the rows cannot be written; then nothing of this call is left on disk or in the database.
        """
        if not files:
            return []
        kept = await asyncio.to_thread(self._inspect_all, job, files)
        existing = {o.index: o for o in await self.jobs.outputs(job.id)}
        month = time.strftime("%Y-%m", time.gmtime(self._clock()))
        plans = []
        for index, (fetched, inspected) in enumerate(kept):
            rel = f"outputs/{month}/{job.id}_{index}.{inspected.ext}"
            plans.append(_Plan(index, fetched.data, inspected, rel, existing.get(index)))
        self._saving[job.id] = self._saving.get(job.id, 0) + 1
        try:
            return await self._save(job, plans)
        finally:
            left = self._saving.pop(job.id) - 1
            if left:
                self._saving[job.id] = left

    @staticmethod
    def _inspect_all(job: Job, files: Sequence[FetchedFile]) -> list[tuple[FetchedFile, Inspected]]:
        """In a worker thread: the files fit to keep, by their bytes; the rest logged, or an error if none is."""
        kept: list[tuple[FetchedFile, Inspected]] = []
        refused: list[Refused] = []
        for fetched in files:
            verdict = inspect(fetched.data)
            if isinstance(verdict, Refused):
                name = fetched.output.filename[:80]
                log.warning("job %s: output %r from the server refused: %s", job.id, name, verdict.reason)
                refused.append(verdict)
            else:
                kept.append((fetched, verdict))
        if not kept:
            too_large = any(r.failure is Failure.TOO_LARGE for r in refused)
            raise OutputStoreError(
                NOTHING_DELIVERABLE,
                f"job {job.id}: none of its {len(files)} output file(s) is a picture or video fit to deliver",
                failure=Failure.TOO_LARGE if too_large else Failure.BAD_OUTPUT,
            )
        return kept

    async def _save(self, job: Job, plans: list[_Plan]) -> list[StoredOutput]:
        try:
            written = await asyncio.to_thread(self._write_all, plans)
        except OSError as exc:
            log.error("job %s: could not save its %d output file(s): %s", job.id, len(plans), exc)
            raise OutputStoreError(user_message_for(exc), f"saving outputs of job {job.id}: {exc}") from exc
        now = self._clock()
        stored: list[StoredOutput] = []
        added: list[StoredOutput] = []
        try:
            for w in written:
                old = w.plan.old
                if w.reused and old is not None:
                    stored.append(old)
                    continue
                if old is not None:
                    await self.jobs.delete_output(job.id, old.index)
                row = StoredOutput(
                    job_id=job.id,
                    index=w.plan.index,
                    kind=w.facts.kind,
                    path=w.rel,
                    mime=w.mime,
                    size=len(w.plan.data),
                    sha256=w.sha256,
                    created_at=now,
                    width=w.facts.width,
                    height=w.facts.height,
                    duration=w.facts.duration,
                )
                added.append(await self.jobs.add_output(row))
                stored.append(row)
        except BaseException as exc:
            for row in added:
                with contextlib.suppress(DiscomfyError):
                    await self.jobs.delete_output(row.job_id, row.index)
            fresh = [self.root / w.rel for w in written if not w.reused]
            await asyncio.to_thread(remove_quietly, fresh)
            if isinstance(exc, JobStoreError):
                log.error("job %s: could not record its output files: %s", job.id, exc)
                raise OutputStoreError(exc.user_message, str(exc)) from exc
            raise
        # A changed re-save got new names: the old files have no row now.
        replaced = [self.path(w.plan.old) for w in written if w.plan.old and not w.reused and w.plan.old.on_disk]
        replaced = [p for p in replaced if p not in {self.root / w.rel for w in written}]
        if replaced:
            await asyncio.to_thread(remove_quietly, replaced)
        log.info("job %s: saved %d output file(s), %d bytes", job.id, len(stored), sum(o.size for o in stored))
        return stored

    def _write_all(self, plans: list[_Plan]) -> list[_Written]:
        """In a worker thread: hash, probe and write every file; on any error remove what this call wrote."""
        done: list[_Written] = []
        try:
            for plan in plans:
                sha = sha256_hex(plan.data)
                mime, facts, ext = plan.inspected.mime, plan.inspected.facts, plan.inspected.ext
                old = plan.old
                old_path = self.path(old) if old is not None and old.on_disk else None
                if old is not None and old_path is not None and old.sha256 == sha and has_content(old_path, sha):
                    done.append(_Written(plan, old.path, sha, mime, facts, reused=True))
                    continue
                rel = plan.rel
                if old is not None and old.path == rel:
                    # Never overwrite a file a row points at: the new content gets its own name.
                    rel = f"{rel[: -len(ext) - 1]}_{sha[:8]}.{ext}"
                write_atomic(self.root / rel, plan.data, self._writer)
                done.append(_Written(plan, rel, sha, mime, facts, reused=False))
        except BaseException:
            remove_quietly([self.root / w.rel for w in done if not w.reused])
            raise
        return done

    async def read(self, output: StoredOutput) -> bytes | None:
        """The file's bytes, or None when it was evicted or is missing on disk."""
        if not output.on_disk:
            return None
        return await asyncio.to_thread(read_bytes, self.path(output))

    async def source_of(self, job_id: str, index: int) -> StoredOutput | None:
        """The row of output ``index`` of ``job_id`` (evicted ones too: then use its ``attachment_url``)."""
        for output in await self.jobs.outputs(job_id):
            if output.index == index:
                return output
        return None

    async def mark_delivered(self, output: StoredOutput, attachment_url: str | None) -> StoredOutput:
        """The file is on Discord. Call ``enforce_caps`` after the job's delivery is complete."""
        return await self.jobs.mark_delivered(output.job_id, output.index, attachment_url)

    @contextlib.asynccontextmanager
    async def claim_source(self, job_id: str, index: int) -> AsyncIterator[StoredOutput | None]:
        """Hold eviction off while the caller creates the job that uses output ``index`` of ``job_id``::

            async with outputs.claim_source(parent.id, 0) as source:
                if source is None: ...               # no such output
                await jobs.create(child)             # parent_id=parent.id, source_index=0, state waiting
            # from here the active child row keeps the file; it may be evicted once the child is finished

        ``source.on_disk`` False means the file was already evicted: use ``source.attachment_url``. Do not call
        ``enforce_caps`` or ``reconcile`` inside the block (the lock is not re-entrant).
        """
        async with self._lock:
            yield await self.source_of(job_id, index)

    # -- caps --

    async def enforce_caps(self) -> list[StoredOutput]:
        """Evict delivered files, oldest delivery first, until under both caps; return the evicted rows."""
        async with self._lock:
            stored = await self.jobs.stored_outputs()
            count, total = len(stored), sum(o.size for o in stored)
            if count <= self.max_files and total <= self.max_bytes:
                return []
            evicted: list[StoredOutput] = []
            for candidate in await self.jobs.delivered_outputs_oldest_first():
                if count <= self.max_files and total <= self.max_bytes:
                    break
                try:
                    await asyncio.to_thread(remove, self.path(candidate))
                except OSError as exc:
                    log.warning("could not evict %s: %s", candidate.path, exc)
                    continue
                evicted.append(await self.jobs.evict_output(candidate.job_id, candidate.index))
                count, total = count - 1, total - candidate.size
            if evicted:
                log.info("evicted %d delivered output file(s) to stay under the caps", len(evicted))
            if count > self.max_files or total > self.max_bytes:
                log.warning(
                    "output store over its caps (%d files, %d bytes; caps %d, %d): the rest are undelivered "
                    "or sources of active jobs, which are never evicted",
                    count,
                    total,
                    self.max_files,
                    self.max_bytes,
                )
            return evicted

    # -- reconciling on start --

    async def reconcile(self) -> ReconcileReport:
        """Match the directory with the rows (see the module docstring); log and return what was done."""
        async with self._lock:
            now = self._clock()
            rows = await self.jobs.stored_outputs()
            found = await asyncio.to_thread(lambda: list(walk_files(self.outputs_dir)))
            on_disk = {f.path for f in found}
            missing_delivered, lost = 0, []
            for row in rows:
                if self.path(row) in on_disk:
                    continue
                if row.delivered:
                    await self.jobs.evict_output(row.job_id, row.index)
                    missing_delivered += 1
                    log.warning("reconcile: delivered file %s is missing; marked evicted", row.path)
                else:
                    lost.append(await self._mark_lost(row))
            known = {self.path(row) for row in rows}
            temps, removed, kept = 0, 0, 0
            for file in found:
                if file.path in known or self._being_saved(file.path):
                    continue
                if target_of_temp(file.path) is not None:
                    temps += await asyncio.to_thread(remove_found, file, "an interrupted write")
                elif now - file.mtime >= ORPHAN_AGE:
                    removed += await asyncio.to_thread(remove_found, file, "a file without a row")
                else:
                    kept += 1
            await asyncio.to_thread(remove_empty_dirs, self.outputs_dir)
            inputs = await self._inputs.reconcile(await self.jobs.active(), now, ORPHAN_AGE)
            report = ReconcileReport(
                temps_removed=temps + inputs.temps_removed,
                orphans_removed=removed,
                orphans_kept=kept,
                missing_delivered=missing_delivered,
                lost=tuple(lost),
                inputs_removed=inputs.removed,
                inputs_in_use=inputs.in_use,
            )
        log.info("reconciled the output store: %s", report)
        return report

    async def _mark_lost(self, row: StoredOutput) -> StoredOutput:
        log.error("reconcile: undelivered file %s of job %s is missing: that result is lost", row.path, row.job_id)
        evicted = await self.jobs.evict_output(row.job_id, row.index)
        job = await self.jobs.get(row.job_id)
        if job.error is None:
            await self.jobs.update(job.id, error=LOST_MESSAGE)
        return evicted

    def _being_saved(self, path: Path) -> bool:
        target = target_of_temp(path) or path
        return target.name.split("_", 1)[0] in self._saving

    # -- temporary inputs --

    async def save_input(self, data: bytes, extension: str) -> Path:
        """Store an input once per content (``inputs/<sha256>.<ext>``) and count one use; return its path.

        Give the use back with ``release_input`` when the job ends (delivered, failed or cancelled). Put the
        returned path (or the name it is uploaded to ComfyUI as, which keeps the hash) in the job's params, so
        a restart knows the input is still in use. Raises ``OutputStoreError`` on a full disk.
        """
        return await self._inputs.save(data, extension)

    async def release_input(self, path: Path) -> None:
        """One use of an input is over; the file is removed when no use is left."""
        await self._inputs.release(path)

    def input_uses(self, path: Path) -> int:
        """How many jobs of this process still use an input (0 once released)."""
        return self._inputs.uses(path)
