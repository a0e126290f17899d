"""The SQLite store of jobs and their output files: what lets a job outlive the process.

How it works: one ``aiosqlite`` connection to a WAL-mode database (a crash loses at most the last commit, never
half of one). On open, ``migrate`` brings the file to ``SCHEMA_VERSION`` by running the steps of
``schema.MIGRATIONS`` it has not had yet (``PRAGMA user_version`` counts them), each step in its own
transaction. Every operation holds one lock, and every write runs in ``BEGIN IMMEDIATE … COMMIT``: writes are
serialised, and a job row is either the old one or the new one. State moves go through ``state.advance`` (the
state table); other fields through ``state.amend``; the store only persists what those return. The schema and
the row mapping live in ``schema.py``.

Never: let a ``sqlite3`` error escape (translated once, in ``_translated``, into ``JobStoreError``); change a
job's state without the state table; open a file written by a newer schema (it would be damaged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Self

import aiosqlite

from discomfy.errors import DiscomfyError, UserError
from discomfy.jobs.records import ActiveCounts, StoredOutput, StoreStats
from discomfy.jobs.schema import (
    JOB_COLUMNS,
    MIGRATIONS,
    OUTPUT_COLUMNS,
    SCHEMA_VERSION,
    job_from_row,
    job_values,
    output_from_row,
    output_values,
)
from discomfy.jobs.state import (
    ACTIVE,
    JOB_ID_SHAPE,
    IllegalTransitionError,
    Job,
    JobState,
    UserId,
    advance,
    amend,
)
from discomfy.outcome import Failure

log = logging.getLogger(__name__)

_ACTIVE_MARKS = ", ".join("?" * len(ACTIVE))
_ACTIVE_ARGS = tuple(sorted(ACTIVE))


class JobStoreError(DiscomfyError):
    """The database could not be read or written (disk full, damaged or newer file, …)."""

    user_message = "The bot could not save this job. Please try again; if it keeps happening, tell an admin."
    failure = Failure.STORAGE


class JobNotFoundError(UserError):
    """No such job (or output) in the store."""

    def __init__(self, what: str) -> None:
        super().__init__(f"I can't find {what}; it may have been deleted.")


@contextlib.contextmanager
def _translated(doing: str) -> Iterator[None]:
    """The one place ``sqlite3`` errors become ours (aiosqlite raises sqlite3's own exceptions)."""
    try:
        yield
    except sqlite3.Error as exc:
        error = JobStoreError(f"job store: {doing}: {exc}")
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            error.user_message = "The bot's disk is full, so it can't save this job. Please tell an admin."
        raise error from exc


async def migrate(db: aiosqlite.Connection, target: int = SCHEMA_VERSION) -> int:
    """Run the missing steps of ``MIGRATIONS`` up to ``target``; return the version the file had before.

    ``db`` must be in autocommit mode (``isolation_level=None``): each step is its own explicit transaction,
    with the version bump inside it, so a crash mid-migration leaves the file at the previous version.
    """
    with _translated("reading the schema version"):
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
    found = int(row[0]) if row else 0
    if found > SCHEMA_VERSION:
        raise JobStoreError(
            f"the database has schema version {found}, newer than this discomfy knows ({SCHEMA_VERSION}); "
            "upgrade discomfy, or point storage.data_dir at another directory"
        )
    for version in range(found + 1, target + 1):
        with _translated(f"migrating to schema version {version}"):
            try:
                await db.execute("BEGIN IMMEDIATE")
                for statement in MIGRATIONS[version - 1]:
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {version:d}")
                await db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                raise
    return found


#: SQLite's companions of a database file; it creates them with the database's own mode.
_COMPANIONS = ("-wal", "-shm", "-journal")


def _private_files(path: Path) -> None:
    """The database's folder (created 0700) and the database with its companions, readable by us alone: the
    file is created 0600 before SQLite opens it (SQLite gives its -wal and -shm the same mode), and one an
    older version left readable by others is tightened to 0600."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in _COMPANIONS)):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(file.stat().st_mode) & 0o077:
                file.chmod(0o600)


class JobStore:
    """``store = await JobStore.open(path)`` … ``await store.close()``, or ``async with JobStore(path) as store``."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        #: Called with each row a transition wrote and the time stamped on it (``app.py``: the metrics).
        self.on_transition: Callable[[Job, float], None] | None = None

    @classmethod
    async def open(cls, path: Path | str, *, clock: Callable[[], float] = time.time) -> Self:
        store = cls(path, clock=clock)
        await store._connect()
        return store

    async def _connect(self) -> None:
        await asyncio.to_thread(_private_files, self.path)
        with _translated(f"opening {self.path}"):
            db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            with _translated(f"opening {self.path}"):
                await db.execute("PRAGMA journal_mode = WAL")
                # NORMAL is durable against a crash of the process in WAL mode; only power loss can undo
                # the last commit, and then asking ComfyUI about the prompt_id still recovers the job.
                await db.execute("PRAGMA synchronous = NORMAL")
                await db.execute("PRAGMA foreign_keys = ON")
                await db.execute("PRAGMA busy_timeout = 5000")
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            async with self._lock:
                await db.close()

    async def __aenter__(self) -> Self:
        if self._db is None:
            await self._connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def _read(self, doing: str) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            with _translated(doing):
                yield self._connection()

    @contextlib.asynccontextmanager
    async def _write(self, doing: str) -> AsyncIterator[aiosqlite.Connection]:
        """One transaction: committed if the block ends normally, rolled back (and nothing changed) otherwise."""
        async with self._lock:
            db = self._connection()
            with _translated(doing):
                # BEGIN inside the try: even if we are cancelled while it is queued, the ROLLBACK
                # queued after it on aiosqlite's thread closes the transaction.
                try:
                    await db.execute("BEGIN IMMEDIATE")
                    yield db
                    await db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        await db.execute("ROLLBACK")
                    raise

    def reading(self, doing: str) -> contextlib.AbstractAsyncContextManager[aiosqlite.Connection]:
        """A read under the store's one lock, ``sqlite3`` errors translated: for the other tables of this
        database (``presets.py``), so one connection and one lock serve them all."""
        return self._read(doing)

    def writing(self, doing: str) -> contextlib.AbstractAsyncContextManager[aiosqlite.Connection]:
        """One write transaction under the store's lock (see ``_write``), for the other tables of this database."""
        return self._write(doing)

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise JobStoreError("job store: used while closed")
        return self._db

    # -- jobs --

    async def create(self, job: Job) -> Job:
        """Write a new job's row (it must be ``waiting``): done before anything is sent anywhere."""
        if job.state is not JobState.WAITING:
            raise IllegalTransitionError(job.id, job.state, job.state, "a new job starts in the waiting state")
        async with self._write(f"creating job {job.id}") as db:
            marks = ", ".join("?" * len(JOB_COLUMNS))
            await db.execute(f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({marks})", job_values(job))
        return job

    async def get(self, job_id: str) -> Job:
        async with self._read(f"reading job {job_id}") as db:
            return await _fetch_job(db, job_id)

    async def transition(self, job_id: str, new_state: JobState, **fields: Any) -> Job:
        """Move a job through the state table, with ``fields`` changed in the same write; return the new row."""
        now = self._clock()
        async with self._write(f"moving job {job_id} to {new_state}") as db:
            job = advance(await _fetch_job(db, job_id), new_state, now=now, **fields)
            await _save_job(db, job)
        if self.on_transition is not None:
            try:
                self.on_transition(job, now)
            except Exception:  # counting must never undo a move that is written
                log.exception("job %s: the transition hook failed (ignored)", job_id)
        return job

    async def update(self, job_id: str, **fields: Any) -> Job:
        """Change fields that are not about state (message id, interaction, error text, …)."""
        async with self._write(f"updating job {job_id}") as db:
            job = amend(await _fetch_job(db, job_id), **fields)
            await _save_job(db, job)
        return job

    async def active(self) -> list[Job]:
        """Jobs that are not finished, oldest first: reattached (or queued again) when the bot starts."""
        return await self._jobs(f"SELECT * FROM jobs WHERE state IN ({_ACTIVE_MARKS})", _ACTIVE_ARGS)

    async def by_owner(self, user_id: int, active_only: bool = True) -> list[Job]:
        if active_only:
            where, args = f"owner_id = ? AND state IN ({_ACTIVE_MARKS})", (user_id, *_ACTIVE_ARGS)
        else:
            where, args = "owner_id = ?", (user_id,)
        return await self._jobs(f"SELECT * FROM jobs WHERE {where}", args)

    async def counts(self) -> ActiveCounts:
        """Active jobs per owner and in total, for the caps."""
        sql = f"SELECT owner_id, COUNT(*) FROM jobs WHERE state IN ({_ACTIVE_MARKS}) GROUP BY owner_id"
        async with self._read("counting active jobs") as db, db.execute(sql, _ACTIVE_ARGS) as cursor:
            rows = await cursor.fetchall()
        per_user = {UserId(int(r[0])): int(r[1]) for r in rows}
        return ActiveCounts(MappingProxyType(per_user), sum(per_user.values()))

    async def stats(self) -> StoreStats:
        """Jobs by state and workflow, and the output files on disk with their bytes (for ``/metrics``)."""
        jobs_sql = "SELECT state, workflow, COUNT(*) FROM jobs GROUP BY state, workflow"
        files_sql = "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outputs WHERE evicted_at IS NULL"
        async with self._read("counting jobs and outputs") as db:
            async with db.execute(jobs_sql) as cursor:
                rows = await cursor.fetchall()
            async with db.execute(files_sql) as cursor:
                files = await cursor.fetchone()
        jobs = {(str(r[0]), str(r[1])): int(r[2]) for r in rows}
        count, size = (int(files[0]), int(files[1])) if files is not None else (0, 0)
        return StoreStats(MappingProxyType(jobs), count, size)

    async def check_writable(self) -> None:
        """One small real write (the schema version, rewritten as it is): ``JobStoreError`` when the database
        cannot be written (disk full, read-only, locked by another process)."""
        async with self._write("checking that the database can be written") as db:
            await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    async def _jobs(self, sql: str, args: Sequence[Any]) -> list[Job]:
        async with self._read("listing jobs") as db, db.execute(f"{sql} ORDER BY created_at, rowid", args) as cur:
            return [_job_from_row(row) for row in await cur.fetchall()]

    # -- outputs --

    async def add_output(self, output: StoredOutput) -> StoredOutput:
        """Record an output file (already written to disk) of an existing job."""
        async with self._write(f"recording output {output.index} of job {output.job_id}") as db:
            await _fetch_job(db, output.job_id)
            marks = ", ".join("?" * len(OUTPUT_COLUMNS))
            sql = f"INSERT INTO outputs ({', '.join(OUTPUT_COLUMNS)}) VALUES ({marks})"
            await db.execute(sql, output_values(output))
        return output

    async def outputs(self, job_id: str) -> list[StoredOutput]:
        return await self._outputs("WHERE job_id = ? ORDER BY idx", (job_id,))

    async def mark_delivered(
        self, job_id: str, index: int, attachment_url: str | None = None, *, at: float | None = None
    ) -> StoredOutput:
        """The file is on Discord; ``attachment_url`` is where (the source for buttons once evicted)."""
        when = self._clock() if at is None else at
        sql = "UPDATE outputs SET delivered_at = ?, attachment_url = COALESCE(?, attachment_url)"
        return await self._change_output(job_id, index, sql, (when, attachment_url))

    async def evict_output(self, job_id: str, index: int, *, at: float | None = None) -> StoredOutput:
        """The file was removed from disk under the cap; the row stays, with its Discord URL."""
        when = self._clock() if at is None else at
        return await self._change_output(job_id, index, "UPDATE outputs SET evicted_at = ?", (when,))

    async def delete_output(self, job_id: str, index: int) -> bool:
        """Forget an output entirely (its file is gone and so is its message); False if there was none."""
        async with self._write(f"deleting output {index} of job {job_id}") as db:
            cursor = await db.execute("DELETE FROM outputs WHERE job_id = ? AND idx = ?", (job_id, index))
            return cursor.rowcount > 0

    async def undelivered_outputs(self) -> list[StoredOutput]:
        """Files on disk not yet on Discord, oldest first: delivered again on start, never evicted."""
        return await self._outputs("WHERE delivered_at IS NULL AND evicted_at IS NULL ORDER BY created_at, job_id, idx")

    async def delivered_outputs_oldest_first(self) -> list[StoredOutput]:
        """Eviction candidates: delivered files still on disk, not the source of an active job, oldest first."""
        busy = (
            "SELECT 1 FROM jobs j WHERE j.parent_id = o.job_id AND j.source_index = o.idx"
            f" AND j.state IN ({_ACTIVE_MARKS})"
        )
        where = f"WHERE delivered_at IS NOT NULL AND evicted_at IS NULL AND NOT EXISTS ({busy})"
        return await self._outputs(f"{where} ORDER BY delivered_at, created_at, job_id, idx", _ACTIVE_ARGS)

    async def stored_outputs(self) -> list[StoredOutput]:
        """Every output whose file should be on disk: for reconciling the directory with the rows on start."""
        return await self._outputs("WHERE evicted_at IS NULL ORDER BY created_at, job_id, idx")

    async def _outputs(self, where: str, args: Sequence[Any] = ()) -> list[StoredOutput]:
        sql = f"SELECT o.* FROM outputs o {where}"
        async with self._read("listing outputs") as db, db.execute(sql, args) as cursor:
            return [_output_from_row(row) for row in await cursor.fetchall()]

    async def _change_output(self, job_id: str, index: int, sql: str, args: Sequence[Any]) -> StoredOutput:
        async with self._write(f"updating output {index} of job {job_id}") as db:
            cursor = await db.execute(f"{sql} WHERE job_id = ? AND idx = ?", (*args, job_id, index))
            if cursor.rowcount == 0:
                raise JobNotFoundError(f"output {index + 1} of job {job_id}")
            async with db.execute("SELECT * FROM outputs WHERE job_id = ? AND idx = ?", (job_id, index)) as cur:
                row = await cur.fetchone()
        assert row is not None  # updated just above, in the same transaction
        return _output_from_row(row)


# -- rows ⇄ records --


async def _fetch_job(db: aiosqlite.Connection, job_id: str) -> Job:
    async with db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        # Only an id of our own shape is repeated back: the text may come from a user (/show, /preset save).
        raise JobNotFoundError(f"job {job_id}" if JOB_ID_SHAPE.fullmatch(job_id) else "that job")
    return _job_from_row(row)


async def _save_job(db: aiosqlite.Connection, job: Job) -> None:
    sets = ", ".join(f"{c} = ?" for c in JOB_COLUMNS[1:])
    values = job_values(job)
    await db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*values[1:], values[0]))


def _job_from_row(row: sqlite3.Row) -> Job:
    with _unreadable(row):
        return job_from_row(row)


def _output_from_row(row: sqlite3.Row) -> StoredOutput:
    with _unreadable(row):
        return output_from_row(row)


@contextlib.contextmanager
def _unreadable(row: sqlite3.Row) -> Iterator[None]:
    """A row our decoders cannot read (an unknown state, bad JSON): a damaged file, said so plainly."""
    try:
        yield
    except (ValueError, TypeError, IndexError) as exc:
        raise JobStoreError(f"job store: unreadable row {tuple(row)[:2]!r}: {exc}") from exc
