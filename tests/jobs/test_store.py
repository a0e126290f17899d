import asyncio
import dataclasses
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from discomfy.jobs.records import OutputKind, StoredOutput
from discomfy.jobs.schema import SCHEMA_VERSION
from discomfy.jobs.state import (
    ApplicationId,
    GuildId,
    IllegalTransitionError,
    InteractionRef,
    JobId,
    JobKind,
    JobState,
    MessageId,
    PromptId,
    UserId,
)
from discomfy.jobs.store import JobNotFoundError, JobStore, JobStoreError, migrate
from discomfy.outcome import Failure
from tests.jobs.factories import T0, make_job

S = JobState
AT = {"server_url": "http://gpu-1:8188", "prompt_id": PromptId("p-1")}


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 100

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "discomfy.sqlite3"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(db_path: Path, clock: Clock) -> AsyncIterator[JobStore]:
    async with JobStore(db_path, clock=clock) as opened:
        yield opened


def output(job_number: int, index: int = 0, *, created_at: float = T0) -> StoredOutput:
    job_id = make_job(job_number).id
    return StoredOutput(
        job_id=job_id,
        index=index,
        kind=OutputKind.IMAGE,
        path=f"outputs/{job_id}_{index}.png",
        mime="image/png",
        size=1234,
        sha256="ab" * 32,
        created_at=created_at,
        width=512,
        height=512,
    )


async def test_a_created_job_reads_back_equal(store: JobStore) -> None:
    job = make_job(
        guild_id=GuildId(7),
        message_id=MessageId(99),
        interaction=InteractionRef(ApplicationId(3), "tok", T0),
        params={"prompt": "a cat", "steps": 20, "nested": {"a": [1, 2]}},
        seed=2**64 - 1,
        parent_id=JobId("f" * 32),
        source_index=2,
    )
    await store.create(job)
    assert await store.get(job.id) == job


async def test_a_new_job_must_start_waiting(store: JobStore) -> None:
    with pytest.raises(IllegalTransitionError):
        await store.create(make_job(state=S.RUNNING))


async def test_getting_an_unknown_job_says_so(store: JobStore) -> None:
    with pytest.raises(JobNotFoundError) as caught:
        await store.get("nope")
    assert "can't find that job" in caught.value.user_message  # not our id's shape: not repeated back
    with pytest.raises(JobNotFoundError) as caught:
        await store.get("f" * 32)
    assert f"can't find job {'f' * 32}" in caught.value.user_message


async def test_transition_goes_through_the_state_table_and_stamps_time(store: JobStore, clock: Clock) -> None:
    job = await store.create(make_job())
    moved = await store.transition(job.id, S.SUBMITTING, **AT)
    assert (moved.state, moved.prompt_id, moved.submitted_at) == (S.SUBMITTING, "p-1", clock.now)
    assert await store.get(job.id) == moved


async def test_an_illegal_transition_leaves_the_row_unchanged(store: JobStore) -> None:
    job = await store.create(make_job())
    with pytest.raises(IllegalTransitionError):
        await store.transition(job.id, S.DELIVERED)
    assert await store.get(job.id) == job


async def test_a_failing_write_is_rolled_back_and_the_store_stays_usable(store: JobStore) -> None:
    job = await store.create(make_job())
    with pytest.raises(TypeError):
        await store.update(job.id, params={"bad": object()})  # not JSON: fails inside the transaction
    assert await store.get(job.id) == job
    assert (await store.update(job.id, message_id=5)).message_id == 5


async def test_update_changes_fields_but_not_state(store: JobStore) -> None:
    job = await store.create(make_job())
    assert (await store.update(job.id, message_id=MessageId(42))).message_id == 42
    with pytest.raises(ValueError, match="state"):
        await store.update(job.id, state=S.RUNNING)


async def test_a_duplicate_job_id_is_refused(store: JobStore) -> None:
    await store.create(make_job())
    with pytest.raises(JobStoreError):
        await store.create(make_job())


async def test_active_lists_unfinished_jobs_oldest_first(store: JobStore) -> None:
    for n, created in [(1, T0 + 3), (2, T0 + 1), (3, T0 + 2)]:
        await store.create(make_job(n, created_at=created))
    await store.transition(make_job(3).id, S.CANCELLED)
    assert [j.id for j in await store.active()] == [make_job(2).id, make_job(1).id]


async def test_by_owner_lists_active_or_all_jobs_of_one_user(store: JobStore) -> None:
    await store.create(make_job(1, owner=10))
    await store.create(make_job(2, owner=10))
    await store.create(make_job(3, owner=11))
    await store.transition(make_job(1).id, S.CANCELLED)
    assert [j.id for j in await store.by_owner(10)] == [make_job(2).id]
    assert len(await store.by_owner(10, active_only=False)) == 2


async def test_counts_are_per_user_and_total_over_active_jobs(store: JobStore) -> None:
    for n, owner in [(1, 10), (2, 10), (3, 11), (4, 11)]:
        await store.create(make_job(n, owner=owner))
    await store.transition(make_job(4).id, S.FAILED, failure=Failure.WORKFLOW, error="boom")
    counts = await store.counts()
    assert (counts.of(UserId(10)), counts.of(UserId(11)), counts.of(UserId(12)), counts.total) == (2, 1, 0, 3)


async def test_outputs_are_recorded_and_listed_in_index_order(store: JobStore) -> None:
    await store.create(make_job(1))
    for index in (1, 0):
        await store.add_output(output(1, index))
    assert [o.index for o in await store.outputs(make_job(1).id)] == [0, 1]
    assert (await store.outputs(make_job(1).id))[0] == output(1, 0)


async def test_an_output_of_an_unknown_job_is_refused(store: JobStore) -> None:
    with pytest.raises(JobNotFoundError):
        await store.add_output(output(9))


async def test_mark_delivered_records_time_and_attachment_url(store: JobStore, clock: Clock) -> None:
    await store.create(make_job(1))
    await store.add_output(output(1))
    marked = await store.mark_delivered(make_job(1).id, 0, "https://cdn.example/a.png")
    assert (marked.delivered_at, marked.attachment_url) == (clock.now, "https://cdn.example/a.png")
    assert await store.undelivered_outputs() == []


async def test_marking_an_unknown_output_says_so(store: JobStore) -> None:
    await store.create(make_job(1))
    with pytest.raises(JobNotFoundError, match="output 1"):
        await store.mark_delivered(make_job(1).id, 0)


async def test_undelivered_outputs_are_listed_oldest_first(store: JobStore) -> None:
    for n in (1, 2):
        await store.create(make_job(n))
    await store.add_output(output(2, created_at=T0 + 1))
    await store.add_output(output(1, created_at=T0 + 2))
    assert [o.job_id for o in await store.undelivered_outputs()] == [make_job(2).id, make_job(1).id]


async def test_eviction_candidates_are_delivered_files_oldest_delivery_first(store: JobStore) -> None:
    for n in (1, 2, 3):
        await store.create(make_job(n))
        await store.add_output(output(n))
    await store.mark_delivered(make_job(2).id, 0, at=T0 + 1)
    await store.mark_delivered(make_job(1).id, 0, at=T0 + 2)
    assert [o.job_id for o in await store.delivered_outputs_oldest_first()] == [make_job(2).id, make_job(1).id]


async def test_the_source_of_an_active_upscale_is_not_an_eviction_candidate(store: JobStore) -> None:
    await store.create(make_job(1))
    await store.add_output(output(1))
    await store.mark_delivered(make_job(1).id, 0, at=T0 + 1)
    await store.create(make_job(2, parent_id=make_job(1).id, source_index=0, kind=JobKind.UPSCALE))
    assert await store.delivered_outputs_oldest_first() == []
    await store.transition(make_job(2).id, S.CANCELLED)
    assert len(await store.delivered_outputs_oldest_first()) == 1


async def test_an_evicted_output_keeps_its_row_and_url(store: JobStore) -> None:
    await store.create(make_job(1))
    await store.add_output(output(1))
    await store.mark_delivered(make_job(1).id, 0, "https://cdn.example/a.png", at=T0 + 1)
    evicted = await store.evict_output(make_job(1).id, 0, at=T0 + 2)
    assert (evicted.on_disk, evicted.attachment_url) == (False, "https://cdn.example/a.png")
    assert await store.delivered_outputs_oldest_first() == []
    assert await store.stored_outputs() == []


async def test_delete_output_removes_the_row(store: JobStore) -> None:
    await store.create(make_job(1))
    await store.add_output(output(1))
    assert await store.delete_output(make_job(1).id, 0)
    assert not await store.delete_output(make_job(1).id, 0)
    assert await store.outputs(make_job(1).id) == []


async def test_concurrent_transitions_are_serialised(store: JobStore) -> None:
    job = await store.create(make_job())
    await store.transition(job.id, S.SUBMITTING, **AT)
    outcomes = await asyncio.gather(
        store.transition(job.id, S.CANCELLED),
        store.transition(job.id, S.QUEUED),
        return_exceptions=True,
    )
    # Cancelled first (it was asked first), so the second move finds a terminal job and is refused.
    assert isinstance(outcomes[1], IllegalTransitionError)
    assert (await store.get(job.id)).state is S.CANCELLED


async def test_jobs_and_outputs_survive_a_restart(db_path: Path) -> None:
    async with JobStore(db_path) as first:
        job = await first.create(make_job(params={"prompt": "a dog"}))
        moved = await first.transition(job.id, S.SUBMITTING, **AT)
        await first.add_output(output(1))
    async with JobStore(db_path) as second:
        assert await second.active() == [moved]
        assert await second.outputs(job.id) == [output(1)]


async def test_the_database_uses_wal_and_the_current_schema_version(store: JobStore, db_path: Path) -> None:
    await store.create(make_job())
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


async def test_a_version_1_file_is_migrated_and_keeps_its_jobs(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    async with aiosqlite.connect(db_path, isolation_level=None) as old:
        assert await migrate(old, target=1) == 0
        await old.execute(
            "INSERT INTO jobs (id, owner_id, channel_id, workflow, kind, action, params, seed, state, created_at)"
            " VALUES ('j1', 10, 500, 'txt2img', 'image', 'generate', '{\"steps\": 4}', '42', 'queued', 1.5)"
        )
    async with JobStore(db_path) as store:
        job = await store.get("j1")
        assert (job.state, job.params, job.seed) == (S.QUEUED, {"steps": 4}, 42)
        await store.add_output(dataclasses.replace(output(1), job_id=JobId("j1")))
        assert len(await store.outputs("j1")) == 1


async def test_a_file_from_a_newer_schema_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(JobStoreError, match="newer than this discomfy"):
        await JobStore.open(db_path)


async def test_a_damaged_row_is_reported_as_a_store_error(store: JobStore, db_path: Path) -> None:
    job = await store.create(make_job())
    with sqlite3.connect(db_path) as raw:
        raw.execute("UPDATE jobs SET state = 'exploded' WHERE id = ?", (job.id,))
    raw.close()
    with pytest.raises(JobStoreError, match="unreadable row"):
        await store.get(job.id)


async def test_a_closed_store_refuses_to_work(db_path: Path) -> None:
    store = await JobStore.open(db_path)
    await store.close()
    await store.close()  # closing twice is harmless
    with pytest.raises(JobStoreError, match="closed"):
        await store.get("x")


CRASH_MID_WRITE = """
import asyncio, os, sys
from discomfy.jobs.store import JobStore

async def main():
    store = await JobStore.open(sys.argv[1])
    async with store._write("crashing") as db:
        await db.execute("UPDATE jobs SET state = 'running', error = 'half' WHERE id = ?", (sys.argv[2],))
        os._exit(3)  # the process dies between the statement and COMMIT

asyncio.run(main())
"""


async def test_a_crash_in_the_middle_of_a_write_leaves_the_old_row(db_path: Path) -> None:
    async with JobStore(db_path) as store:
        job = await store.create(make_job())
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CRASH_MID_WRITE, str(db_path), job.id)
    assert await asyncio.wait_for(proc.wait(), 30) == 3
    async with JobStore(db_path) as store:
        assert await store.get(job.id) == job


async def test_counting_jobs_by_state_and_workflow_reads_the_index_not_the_rows(tmp_path: Path) -> None:
    """/metrics runs this count at every scrape (schema step 5)."""
    async with JobStore(tmp_path / "q.sqlite3"):
        pass
    with sqlite3.connect(tmp_path / "q.sqlite3") as raw:
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT state, workflow, COUNT(*) FROM jobs GROUP BY state, workflow"
        ).fetchall()
    raw.close()
    assert "USING COVERING INDEX jobs_by_state_workflow" in " ".join(str(row[-1]) for row in plan)
