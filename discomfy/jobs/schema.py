"""The SQLite schema of the job store and the mapping between its rows and ``Job`` / ``StoredOutput``.

How it works: ``MIGRATIONS`` is the schema's history: step N brings a file from version N-1 to N (``PRAGMA
user_version`` counts the steps a file has had). A later discomfy appends steps; a shipped step is never edited,
or files that already ran it would differ from new ones. Columns mirror the records; two choices worth knowing:
the seed is TEXT (ComfyUI seeds reach 2**64 - 1, past SQLite's signed 64-bit INTEGER) and ``params`` is JSON.

Never: do I/O or import sqlite (``store.py`` runs these); decoders raise ``ValueError`` / ``TypeError`` on a row
they cannot read, and the store turns that into its own error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from discomfy.jobs.records import OutputKind, StoredOutput
from discomfy.jobs.state import (
    ApplicationId,
    ChannelId,
    GuildId,
    InteractionRef,
    Job,
    JobAction,
    JobId,
    JobKind,
    JobState,
    MessageId,
    PromptId,
    UserId,
)
from discomfy.outcome import Failure


class Row(Protocol):
    """A result row read by column name (``sqlite3.Row`` is one)."""

    def __getitem__(self, key: str, /) -> Any: ...


#: Step N (1-based) brings a file from version N-1 to N. Append only; never edit a shipped step.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: jobs.
    (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            owner_id INTEGER NOT NULL,
            guild_id INTEGER,
            channel_id INTEGER NOT NULL,
            message_id INTEGER,
            interaction_app_id INTEGER,
            interaction_token TEXT,
            interaction_created_at REAL,
            workflow TEXT NOT NULL,
            kind TEXT NOT NULL,
            action TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            seed TEXT,
            parent_id TEXT,
            source_index INTEGER,
            server_url TEXT,
            prompt_id TEXT,
            state TEXT NOT NULL,
            error TEXT,
            created_at REAL NOT NULL,
            submitted_at REAL,
            started_at REAL,
            finished_at REAL
        )""",
        "CREATE INDEX jobs_by_state ON jobs (state, created_at)",
        "CREATE INDEX jobs_by_owner ON jobs (owner_id, created_at)",
    ),
    # 2: output files (issue 5: the output store).
    (
        """CREATE TABLE outputs (
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            kind TEXT NOT NULL,
            path TEXT NOT NULL,
            mime TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            width INTEGER,
            height INTEGER,
            duration REAL,
            created_at REAL NOT NULL,
            delivered_at REAL,
            attachment_url TEXT,
            evicted_at REAL,
            PRIMARY KEY (job_id, idx)
        )""",
        "CREATE INDEX outputs_by_delivery ON outputs (delivered_at, created_at)",
        "CREATE INDEX jobs_by_parent ON jobs (parent_id, source_index)",
    ),
    # 3: a failure kind beside the error detail (outcome.Failure); the message an action's progress replies to.
    (
        "ALTER TABLE jobs ADD COLUMN failure TEXT",
        "ALTER TABLE jobs ADD COLUMN reply_to INTEGER",
    ),
    # 4: presets (issue 14, jobs/presets.py): a member's saved workflow and parameters, in one guild, shareable
    # there. Names are unique per owner and guild, and among the presets shared in a guild (case-insensitive).
    (
        """CREATE TABLE presets (
            id INTEGER PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            owner_id INTEGER NOT NULL,
            name TEXT NOT NULL COLLATE NOCASE,
            workflow TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            shared INTEGER NOT NULL DEFAULT 0,
            source_job TEXT,
            created_at REAL NOT NULL,
            UNIQUE (guild_id, owner_id, name)
        )""",
        "CREATE UNIQUE INDEX presets_shared_by_name ON presets (guild_id, name) WHERE shared = 1",
    ),
    # 5: /metrics counts jobs by state and workflow at every scrape: a covering index makes that a scan of the
    # index (bench/scrape.py, 100 000 jobs: 68 ms → 8 ms per scrape) instead of every row.
    ("CREATE INDEX jobs_by_state_workflow ON jobs (state, workflow)",),
)
SCHEMA_VERSION = len(MIGRATIONS)

JOB_COLUMNS: tuple[str, ...] = (
    "id",
    "owner_id",
    "guild_id",
    "channel_id",
    "message_id",
    "interaction_app_id",
    "interaction_token",
    "interaction_created_at",
    "workflow",
    "kind",
    "action",
    "params",
    "seed",
    "parent_id",
    "source_index",
    "server_url",
    "prompt_id",
    "state",
    "error",
    "created_at",
    "submitted_at",
    "started_at",
    "finished_at",
    "failure",
    "reply_to",
)
OUTPUT_COLUMNS: tuple[str, ...] = (
    "job_id",
    "idx",
    "kind",
    "path",
    "mime",
    "size",
    "sha256",
    "width",
    "height",
    "duration",
    "created_at",
    "delivered_at",
    "attachment_url",
    "evicted_at",
)


def job_values(job: Job) -> tuple[Any, ...]:
    ref = job.interaction
    return (
        job.id,
        job.owner_id,
        job.guild_id,
        job.channel_id,
        job.message_id,
        ref.application_id if ref else None,
        ref.token if ref else None,
        ref.created_at if ref else None,
        job.workflow,
        str(job.kind),
        str(job.action),
        json.dumps(dict(job.params), separators=(",", ":"), sort_keys=True),
        None if job.seed is None else str(job.seed),
        job.parent_id,
        job.source_index,
        job.server_url,
        job.prompt_id,
        str(job.state),
        job.error,
        job.created_at,
        job.submitted_at,
        job.started_at,
        job.finished_at,
        None if job.failure is None else str(job.failure),
        job.reply_to,
    )


def job_from_row(row: Row) -> Job:
    ref = None
    if row["interaction_token"] is not None:
        ref = InteractionRef(
            ApplicationId(row["interaction_app_id"]), row["interaction_token"], row["interaction_created_at"]
        )
    return Job(
        id=JobId(row["id"]),
        owner_id=UserId(row["owner_id"]),
        guild_id=_maybe(GuildId, row["guild_id"]),
        channel_id=ChannelId(row["channel_id"]),
        message_id=_maybe(MessageId, row["message_id"]),
        interaction=ref,
        workflow=row["workflow"],
        kind=JobKind(row["kind"]),
        action=JobAction(row["action"]),
        params=json.loads(row["params"]),
        seed=_maybe(int, row["seed"]),
        parent_id=_maybe(JobId, row["parent_id"]),
        source_index=row["source_index"],
        server_url=row["server_url"],
        prompt_id=_maybe(PromptId, row["prompt_id"]),
        state=JobState(row["state"]),
        error=row["error"],
        created_at=row["created_at"],
        submitted_at=row["submitted_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        failure=_maybe(Failure, row["failure"]),
        reply_to=_maybe(MessageId, row["reply_to"]),
    )


def output_values(out: StoredOutput) -> tuple[Any, ...]:
    return (
        out.job_id,
        out.index,
        str(out.kind),
        out.path,
        out.mime,
        out.size,
        out.sha256,
        out.width,
        out.height,
        out.duration,
        out.created_at,
        out.delivered_at,
        out.attachment_url,
        out.evicted_at,
    )


def output_from_row(row: Row) -> StoredOutput:
    return StoredOutput(
        job_id=JobId(row["job_id"]),
        index=row["idx"],
        kind=OutputKind(row["kind"]),
        path=row["path"],
        mime=row["mime"],
        size=row["size"],
        sha256=row["sha256"],
        width=row["width"],
        height=row["height"],
        duration=row["duration"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        attachment_url=row["attachment_url"],
        evicted_at=row["evicted_at"],
    )


def _maybe[T](make: Callable[[Any], T], value: Any) -> T | None:
    return None if value is None else make(value)
