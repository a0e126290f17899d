"""The output store against real files in tmp_path and a real JobStore on a real SQLite file."""

from __future__ import annotations

import asyncio
import errno
import io
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from discomfy.comfy.stream import FetchedFile
from discomfy.comfy.types import MediaKind, OutputFile
from discomfy.jobs.outputs import LOST_MESSAGE, OutputStore, OutputStoreError
from discomfy.jobs.outputs_files import DISK_FULL, UNWRITABLE, temp_path_for
from discomfy.jobs.records import OutputKind, StoredOutput
from discomfy.jobs.state import Job, JobAction, JobId, JobKind, JobState
from discomfy.jobs.store import JobStore
from tests.jobs.factories import make_job


def png(width: int = 8, height: int = 6, color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def gif(frames: int = 3) -> bytes:
    buffer = io.BytesIO()
    images = [Image.new("RGB", (4, 4), (i * 40, 0, 0)) for i in range(frames)]
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buffer.getvalue()


def fetched(data: bytes, name: str = "ComfyUI_00001_.png", kind: MediaKind = MediaKind.IMAGE) -> FetchedFile:
    return FetchedFile(OutputFile("9", name, "", "output", kind), data)


def blob(n: int, size: int = 100) -> FetchedFile:
    """A distinct small file (not a valid image: the store must not care)."""
    return fetched(bytes([n % 256]) * size + str(n).encode(), f"out_{n}.png")


class BudgetWriter:
    """A disk with ``budget`` bytes left: writes past it raise ENOSPC after writing what fits, like a real one."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def __call__(self, file: BinaryIO, data: bytes) -> None:
        fits = data[: max(self.budget, 0)]
        file.write(fits)
        self.budget -= len(fits)
        if len(fits) < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def jobs(data_dir: Path) -> AsyncIterator[JobStore]:
    async with JobStore(data_dir / "discomfy.sqlite3") as store:
        yield store


@pytest.fixture
def outputs(data_dir: Path, jobs: JobStore) -> OutputStore:
    return OutputStore(data_dir, jobs, max_files=3)


async def new_job(jobs: JobStore, number: int, **fields: object) -> Job:
    return await jobs.create(make_job(number, **fields))


def files_under(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


# -- save / read / deliver --


async def test_save_writes_files_and_rows_before_returning(outputs: OutputStore, jobs: JobStore) -> None:
    job = await new_job(jobs, 1)
    image = png(8, 6)
    [stored] = await outputs.save(job, [fetched(image)])
    assert outputs.path(stored).read_bytes() == image
    assert await jobs.outputs(job.id) == [stored]
    assert (stored.kind, stored.mime, stored.size, stored.width, stored.height) == (
        OutputKind.IMAGE,
        "image/png",
        len(image),
        8,
        6,
    )
    month = time.strftime("%Y-%m", time.gmtime())
    assert stored.path == f"outputs/{month}/{job.id}_0.png"
    assert not stored.delivered
    assert await outputs.read(stored) == image


async def test_saved_outputs_survive_reopening_the_store(data_dir: Path) -> None:
    async with JobStore(data_dir / "discomfy.sqlite3") as jobs:
        job = await new_job(jobs, 1)
        saved = await OutputStore(data_dir, jobs).save(job, [blob(1), blob(2)])
    async with JobStore(data_dir / "discomfy.sqlite3") as jobs:
        store = OutputStore(data_dir, jobs)
        assert await jobs.undelivered_outputs() == saved
        assert [await store.read(o) for o in saved] == [blob(1).data, blob(2).data]


async def test_kinds_come_from_the_bytes_and_the_extension(outputs: OutputStore, jobs: JobStore) -> None:
    job = await new_job(jobs, 1)
    animation, still_gif, video = await outputs.save(
        job,
        [
            fetched(gif(3), "a.gif", MediaKind.ANIMATION),
            fetched(gif(1), "b.gif", MediaKind.ANIMATION),
            fetched(b"not really a video", "c.mp4", MediaKind.VIDEO),
        ],
    )
    assert (animation.kind, animation.mime, animation.duration) == (OutputKind.ANIMATION, "image/gif", 0.3)
    assert still_gif.kind is OutputKind.IMAGE
    assert (video.kind, video.mime, video.width, video.duration) == (OutputKind.VIDEO, "video/mp4", None, None)


async def test_mark_delivered_records_the_attachment_url(outputs: OutputStore, jobs: JobStore) -> None:
    job = await new_job(jobs, 1)
    [stored] = await outputs.save(job, [blob(1)])
    delivered = await outputs.mark_delivered(stored, "https://cdn.example/a.png")
    assert delivered.delivered and delivered.attachment_url == "https://cdn.example/a.png"
    assert await jobs.undelivered_outputs() == []
    assert await outputs.source_of(job.id, 0) == delivered
    assert await outputs.source_of(job.id, 1) is None


async def test_saving_the_same_job_again_reuses_identical_files(outputs: OutputStore, jobs: JobStore) -> None:
    job = await new_job(jobs, 1)
    first = await outputs.save(job, [blob(1), blob(2)])
    again = await outputs.save(job, [blob(1), blob(3)])
    assert again[0] == first[0]
    assert again[1].sha256 != first[1].sha256 and outputs.path(again[1]).read_bytes() == blob(3).data
    assert not outputs.path(first[1]).exists()
    assert await jobs.outputs(job.id) == again
