"""The job service against the ComfyUI emulator, a real pool and engine, a real SQLite store and the shipped
workflows: jobs are admitted, queued fairly, run, stored and delivered once, cancelled on request, and survive
a restart of the bot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from discomfy.comfy.engine import Engine, EngineOptions, InputImage
from discomfy.comfy.pool import ServerPool
from discomfy.comfy.progress import Phase, Snapshot
from discomfy.comfy.stream import FetchedFile
from discomfy.config import DEFAULT_MODELS, LimitSettings, PermissionSettings, Settings
from discomfy.errors import BadInputError, PermissionDeniedError, RateLimitedError, UserError
from discomfy.jobs.admission import Actor, Limits
from discomfy.jobs.outputs import OutputStore
from discomfy.jobs.records import StoredOutput
from discomfy.jobs.runner import ServiceOptions, state_for
from discomfy.jobs.service import JobRequest, JobService
from discomfy.jobs.state import ChannelId, Job, JobAction, JobKind, JobState, UserId, new_job_id, new_prompt_id
from discomfy.jobs.store import JobStore
from discomfy.media.picture import Picture
from discomfy.outcome import Failure
from discomfy.retry import Backoff
from discomfy.workflows import Kind, Registry, bind
from tests.peers.comfyui import ComfyEmulator
from tests.support import FAST_STREAM

pytestmark = pytest.mark.timeout(40)

FAST = ServiceOptions(
    poll_interval=0.05,
    previews=False,
    deliver_backoff=Backoff(base=0.02, cap=0.02, jitter=False),
    deliver_give_up_after=20.0,
    cancel_wait=5.0,
)
S = JobState


# -- the rig: our own protocols, recorded --------------------------------------------------------------------


class RecordingStore(JobStore):
    """The real store, remembering every state move (and how many prompts the emulator had seen by then)."""

    emulator: ComfyEmulator | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.moves: list[tuple[str, JobState, Job, int]] = []

    async def transition(self, job_id: str, new_state: JobState, **fields: Any) -> Job:
        job = await super().transition(job_id, new_state, **fields)
        self.moves.append((job_id, new_state, job, posts(self.emulator) if self.emulator else 0))
        return job

    def path_of(self, job_id: str) -> list[JobState]:
        return [state for jid, state, _, _ in self.moves if jid == job_id]


class CountingOutputs(OutputStore):
    """The real output store, counting its saves; ``fail_with`` makes the next saves raise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.saved: list[str] = []
        self.fail_with: Exception | None = None

    async def save(self, job: Job, files: Sequence[FetchedFile]) -> list[StoredOutput]:
        if self.fail_with is not None:
            raise self.fail_with
        self.saved.append(job.id)
        return await super().save(job, files)


@dataclass
class Recorder:
    """The bot's side, recorded: progress, deliveries (with what the store held then) and ends."""

    store: JobStore
    progress: list[tuple[str, JobState, Snapshot, int | None]] = field(default_factory=list)
    deliveries: list[tuple[str, list[StoredOutput], list[StoredOutput]]] = field(default_factory=list)
    endings: list[Job] = field(default_factory=list)
    fail_deliveries: int = 0
    fail_progress: bool = False
    #: The job as each progress update showed it (its workflow may change when it is dispatched).
    shown_jobs: list[Job] = field(default_factory=list)

    def show(self, job: Job, snapshot: Snapshot, our_queue_position: int | None) -> None:
        self.progress.append((job.id, job.state, snapshot, our_queue_position))
        self.shown_jobs.append(job)
        if self.fail_progress:
            raise RuntimeError("the observer broke")

    async def deliver(self, job: Job, outputs: Sequence[StoredOutput]) -> None:
        self.deliveries.append((job.id, list(outputs), await self.store.outputs(job.id)))
        if self.fail_deliveries:
            self.fail_deliveries -= 1
            raise ConnectionError("Discord is down")

    async def ended(self, job: Job, snapshot: Snapshot | None) -> None:
        self.endings.append(job)

    def delivered(self, job_id: str) -> list[list[StoredOutput]]:
        return [outputs for jid, outputs, _ in self.deliveries if jid == job_id]


@dataclass
class Rig:
    service: JobService
    store: RecordingStore
    observer: Recorder
    sink: CountingOutputs
    engine: Engine

    async def close(self) -> None:
        await self.service.close()
        await self.engine.pool.close()
        await self.store.close()


@pytest.fixture
def open_rig(
    comfyui_emulator: ComfyEmulator, registry: Registry, session: aiohttp.ClientSession, tmp_path: Path
) -> Callable[..., Any]:
    async def open_(*, capacity: int = 2, per_user: int = 3, options: ServiceOptions = FAST, **recorder: Any) -> Rig:
        store = await RecordingStore.open(tmp_path / "jobs.sqlite3")
        store.emulator = comfyui_emulator
        pool = ServerPool([comfyui_emulator.url], session, capacity=capacity, health_interval=0.2, timeout=5.0)
        await pool.start()
        engine = Engine(pool, EngineOptions(stream=FAST_STREAM))
        limit_settings = LimitSettings(max_jobs_per_user=per_user, max_jobs_total=50)
        settings = Settings(limits=limit_settings)
        observer = Recorder(store, **recorder)
        sink = CountingOutputs(tmp_path / "data", store)
        service = JobService(
            store=store,
            engine=engine,
            registry=registry,
            outputs=sink,
            observer=observer,
            limits=Limits(limit_settings, PermissionSettings()),
            settings=settings,
            options=options,
        )
        await service.start()
        return Rig(service, store, observer, sink, engine)

    return open_


def actor(user: int, *, moderator: bool = False) -> Actor:
    return Actor(UserId(user), ChannelId(500), can_manage_messages=moderator)


def request(owner: int, **params: Any) -> JobRequest:
    values = {"prompt": f"a red fox for {owner}", "width": 256, "height": 256, "steps": 4, **params}
    return JobRequest(owner, 1, 500, None, None, Kind.IMAGE, JobAction.GENERATE, values)


def posts(emu: ComfyEmulator) -> int:
    return sum(1 for r in emu.requests if r.method == "POST" and r.path == "/prompt")


def executions(emu: ComfyEmulator, prompt_id: str | None) -> int:
    return sum(
        1
        for r in emu.ws_log
        if r.direction in ("out", "lost")
        and r.type == "execution_start"
        and isinstance(r.data, dict)
        and r.data.get("prompt_id") == prompt_id
    )


async def until(store: JobStore, job_id: str, *states: JobState, timeout: float = 20.0) -> Job:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while True:
            job = await store.get(job_id)
            if job.state in states:
                return job
            await asyncio.sleep(0.02)


async def slow(emu: ComfyEmulator) -> None:
    emu.config.step_duration = 0.05


# -- the happy path -------------------------------------------------------------------------------------------


async def test_a_job_goes_from_waiting_to_delivered_with_its_row_written_before_each_step(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    rig: Rig = await open_rig()
    job = await rig.service.submit(request(1), actor(1))
    assert job.state is S.WAITING and isinstance(job.seed, int) and job.params["seed"] == job.seed
    done = await until(rig.store, job.id, S.DELIVERED, S.FAILED)
    await rig.close()

    assert done.state is S.DELIVERED, done.error
    path = rig.store.path_of(job.id)
    assert path[0] is S.SUBMITTING and path[-2:] == [S.DELIVERING, S.DELIVERED]
    assert set(path[1:-2]) <= {S.QUEUED, S.RUNNING}
    _, _, submitting, posts_then = rig.store.moves[0]
    assert submitting.server_url == comfyui_emulator.url and submitting.prompt_id == done.prompt_id
    assert posts_then == 0  # written before the emulator saw the POST
    assert executions(comfyui_emulator, done.prompt_id) == 1
    [(_, outputs, stored_then)] = rig.observer.deliveries
    assert outputs == stored_then and len(outputs) == 1  # saved before deliver was called
    assert rig.observer.progress and all(jid == job.id for jid, *_ in rig.observer.progress)
    assert rig.observer.endings == []


async def test_twenty_jobs_from_five_users_start_in_turns_and_the_per_user_cap_refuses_the_fifth(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    rig: Rig = await open_rig(capacity=1, per_user=4)
    await slow(emu)
    blocker = await rig.service.submit(request(99, steps=20), actor(99))
    await until(rig.store, blocker.id, S.RUNNING)
    jobs = [
        await rig.service.submit(request(user, prompt=f"job {n}"), actor(user))
        for user in range(1, 6)
        for n in range(4)
    ]
    with pytest.raises(RateLimitedError) as refused:
        await rig.service.submit(request(1), actor(1))
    assert "4 jobs" in refused.value.user_message
    assert [rig.service.position(j.id) for j in jobs[:5]] == [1, 6, 11, 16, 2]
    emu.config.step_duration = 0.002
    for job in jobs:
        assert (await until(rig.store, job.id, S.DELIVERED, S.FAILED, timeout=30)).state is S.DELIVERED
    await rig.close()

    started = [jid for jid, state, _, _ in rig.store.moves if state is S.SUBMITTING and jid != blocker.id]
    owners = {j.id: j.owner_id for j in jobs}
    assert [owners[jid] for jid in started] == [1, 2, 3, 4, 5] * 4
    assert len(rig.observer.deliveries) == 21
    waiting_updates = [pos for jid, _, _, pos in rig.observer.progress if jid == jobs[-1].id and pos is not None]
    assert waiting_updates[0] == 20 and waiting_updates[-1] == 1  # it heard its place go down


# -- cancel -------------------------------------------------------------------------------------------------------


async def test_cancel_while_waiting_in_our_queue_sends_nothing_and_a_stranger_is_refused(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    rig: Rig = await open_rig(capacity=1)
    await slow(emu)
    first = await rig.service.submit(request(1, steps=20), actor(1))
    await until(rig.store, first.id, S.RUNNING)
    waiting = await rig.service.submit(request(2), actor(2))
    assert rig.service.position(waiting.id) == 1
    with pytest.raises(PermissionDeniedError):
        await rig.service.cancel(waiting.id, actor(3))
    cancelled = await rig.service.cancel(waiting.id, actor(2))
    assert cancelled.state is S.CANCELLED and rig.service.position(waiting.id) is None
    assert [j.id for j in rig.observer.endings] == [waiting.id]
    emu.config.step_duration = 0.002
    await until(rig.store, first.id, S.DELIVERED)
    await rig.close()
    assert not any(r.json and r.json.get("client_id") == waiting.id for r in emu.requests)


async def test_waiting_jobs_are_shown_again_when_every_server_goes_down(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    rig: Rig = await open_rig(capacity=1)
    await slow(emu)
    first = await rig.service.submit(request(1, steps=40), actor(1))
    await until(rig.store, first.id, S.RUNNING)
    waiting = await rig.service.submit(request(2), actor(2))

    def shown() -> int:
        return sum(1 for job_id, *_ in rig.observer.progress if job_id == waiting.id)

    async def until_shown(more_than: int) -> None:
        async with asyncio.timeout(10):
            while shown() <= more_than:  # noqa: ASYNC110 - the observer is our recorder, polled
                await asyncio.sleep(0.02)

    await until_shown(0)
    before = shown()
    rig.engine.pool.mark_down(emu.url, "test: the server went away")
    await until_shown(before)  # redrawn (its message can now say no server answers), same place
    assert [place for job_id, _, _, place in rig.observer.progress if job_id == waiting.id][-1] == 1
    await rig.service.cancel(first.id, actor(1))
    await rig.service.cancel(waiting.id, actor(2))
    await rig.close()


async def test_a_moderator_cancels_a_running_job_at_the_server(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    rig: Rig = await open_rig()
    await slow(emu)
    job = await rig.service.submit(request(1, steps=30), actor(1))
    running = await until(rig.store, job.id, S.RUNNING)
    with pytest.raises(PermissionDeniedError):
        await rig.service.cancel(job.id, actor(2))
    cancelled = await rig.service.cancel(job.id, actor(2, moderator=True))
    await rig.close()
    assert cancelled.state is S.CANCELLED
    assert emu.queue.history[running.prompt_id]["status"]["status_str"] == "error"  # interrupted
    assert [j.id for j in rig.observer.endings] == [job.id] and rig.observer.deliveries == []


# -- restart ------------------------------------------------------------------------------------------------------


async def test_after_a_restart_the_running_job_is_reattached_and_the_waiting_one_runs(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    first_life: Rig = await open_rig(capacity=1)
    await slow(emu)
    running = await first_life.service.submit(request(1, steps=30), actor(1))
    waiting = await first_life.service.submit(request(2), actor(2))
    at_server = await until(first_life.store, running.id, S.RUNNING)
    assert (await first_life.store.get(waiting.id)).state is S.WAITING
    await first_life.close()
    assert [i.prompt_id for i in emu.queue.running_items()] == [at_server.prompt_id]  # still running there

    second_life: Rig = await open_rig(capacity=1)
    emu.config.step_duration = 0.002
    for job in (running, waiting):
        assert (await until(second_life.store, job.id, S.DELIVERED, S.FAILED)).state is S.DELIVERED
    await second_life.close()
    assert executions(emu, at_server.prompt_id) == 1  # followed, not run again
    assert len(second_life.observer.delivered(running.id)) == 1
    assert len(second_life.observer.delivered(waiting.id)) == 1
    assert second_life.store.path_of(running.id)[-2:] == [S.DELIVERING, S.DELIVERED]
    assert second_life.observer.progress[0][0] in (running.id, waiting.id)  # resumed messages


async def test_a_job_left_delivering_is_delivered_again_from_its_stored_outputs(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    first_life: Rig = await open_rig(fail_deliveries=1000)
    job = await first_life.service.submit(request(1), actor(1))
    await until(first_life.store, job.id, S.DELIVERING)
    await comfyui_emulator.wait_for(lambda: first_life.observer.deliveries, timeout=10)
    await first_life.close()
    stored = first_life.observer.deliveries[0][1]

    second_life: Rig = await open_rig()
    done = await until(second_life.store, job.id, S.DELIVERED)
    await second_life.close()
    assert done.state is S.DELIVERED
    assert second_life.observer.delivered(job.id) == [stored]
    assert first_life.sink.saved == [job.id] and second_life.sink.saved == []  # stored once


# -- delivery, bad input, observers and surprises -----------------------------------------------------------------


async def test_a_delivery_that_fails_twice_is_retried_and_delivered_once_with_the_same_outputs(
    open_rig: Callable[..., Any],
) -> None:
    rig: Rig = await open_rig(fail_deliveries=2)
    job = await rig.service.submit(request(1), actor(1))
    done = await until(rig.store, job.id, S.DELIVERED, S.FAILED)
    await rig.close()
    assert done.state is S.DELIVERED
    attempts = rig.observer.delivered(job.id)
    assert len(attempts) == 3 and attempts[0] == attempts[1] == attempts[2]
    assert rig.sink.saved == [job.id] and rig.store.path_of(job.id).count(S.DELIVERED) == 1


async def test_bad_params_are_refused_naming_the_option_and_nothing_is_stored_or_sent(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    rig: Rig = await open_rig()
    with pytest.raises(BadInputError) as bad:
        await rig.service.submit(request(1, steps=500), actor(1))
    with pytest.raises(BadInputError, match="colour"):
        await rig.service.submit(request(1, colour="red"), actor(1))
    counts = await rig.store.counts()
    await asyncio.sleep(0.1)
    await rig.close()
    assert "steps" in bad.value.user_message
    assert counts.total == 0 and posts(comfyui_emulator) == 0


async def test_an_observer_that_raises_on_progress_does_not_break_the_job(open_rig: Callable[..., Any]) -> None:
    rig: Rig = await open_rig(fail_progress=True)
    job = await rig.service.submit(request(1), actor(1))
    done = await until(rig.store, job.id, S.DELIVERED, S.FAILED)
    await rig.close()
    assert done.state is S.DELIVERED and rig.observer.progress
    assert len(rig.observer.delivered(job.id)) == 1


async def test_an_unexpected_error_fails_the_job_with_a_reference_id_in_the_log(
    open_rig: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    rig: Rig = await open_rig()
    rig.sink.fail_with = OSError("disk on fire")
    job = await rig.service.submit(request(1), actor(1))
    failed = await until(rig.store, job.id, S.FAILED, S.DELIVERED)
    await rig.close()
    assert failed.state is S.FAILED and failed.failure is Failure.INTERNAL and failed.error
    ref = failed.error
    assert any(ref in r.getMessage() and r.exc_info for r in caplog.records)
    assert [j.id for j in rig.observer.endings] == [job.id]


def test_snapshots_map_onto_the_state_table() -> None:
    def snap(phase: Phase, failure: Failure | None = None) -> Snapshot:
        return Snapshot(prompt_id="p", phase=phase, failure=failure)

    assert state_for(S.WAITING, snap(Phase.QUEUED), landed=False) is None
    assert state_for(S.SUBMITTING, snap(Phase.QUEUED), landed=False) is None
    assert state_for(S.SUBMITTING, snap(Phase.QUEUED), landed=True) is S.QUEUED
    assert state_for(S.RUNNING, snap(Phase.QUEUED), landed=True) is None  # sent again: on_submit moves it
    assert state_for(S.QUEUED, snap(Phase.RUNNING), landed=True) is S.RUNNING
    assert state_for(S.RUNNING, snap(Phase.DONE), landed=True) is S.DELIVERING
    assert state_for(S.RUNNING, snap(Phase.FAILED, Failure.WORKFLOW), landed=True) is S.FAILED
    assert state_for(S.RUNNING, snap(Phase.FAILED, Failure.LOST), landed=True) is S.LOST
    assert state_for(S.WAITING, snap(Phase.CANCELLED), landed=False) is S.CANCELLED
    assert state_for(S.WAITING, snap(Phase.FAILED, Failure.LOST), landed=False) is S.FAILED
    assert state_for(S.DELIVERING, snap(Phase.FAILED, Failure.SERVER), landed=True) is None


async def test_on_start_a_prompt_the_server_never_got_is_sent_and_a_running_one_it_forgot_is_lost(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator, registry: Registry, tmp_path: Path
) -> None:
    """Rows as a crash leaves them: one written 'submitting' just before its POST, one 'running' at a server
    that has since restarted (and forgot it)."""
    values = bind(
        registry.get("txt2img"),
        {"prompt": "a crash", "width": 256, "height": 256, "steps": 4, "seed": 5},
        DEFAULT_MODELS,
    ).values
    rows = []
    async with JobStore(tmp_path / "jobs.sqlite3") as store:
        for state in (S.SUBMITTING, S.RUNNING):
            job = await store.create(
                Job(
                    new_job_id(),
                    UserId(1),
                    ChannelId(500),
                    "txt2img",
                    JobKind.IMAGE,
                    JobAction.GENERATE,
                    time.time(),
                    params=values,
                    seed=5,
                )
            )
            await store.transition(job.id, S.SUBMITTING, server_url=comfyui_emulator.url, prompt_id=new_prompt_id())
            if state is S.RUNNING:
                await store.transition(job.id, S.RUNNING)
            rows.append(job)
    never_sent, forgotten = rows

    rig: Rig = await open_rig()
    sent = await until(rig.store, never_sent.id, S.DELIVERED, S.FAILED, S.LOST)
    lost = await until(rig.store, forgotten.id, S.DELIVERED, S.FAILED, S.LOST)
    await rig.close()
    assert sent.state is S.DELIVERED and executions(comfyui_emulator, sent.prompt_id) == 1
    assert rig.store.path_of(never_sent.id)[0] is S.SUBMITTING  # sent again, recorded first
    assert lost.state is S.LOST and lost.failure is Failure.LOST
    assert executions(comfyui_emulator, lost.prompt_id) == 0  # a started job is not run twice behind our back
    assert [j.id for j in rig.observer.endings] == [forgotten.id]


async def test_an_upscale_of_a_stored_result_uploads_it_and_is_delivered(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    rig: Rig = await open_rig()
    parent = await rig.service.submit(request(1), actor(1))
    await until(rig.store, parent.id, S.DELIVERED)
    [source] = await rig.store.outputs(parent.id)
    data = await rig.sink.read(source)
    assert data is not None
    image = Picture.of(data, "png")
    upscale = JobRequest(2, 1, 500, None, None, Kind.UPSCALE, JobAction.UPSCALE, {"scale": 2}, parent.id, 0, (image,))
    child = await rig.service.submit(upscale, actor(2))
    assert child.workflow == "upscale" and child.params["image"] == InputImage.from_bytes(data, "png").load_image_value
    done = await until(rig.store, child.id, S.DELIVERED, S.FAILED)
    with pytest.raises(UserError, match="can't find"):
        await rig.service.submit(
            JobRequest(2, 1, 500, None, None, Kind.UPSCALE, JobAction.UPSCALE, {}, parent.id, 7, (image,)), actor(2)
        )
    with pytest.raises(BadInputError, match="no upscale workflow called 'txt2img'"):
        await rig.service.submit(JobRequest(2, 1, 500, None, "txt2img", Kind.UPSCALE, JobAction.UPSCALE, {}), actor(2))
    await rig.close()
    assert done.state is S.DELIVERED, done.error
    assert any(r.path == "/upload/image" for r in comfyui_emulator.requests)


async def test_a_job_its_server_lost_before_it_started_waits_its_turn_in_our_queue_again(
    open_rig: Callable[..., Any], comfyui_emulator: ComfyEmulator
) -> None:
    """The engine's resubmission goes through our fair queue (``requeue``), not around it: while the server is
    down the lost job has a place in our queue, and it is sent again, once, when the server is back."""
    emu = comfyui_emulator
    rig: Rig = await open_rig(capacity=2)
    await slow(emu)
    running = await rig.service.submit(request(1, steps=40), actor(1))
    pending = await rig.service.submit(request(2), actor(2))
    await until(rig.store, running.id, S.RUNNING)
    await until(rig.store, pending.id, S.QUEUED)
    await emu.go_down()
    await emu.wait_for(lambda: rig.service.position(pending.id) is not None, timeout=10)
    await emu.come_up()
    emu.config.step_duration = 0.002
    done = await until(rig.store, pending.id, S.DELIVERED, S.FAILED, S.LOST)
    lost = await until(rig.store, running.id, S.DELIVERED, S.FAILED, S.LOST)
    await rig.close()
    assert done.state is S.DELIVERED and executions(emu, done.prompt_id) == 1
    assert rig.store.path_of(pending.id).count(S.SUBMITTING) == 2
    assert lost.state is S.LOST and lost.failure is Failure.LOST


def video(owner: int, workflow: str | None = None, **params: Any) -> JobRequest:
    return JobRequest(owner, 1, 500, None, workflow, Kind.VIDEO, JobAction.ANIMATE, params)


async def test_the_video_workflow_that_runs_is_chosen_once_down_the_fallback_chain_and_checked_as_such(
    open_rig: Callable[..., Any], registry: Registry
) -> None:
    rig = await open_rig()
    try:
        server = rig.engine.pool.servers[0]
        assert registry.default(Kind.VIDEO).name == "img2vid_wan22"  # type: ignore[union-attr]
        # The emulator has SVD's checkpoint only: Wan 2.2 → LTX-Video → SVD ends at SVD, and its bounds apply.
        assert rig.service.runnable(Kind.VIDEO).name == "img2vid"
        assert rig.service.check(video(1, frames=25), pictures=1).name == "img2vid"
        with pytest.raises(BadInputError, match="no 'prompt' option"):
            rig.service.check(video(1, prompt="the camera pans left"), pictures=1)
        with pytest.raises(BadInputError, match="between 1 and 25"):
            rig.service.check(video(1, frames=121), pictures=1)

        # With Wan 2.2's models on the server, Wan runs: a motion prompt and 4n+1 frames up to 121.
        wan = registry.needed_models("img2vid_wan22")
        server.models = server.models | wan
        assert rig.service.runnable(Kind.VIDEO).name == "img2vid_wan22"
        assert rig.service.check(video(1, prompt="the camera pans left", frames=121), pictures=1).name == (
            "img2vid_wan22"
        )
        with pytest.raises(BadInputError, match="plus a multiple of 4, like 29 or 33"):
            rig.service.check(video(1, frames=30), pictures=1)
        with pytest.raises(BadInputError, match="no 'motion' option"):
            rig.service.check(video(1, motion=90), pictures=1)
        # A workflow named in the request is the start of its own chain: SVD is SVD.
        assert rig.service.runnable(Kind.VIDEO, "img2vid").name == "img2vid"

        # No video model at all: the refusal names what each workflow lacks, before anything is queued.
        server.models = frozenset()
        with pytest.raises(UserError) as refused:
            rig.service.check(video(1), pictures=1)
        text = refused.value.user_message
        assert "svd_xt.safetensors" in text and DEFAULT_MODELS["wan22_model"] in text, text
        assert "ltx-video-2b-v0.9.5.safetensors" in text, text
    finally:
        await rig.close()
