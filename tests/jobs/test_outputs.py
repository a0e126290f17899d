"""The output store against real files in tmp_path and a real JobStore on a real SQLite file."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import io
import os
import random
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from discomfy.comfy.stream import FetchedFile
from discomfy.comfy.types import MediaKind, OutputFile
from discomfy.jobs.outputs import LOST_MESSAGE, OutputStore, OutputStoreError
from discomfy.jobs.outputs_files import DISK_FULL, UNWRITABLE, temp_path_for
from discomfy.jobs.records import OutputKind, StoredOutput
from discomfy.jobs.state import Job, JobAction, JobKind, JobState
from discomfy.jobs.store import JobStore
from discomfy.outcome import Failure
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
    """A distinct small PNG of ``size`` + ``len(str(n))`` bytes (a 1×1 picture, padded with a text chunk)."""
    target = size + len(str(n))

    def encoded(padding: int) -> bytes:
        info = PngImagePlugin.PngInfo()
        info.add_text("n", str(n) + "x" * padding)
        buffer = io.BytesIO()
        Image.new("L", (1, 1), n % 256).save(buffer, format="PNG", pnginfo=info)
        return buffer.getvalue()

    return fetched(encoded(max(0, target - len(encoded(0)))), f"out_{n}.png")


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


async def new_job(jobs: JobStore, number: int, **fields: Any) -> Job:
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


async def test_kinds_come_from_the_bytes_not_the_name(outputs: OutputStore, jobs: JobStore) -> None:
    job = await new_job(jobs, 1)
    animation, still_gif, video, named_wrong = await outputs.save(
        job,
        [
            fetched(gif(3), "a.gif", MediaKind.ANIMATION),
            fetched(gif(1), "b.gif", MediaKind.ANIMATION),
            fetched(mp4(), "c.webm", MediaKind.VIDEO),
            fetched(png(), "d.mp4", MediaKind.VIDEO),
        ],
    )
    assert (animation.kind, animation.mime, animation.duration) == (OutputKind.ANIMATION, "image/gif", 0.3)
    assert still_gif.kind is OutputKind.IMAGE
    assert (video.kind, video.mime, video.path[-4:]) == (OutputKind.VIDEO, "video/mp4", ".mp4")
    assert (named_wrong.kind, named_wrong.mime, named_wrong.path[-4:]) == (OutputKind.IMAGE, "image/png", ".png")


async def test_files_that_are_no_picture_or_video_are_skipped(outputs: OutputStore, jobs: JobStore) -> None:
    job = await new_job(jobs, 1)
    [kept] = await outputs.save(
        job,
        [
            fetched(b"#!/bin/sh\nrm -rf ~\n", "x.png"),
            fetched(b"not really a video", "c.mp4", MediaKind.VIDEO),
            fetched(b"\x89PNG\r\n\x1a\n#!/bin/sh\n", "y.png"),
            fetched(png(), "z.sh", MediaKind.OTHER),
        ],
    )
    assert (kept.index, kept.mime, kept.path[-6:]) == (0, "image/png", "_0.png")
    assert files_under(outputs.outputs_dir) == {kept.path.removeprefix("outputs/")}


async def test_nothing_deliverable_fails_the_save_with_its_kind(outputs: OutputStore, jobs: JobStore) -> None:
    job = await new_job(jobs, 1)
    with pytest.raises(OutputStoreError) as caught:
        await outputs.save(job, [fetched(b"<html>hi</html>", "x.png")])
    assert caught.value.failure is Failure.BAD_OUTPUT
    assert await jobs.outputs(job.id) == []
    assert files_under(outputs.outputs_dir) == set()


async def test_saved_files_are_private_to_the_bot(outputs: OutputStore, jobs: JobStore) -> None:
    [stored] = await outputs.save(await new_job(jobs, 1), [blob(1)])
    assert outputs.path(stored).stat().st_mode & 0o777 == 0o600


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


async def test_read_is_none_when_the_file_is_missing_on_disk(outputs: OutputStore, jobs: JobStore) -> None:
    job = await new_job(jobs, 1)
    [stored] = await outputs.save(job, [blob(1)])
    outputs.path(stored).unlink()
    assert await outputs.read(stored) is None


# -- caps and eviction --


class StepClock:
    """A clock that moves one second each time it is read: every event gets its own time, in order."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
async def stepped(data_dir: Path) -> AsyncIterator[tuple[JobStore, OutputStore]]:
    clock = StepClock()
    async with JobStore(data_dir / "discomfy.sqlite3", clock=clock) as store:
        yield store, OutputStore(data_dir, store, max_files=3, clock=clock)


async def save_jobs(jobs: JobStore, store: OutputStore, numbers: range) -> dict[int, StoredOutput]:
    saved = {}
    for n in numbers:
        [saved[n]] = await store.save(await new_job(jobs, n), [blob(n)])
    return saved


async def test_eviction_removes_delivered_files_oldest_delivery_first(
    stepped: tuple[JobStore, OutputStore],
) -> None:
    jobs, store = stepped
    saved = await save_jobs(jobs, store, range(1, 6))
    for n in (3, 1, 4, 2, 5):
        await store.mark_delivered(saved[n], f"https://cdn.example/{n}.png")
    evicted = await store.enforce_caps()
    assert [(o.job_id, o.attachment_url) for o in evicted] == [
        (saved[3].job_id, "https://cdn.example/3.png"),
        (saved[1].job_id, "https://cdn.example/1.png"),
    ]
    assert all(not o.on_disk for o in evicted)
    assert {o.job_id for o in await jobs.stored_outputs()} == {saved[n].job_id for n in (4, 2, 5)}
    assert not store.path(saved[3]).exists() and not store.path(saved[1]).exists()
    assert await store.read(evicted[0]) is None
    assert await store.source_of(saved[3].job_id, 0) == evicted[0]


async def test_eviction_never_removes_an_undelivered_file_even_over_the_cap(
    stepped: tuple[JobStore, OutputStore],
) -> None:
    jobs, store = stepped
    saved = await save_jobs(jobs, store, range(1, 7))
    await store.mark_delivered(saved[6], None)
    assert [o.job_id for o in await store.enforce_caps()] == [saved[6].job_id]
    assert await store.enforce_caps() == []
    assert all(store.path(saved[n]).exists() for n in range(1, 6))
    assert len(await jobs.undelivered_outputs()) == 5


async def test_the_byte_cap_evicts_too(data_dir: Path, jobs: JobStore) -> None:
    store = OutputStore(data_dir, jobs, max_files=100, max_bytes=250)
    saved = await save_jobs(jobs, store, range(1, 4))  # about 101 bytes each
    for n in (1, 2, 3):
        await store.mark_delivered(saved[n], None)
    assert [o.job_id for o in await store.enforce_caps()] == [saved[1].job_id]


async def test_a_source_claimed_by_an_active_upscale_is_not_evicted_until_it_ends(
    stepped: tuple[JobStore, OutputStore],
) -> None:
    jobs, store = stepped
    saved = await save_jobs(jobs, store, range(1, 5))
    async with store.claim_source(saved[1].job_id, 0) as source:
        assert source == saved[1]
        child = await new_job(jobs, 50, parent_id=saved[1].job_id, source_index=0, kind=JobKind.UPSCALE)
    for n in range(1, 5):
        await store.mark_delivered(saved[n], None)
    assert [o.job_id for o in await store.enforce_caps()] == [saved[2].job_id]
    assert await store.read(saved[1]) == blob(1).data
    await jobs.transition(child.id, JobState.CANCELLED)
    [fifth] = await store.save(await new_job(jobs, 5), [blob(5)])
    await store.mark_delivered(fifth, None)
    assert [o.job_id for o in await store.enforce_caps()] == [saved[1].job_id]


async def test_an_eviction_pass_waits_for_a_claim_in_progress(stepped: tuple[JobStore, OutputStore]) -> None:
    jobs, store = stepped
    saved = await save_jobs(jobs, store, range(1, 5))
    for n in range(1, 5):
        await store.mark_delivered(saved[n], None)
    async with store.claim_source(saved[1].job_id, 0) as source:
        assert source is not None and source.on_disk
        eviction = asyncio.create_task(store.enforce_caps())
        await asyncio.sleep(0.05)  # the pass would have read its candidates by now, were it not held off
        assert not eviction.done()
        await new_job(jobs, 50, parent_id=saved[1].job_id, source_index=0, kind=JobKind.UPSCALE)
    assert [o.job_id for o in await eviction] == [saved[2].job_id]
    assert store.path(saved[1]).exists()


async def test_claiming_an_evicted_source_says_so(stepped: tuple[JobStore, OutputStore]) -> None:
    jobs, store = stepped
    saved = await save_jobs(jobs, store, range(1, 5))
    await store.mark_delivered(saved[1], "https://cdn.example/1.png")
    await store.enforce_caps()
    async with store.claim_source(saved[1].job_id, 0) as source:
        assert source is not None and not source.on_disk
        assert source.attachment_url == "https://cdn.example/1.png"
    async with store.claim_source(saved[1].job_id, 7) as missing:
        assert missing is None


# -- concurrency: saves, deliveries, claims and evictions interleaved --


async def interleave(rng: random.Random, root: Path, max_files: int) -> None:
    clock = StepClock()
    async with JobStore(root / "discomfy.sqlite3", clock=clock) as jobs:
        store = OutputStore(root, jobs, max_files=max_files, clock=clock)
        done = asyncio.Event()

        async def jitter() -> None:
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0 if rng.random() < 0.7 else rng.random() / 500)

        async def owed_files_are_on_disk() -> None:
            for row in await jobs.undelivered_outputs():
                assert store.path(row).read_bytes(), f"undelivered {row.path} is gone"
            for job in await jobs.active():
                if job.parent_id is not None and job.source_index is not None:
                    source = await store.source_of(job.parent_id, job.source_index)
                    assert source is not None
                    if job.params.get("source_on_disk"):
                        present = source.on_disk and store.path(source).exists()
                        # The child may have ended since ``active()`` was read (then its source may go): only a
                        # child still active now proves the store broke its promise.
                        still_active = (await jobs.get(job.id)).active
                        assert present or not still_active, f"source {source.path} evicted"

        async def produce(n: int) -> None:
            await jitter()
            job = await new_job(jobs, n)
            saved = await store.save(job, [blob(n * 10 + i) for i in range(rng.randint(1, 2))])
            for row in saved:
                await jitter()
                assert store.path(row).exists()
                await store.mark_delivered(row, f"https://cdn.example/{n}/{row.index}")
            await jitter()
            await store.enforce_caps()

        async def upscale(n: int) -> None:
            # Sources worth protecting are delivered ones (undelivered files are never candidates anyway).
            rows: list[StoredOutput] = []
            for _ in range(200):
                await jitter()
                rows = [o for o in await jobs.stored_outputs() if o.delivered] or rows
                if rows and rng.random() < 0.3:
                    break
                await asyncio.sleep(0.001)
            if not rows:
                return
            parent = rng.choice(rows)
            async with store.claim_source(parent.job_id, parent.index) as source:
                assert source is not None
                on_disk = source.on_disk
                child = make_job(
                    n,
                    parent_id=parent.job_id,
                    source_index=parent.index,
                    kind=JobKind.UPSCALE,
                    params={"source_on_disk": on_disk},
                )
                child = dataclasses.replace(child, action=JobAction.UPSCALE)
                await jobs.create(child)
            for _ in range(rng.randint(1, 6)):
                await jitter()
                await asyncio.sleep(0.001)
                if on_disk:
                    assert await store.read(source) == store.path(source).read_bytes()
            await jobs.transition(child.id, JobState.CANCELLED)

        async def evict() -> None:
            while not done.is_set():
                await jitter()
                await store.enforce_caps()
                await asyncio.sleep(0)

        async def watch() -> None:
            while not done.is_set():
                await owed_files_are_on_disk()
                await asyncio.sleep(0.001)

        background = [asyncio.create_task(evict()), asyncio.create_task(watch())]
        producers = rng.randint(3, 8)
        try:
            await asyncio.gather(
                *(produce(n) for n in range(1, producers + 1)),
                *(upscale(100 + n) for n in range(rng.randint(1, 5))),
            )
            done.set()
            await asyncio.gather(*background)
        finally:
            done.set()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        await owed_files_are_on_disk()
        await store.enforce_caps()
        on_disk = await jobs.stored_outputs()
        assert len(on_disk) <= max_files
        assert {store.path(o) for o in on_disk} == {p for p in (root / "outputs").rglob("*") if p.is_file()}
        for job_number in range(1, producers + 1):
            for row in await jobs.outputs(make_job(job_number).id):
                assert row.delivered and row.attachment_url
                assert row.on_disk or row.evicted_at is not None


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), max_files=st.integers(1, 4))
def test_interleaved_saves_deliveries_claims_and_evictions_never_lose_an_owed_file(seed: int, max_files: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(interleave(random.Random(seed), Path(tmp), max_files))


# -- reconciling on start --


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def test_reconcile_removes_old_orphans_and_keeps_young_ones(outputs: OutputStore, jobs: JobStore) -> None:
    [kept_row] = await outputs.save(await new_job(jobs, 1), [blob(1)])
    month_dir = outputs.path(kept_row).parent
    old_orphan, young_orphan = month_dir / f"{'e' * 32}_0.png", month_dir / f"{'f' * 32}_0.png"
    for orphan in (old_orphan, young_orphan):
        orphan.write_bytes(b"left by a crash between rename and row")
    age(old_orphan, 120)
    age(outputs.path(kept_row), 3600)
    report = await outputs.reconcile()
    assert (report.orphans_removed, report.orphans_kept, report.changed) == (1, 1, True)
    assert not old_orphan.exists() and young_orphan.exists()
    assert outputs.path(kept_row).read_bytes() == blob(1).data


async def test_reconcile_removes_leftovers_of_interrupted_writes(outputs: OutputStore, jobs: JobStore) -> None:
    [row] = await outputs.save(await new_job(jobs, 1), [blob(1)])
    leftover = temp_path_for(outputs.path(row).with_name(f"{'e' * 32}_0.png"))
    leftover.write_bytes(b"half a file")
    input_leftover = temp_path_for(outputs.inputs_dir / f"{'a' * 64}.png")
    input_leftover.parent.mkdir(parents=True)
    input_leftover.write_bytes(b"half an input")
    report = await outputs.reconcile()
    assert report.temps_removed == 2
    assert not leftover.exists() and not input_leftover.exists()
    assert outputs.path(row).exists()


async def test_reconcile_marks_missing_delivered_files_evicted(outputs: OutputStore, jobs: JobStore) -> None:
    [row] = await outputs.save(await new_job(jobs, 1), [blob(1)])
    row = await outputs.mark_delivered(row, "https://cdn.example/1.png")
    outputs.path(row).unlink()
    report = await outputs.reconcile()
    assert (report.missing_delivered, report.lost) == (1, ())
    [after] = await jobs.outputs(row.job_id)
    assert not after.on_disk and after.attachment_url == "https://cdn.example/1.png"


async def test_reconcile_reports_a_lost_undelivered_file_and_marks_its_job(
    outputs: OutputStore, jobs: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    job = await new_job(jobs, 1)
    lost, kept = await outputs.save(job, [blob(1), blob(2)])
    outputs.path(lost).unlink()
    report = await outputs.reconcile()
    assert [o.index for o in report.lost] == [0] and report.lost_jobs == {job.id}
    assert (await jobs.get(job.id)).error == LOST_MESSAGE
    assert await jobs.undelivered_outputs() == [kept]
    assert any(r.levelname == "ERROR" and lost.path in r.getMessage() for r in caplog.records)


async def test_reconcile_of_a_consistent_store_changes_nothing(outputs: OutputStore, jobs: JobStore) -> None:
    rows = await outputs.save(await new_job(jobs, 1), [blob(1), blob(2)])
    report = await outputs.reconcile()
    assert not report.changed
    assert await jobs.stored_outputs() == rows


async def test_reconcile_keeps_inputs_of_active_jobs_and_removes_the_rest(
    outputs: OutputStore, jobs: JobStore, data_dir: Path
) -> None:
    in_use = await outputs.save_input(b"attachment one", "png")
    unused = await outputs.save_input(b"attachment two", "png")
    young = await outputs.save_input(b"attachment three", "png")
    await new_job(jobs, 1, params={"image": f"discomfy/{in_use.name}"})
    await new_job(jobs, 2, params={"nested": [{"image": str(in_use)}]})
    ended = await new_job(jobs, 3, params={"image": unused.name})
    await jobs.transition(ended.id, JobState.CANCELLED)
    for path in (in_use, unused):
        age(path, 120)
    async with JobStore(data_dir / "discomfy.sqlite3") as reopened:  # a restart: no uses counted in memory
        restarted = OutputStore(data_dir, reopened)
        report = await restarted.reconcile()
        assert (report.inputs_removed, report.inputs_in_use) == (1, 1)
        assert in_use.exists() and young.exists() and not unused.exists()
        assert restarted.input_uses(in_use) == 2
        await restarted.release_input(in_use)
        assert in_use.exists()
        await restarted.release_input(in_use)
        assert not in_use.exists()


# -- disk full and unwritable folders --


async def test_disk_full_fails_the_save_cleanly_and_keeps_earlier_files(data_dir: Path, jobs: JobStore) -> None:
    writer = BudgetWriter(150)
    store = OutputStore(data_dir, jobs, writer=writer)
    [earlier] = await store.save(await new_job(jobs, 1), [blob(1)])
    job = await new_job(jobs, 2)
    with pytest.raises(OutputStoreError) as caught:
        await store.save(job, [blob(2), blob(3)])  # the first fits, the second runs out of space
    assert caught.value.user_message == DISK_FULL
    assert "No space left" in str(caught.value)
    assert await jobs.outputs(job.id) == []
    assert files_under(data_dir / "outputs") == {earlier.path.removeprefix("outputs/")}
    assert await store.read(earlier) == blob(1).data
    writer.budget = 10_000  # an admin freed space: the bot goes on saving
    assert len(await store.save(job, [blob(2), blob(3)])) == 2


async def test_an_unwritable_folder_fails_the_save_with_a_clear_message(data_dir: Path, jobs: JobStore) -> None:
    store = OutputStore(data_dir, jobs)
    (data_dir / "outputs").write_bytes(b"a file where the folder should be")
    job = await new_job(jobs, 1)
    with pytest.raises(OutputStoreError) as caught:
        await store.save(job, [blob(1)])
    assert caught.value.user_message == UNWRITABLE
    assert await jobs.outputs(job.id) == []


async def test_a_save_whose_rows_cannot_be_written_leaves_no_files(outputs: OutputStore, data_dir: Path) -> None:
    never_created = make_job(9)
    with pytest.raises(Exception, match="can't find job"):
        await outputs.save(never_created, [blob(1), blob(2)])
    assert files_under(data_dir / "outputs") == set()


# -- temporary inputs --


async def test_inputs_are_stored_once_per_content_and_removed_with_the_last_use(outputs: OutputStore) -> None:
    first = await outputs.save_input(b"the same attachment", ".png")
    second = await outputs.save_input(b"the same attachment", "png")
    other = await outputs.save_input(b"another attachment", "JPG")
    assert first == second and first.parent == outputs.inputs_dir and first.read_bytes() == b"the same attachment"
    assert other.suffix == ".jpg" and other != first
    assert len(files_under(outputs.inputs_dir)) == 2
    await outputs.release_input(first)
    assert first.exists() and outputs.input_uses(first) == 1
    await outputs.release_input(second)
    assert not first.exists() and other.exists()


async def test_an_input_on_a_full_disk_fails_cleanly(data_dir: Path, jobs: JobStore) -> None:
    store = OutputStore(data_dir, jobs, writer=BudgetWriter(5))
    with pytest.raises(OutputStoreError) as caught:
        await store.save_input(b"too big for the disk", "png")
    assert caught.value.user_message == DISK_FULL
    assert files_under(store.inputs_dir) == set()


async def test_releasing_a_path_outside_the_inputs_leaves_it_alone(outputs: OutputStore, tmp_path: Path) -> None:
    precious = tmp_path / "precious.png"
    precious.write_bytes(b"not ours")
    await outputs.release_input(precious)
    assert precious.exists()


def mp4(frames: int = 10, fps: int = 10) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 48), (i * 20, 0, 0)))
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


async def test_a_video_gets_its_size_and_duration(outputs: OutputStore, jobs: JobStore) -> None:
    [video] = await outputs.save(await new_job(jobs, 1), [fetched(mp4(), "clip.mp4", MediaKind.VIDEO)])
    assert (video.kind, video.mime, video.width, video.height) == (OutputKind.VIDEO, "video/mp4", 64, 48)
    assert video.duration == pytest.approx(1.0, abs=0.15)


async def test_reconcile_leaves_a_save_in_progress_alone(data_dir: Path, jobs: JobStore) -> None:
    writing, release = threading.Event(), threading.Event()

    def slow_writer(file: BinaryIO, data: bytes) -> None:
        file.write(data)
        writing.set()
        release.wait(10)

    store = OutputStore(data_dir, jobs, writer=slow_writer)
    job = await new_job(jobs, 1)
    saving = asyncio.create_task(store.save(job, [blob(1)]))
    assert await asyncio.to_thread(writing.wait, 10)
    [temp] = [p for p in (data_dir / "outputs").rglob("*.part")]
    age(temp, 3600)
    report = await store.reconcile()
    assert report.temps_removed == 0 and temp.exists()
    release.set()
    [row] = await saving
    assert store.path(row).read_bytes() == blob(1).data
