"""Plain rows of the job store that pure code reads: a stored output file and the counts behind the caps.

Never: do I/O or import asyncio / sqlite; the store (``store.py``) builds these, everyone else only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from discomfy.jobs.state import JobId, UserId


class OutputKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    #: GIF / animated WebP: delivered as is when it fits, else as MP4.
    ANIMATION = "animation"


@dataclass(frozen=True)
class StoredOutput:
    """One output file of a job, saved under the data directory before delivery starts."""

    job_id: JobId
    #: The output's place in the job's results (0-based; the U1…U4 buttons use index + 1).
    index: int
    kind: OutputKind
    #: Relative to the data directory, with forward slashes (``outputs/ab/abcd….png``).
    path: str
    mime: str
    size: int
    sha256: str
    created_at: float
    width: int | None = None
    height: int | None = None
    #: Seconds, for video and animations.
    duration: float | None = None
    delivered_at: float | None = None
    #: The Discord CDN URL of the delivered attachment: the source for buttons once the file is evicted.
    attachment_url: str | None = None
    #: When the file was removed from disk to keep the store under its cap (the row stays for its URL).
    evicted_at: float | None = None

    @property
    def delivered(self) -> bool:
        return self.delivered_at is not None

    @property
    def on_disk(self) -> bool:
        return self.evicted_at is None


@dataclass(frozen=True)
class ActiveCounts:
    """Active (not terminal) jobs, per owner and in total: what the per-user and global caps compare against."""

    per_user: Mapping[UserId, int] = field(default_factory=lambda: MappingProxyType({}))
    total: int = 0

    def of(self, user_id: UserId) -> int:
        return self.per_user.get(user_id, 0)


@dataclass(frozen=True)
class StoreStats:
    """What ``/metrics`` reads from the store: jobs by (state, workflow), output files on disk and their bytes."""

    jobs: Mapping[tuple[str, str], int]
    output_files: int
    output_bytes: int
