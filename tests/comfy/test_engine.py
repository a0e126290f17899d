"""The engine against the ComfyUI emulator: every job ends done (with its files), failed (with a readable
reason) or cancelled, whatever the server does; it never hangs and never runs twice."""

from __future__ import annotations

import asyncio
import io
import itertools
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import PIL.Image
import pytest

from discomfy.comfy.engine import Engine, EngineOptions, InputImage, JobRun, JobSpec
from discomfy.comfy.pool import ServerPool
from discomfy.comfy.progress import Phase, Snapshot
from discomfy.config import DEFAULT_MODELS
from discomfy.outcome import Failure
from discomfy.workflows import Registry, bind, load_workflows
from tests.peers.comfyui import ComfyEmulator
from tests.support import FAST_STREAM, WORKFLOWS

pytestmark = pytest.mark.timeout(40)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def make_engine(
    session: aiohttp.ClientSession, *emulators: ComfyEmulator, capacity: int = 2, **options: Any
) -> Engine:
    pool = ServerPool([e.url for e in emulators], session, capacity=capacity, health_interval=0.2, timeout=5.0)
    await pool.start()
    return Engine(pool, EngineOptions(stream=FAST_STREAM, **options))


@pytest.fixture
async def engine(comfyui_emulator: ComfyEmulator, session: aiohttp.ClientSession) -> AsyncIterator[Engine]:
    eng = await make_engine(session, comfyui_emulator)
    yield eng
    await eng.pool.close()


def spec(
    registry: Registry,
    workflow: str = "txt2img",
    params: Mapping[str, Any] | None = None,
    *,
    inputs: tuple[InputImage, ...] = (),
    preview: bool = False,
) -> JobSpec:
    txt2img = {"prompt": "a red fox in the snow", "width": 256, "height": 256, "steps": 4}
    values = {**(txt2img if workflow == "txt2img" else {}), **(params or {})}
    bound = bind(registry.get(workflow), values, DEFAULT_MODELS)
    return JobSpec(
        job_id=uuid.uuid4().hex,
        prompt_id=str(uuid.uuid4()),
        graph=bound.graph,
        needed_models=bound.models,
        inputs=inputs,
        preview=preview,
    )


async def finish(run: JobRun, timeout: float = 20.0) -> list[Snapshot]:  # noqa: ASYNC109
    snapshots: list[Snapshot] = []
    async with asyncio.timeout(timeout):
        async for snapshot in run:
            snapshots.append(snapshot)
    return snapshots


def executions(emu: ComfyEmulator, prompt_id: str) -> int:
    """How many times the emulator began running ``prompt_id`` (messages to a closed socket count too)."""
    return sum(
        1
        for r in emu.ws_log
        if r.direction in ("out", "lost")
        and r.type == "execution_start"
        and isinstance(r.data, dict)
        and r.data.get("prompt_id") == prompt_id
    )


def assert_done_with_pngs(run: JobRun, count: int = 1) -> None:
    assert run.result is not None
    assert run.result.phase is Phase.DONE, run.result.snapshot.error
    assert len(run.result.files) == count
    assert all(f.data.startswith(PNG_MAGIC) for f in run.result.files)


def fractions_never_decrease(snapshots: list[Snapshot]) -> bool:
    values = [s.fraction for s in snapshots]
    return all(a <= b for a, b in itertools.pairwise(values))


async def slow_blocker(emu: ComfyEmulator, registry: Registry, steps: int = 40) -> JobSpec:
    """A job of another client that keeps the emulator's worker busy for ``steps`` × 50 ms."""
    emu.config.step_duration = 0.05
    return spec(registry, params={"steps": steps, "prompt": "a slow one"})


# -- the happy path -------------------------------------------------------------------------------------------


async def test_job_ends_done_with_its_png_and_progress_never_goes_back(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    job = spec(registry)
    run = engine.start(job)
    snapshots = await finish(run)
    assert_done_with_pngs(run)
    assert snapshots[0].phase is Phase.QUEUED and snapshots[-1].phase is Phase.DONE
    assert snapshots[-1].fraction == 1.0
    assert fractions_never_decrease(snapshots)
    assert executions(comfyui_emulator, job.prompt_id) == 1
    assert run.server == comfyui_emulator.url


async def test_sampler_steps_and_previews_reach_the_snapshots(engine: Engine, registry: Registry) -> None:
    run = engine.start(spec(registry, params={"steps": 6}, preview=True))
    snapshots = await finish(run)
    assert_done_with_pngs(run)
    assert max(s.step_value or 0 for s in snapshots) == 6
    assert {s.step_max for s in snapshots if s.step_max} == {6}
    assert any(s.preview is not None for s in snapshots)


async def test_a_batch_delivers_every_image(engine: Engine, registry: Registry) -> None:
    run = engine.start(spec(registry, params={"batch": 3}))
    await finish(run)
    assert_done_with_pngs(run, count=3)


async def test_submit_hook_sees_server_and_prompt_before_the_prompt_is_sent(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    seen: list[tuple[str, str, int]] = []

    async def on_submit(server: str, prompt_id: str) -> None:
        posts = [r for r in comfyui_emulator.requests if r.method == "POST" and r.path == "/prompt"]
        seen.append((server, prompt_id, len(posts)))

    job = spec(registry)
    await finish(engine.start(job, on_submit=on_submit))
    assert seen == [(comfyui_emulator.url, job.prompt_id, 0)]


# -- the websocket's troubles ----------------------------------------------------------------------------------


async def test_socket_dropped_mid_run_still_delivers_the_result_once(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    comfyui_emulator.faults.drop_socket(at_node="5")  # the KSampler of txt2img
    job = spec(registry)
    run = engine.start(job)
    snapshots = await finish(run)
    assert_done_with_pngs(run)
    assert fractions_never_decrease(snapshots)
    assert executions(comfyui_emulator, job.prompt_id) == 1
    stream_sockets = {r.socket for r in comfyui_emulator.ws_log if r.direction == "open" and r.client_id == job.job_id}
    assert len(stream_sockets) >= 2  # it reconnected


async def test_reconnect_into_the_duplicate_client_id_race_still_finishes(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    assert comfyui_emulator.config.dup_client_id_bug
    comfyui_emulator.faults.drop_socket(after_messages=4)
    job = spec(registry, params={"steps": 10})
    run = engine.start(job)
    await finish(run)
    assert_done_with_pngs(run)
    assert executions(comfyui_emulator, job.prompt_id) == 1


async def test_job_that_finished_before_the_socket_connected_is_collected(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    eng = await make_engine(session, comfyui_emulator)
    eng.options.stream = {**FAST_STREAM, "connect_timeout": 0.3}
    comfyui_emulator.faults.delay_ws_accept(2.0)
    job = spec(registry)
    run = eng.start(job)
    await finish(run)
    await eng.pool.close()
    assert_done_with_pngs(run)
    assert executions(comfyui_emulator, job.prompt_id) == 1


# -- HTTP's troubles -------------------------------------------------------------------------------------------


async def test_a_lost_answer_to_submit_is_checked_not_sent_again(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    comfyui_emulator.faults.bad_body("/prompt", "truncated", method="POST")
    job = spec(registry)
    run = engine.start(job)
    await finish(run)
    assert_done_with_pngs(run)
    posts = [r for r in comfyui_emulator.requests if r.method == "POST" and r.path == "/prompt"]
    assert len(posts) == 1
    assert executions(comfyui_emulator, job.prompt_id) == 1


async def test_a_server_error_on_submit_is_sent_again_after_asking(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    comfyui_emulator.faults.server_error("/prompt", method="POST")
    job = spec(registry)
    run = engine.start(job)
    await finish(run)
    assert_done_with_pngs(run)
    posts = [r for r in comfyui_emulator.requests if r.method == "POST" and r.path == "/prompt"]
    assert [p.status for p in posts] == [500, 200]
    asked = [r for r in comfyui_emulator.requests if r.path == f"/api/jobs/{job.prompt_id}"]
    assert asked and asked[0].time < posts[1].time
    assert executions(comfyui_emulator, job.prompt_id) == 1


@pytest.mark.parametrize("kind", ["null", "truncated", "non_json"])
async def test_garbled_answers_to_reads_are_retried(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator, kind: str
) -> None:
    comfyui_emulator.faults.bad_body("/api/jobs/*", kind, count=2)
    comfyui_emulator.faults.server_error("/view", count=2)
    run = engine.start(spec(registry))
    await finish(run)
    assert_done_with_pngs(run)


async def test_slow_view_still_delivers(engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator) -> None:
    comfyui_emulator.faults.slow_view(0.5, count=1)  # ten times a normal download here, well inside any timeout
    run = engine.start(spec(registry))
    await finish(run)
    assert_done_with_pngs(run)


# -- the server's troubles -------------------------------------------------------------------------------------


async def test_failing_node_fails_the_job_with_its_reason(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    comfyui_emulator.faults.fail_node(class_type="KSampler", message="Allocation on device failed")
    run = engine.start(spec(registry))
    snapshots = await finish(run)
    assert run.result is not None and run.result.phase is Phase.FAILED
    assert snapshots[-1].error is not None and snapshots[-1].failure is Failure.WORKFLOW
    assert "KSampler" in snapshots[-1].error and "Allocation on device failed" in snapshots[-1].error
    assert run.result.files == ()


async def test_rejected_prompt_fails_with_a_readable_reason(engine: Engine, registry: Registry) -> None:
    job = spec(registry)
    graph = {k: dict(v, inputs=dict(v["inputs"])) for k, v in job.graph.items()}
    graph["5"]["inputs"]["steps"] = 50000
    run = engine.start(JobSpec(job.job_id, job.prompt_id, graph, job.needed_models))
    snapshots = await finish(run)
    assert snapshots[-1].phase is Phase.FAILED
    assert snapshots[-1].failure is Failure.REJECTED
    assert snapshots[-1].error is not None and "steps" in snapshots[-1].error and "50000" in snapshots[-1].error


async def test_restart_before_the_job_started_submits_it_again(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    blocker = engine.start(await slow_blocker(emu, registry))
    blocking = asyncio.create_task(finish(blocker))
    job = spec(registry)
    run = engine.start(job)
    following = asyncio.create_task(finish(run))
    await emu.wait_for(lambda: job.prompt_id in [item.prompt_id for item in emu.queue.pending], timeout=10)
    await emu.restart(down_for=0.3)
    emu.config.step_duration = 0.005
    await following
    assert_done_with_pngs(run)
    assert run.submissions == 2
    assert executions(emu, job.prompt_id) == 1
    await blocking
    assert blocker.result is not None and blocker.result.phase is Phase.FAILED  # it was running: not resent
    assert blocker.result.snapshot.failure is Failure.LOST


async def test_restart_while_running_is_resubmitted_when_allowed(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    eng = await make_engine(session, emu, resubmit_running=True)
    job = await slow_blocker(emu, registry, steps=20)
    run = eng.start(job)
    following = asyncio.create_task(finish(run))
    await emu.wait_for(lambda: executions(emu, job.prompt_id) == 1, timeout=10)
    await emu.restart()
    emu.config.step_duration = 0.005
    await following
    await eng.pool.close()
    assert_done_with_pngs(run)
    assert executions(emu, job.prompt_id) == 2


async def test_server_that_stays_down_fails_the_job_in_bounded_time(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    job = await slow_blocker(emu, registry, steps=40)
    run = engine.start(job)
    following = asyncio.create_task(finish(run))
    await emu.wait_for(lambda: executions(emu, job.prompt_id) == 1, timeout=10)
    await emu.go_down()
    snapshots = await following
    assert snapshots[-1].phase is Phase.FAILED
    assert snapshots[-1].failure in (Failure.UNREACHABLE, Failure.LOST)


# -- cancel ------------------------------------------------------------------------------------------------------


async def test_cancel_while_running_interrupts_it(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    job = await slow_blocker(emu, registry)
    run = engine.start(job)
    following = asyncio.create_task(finish(run))
    await emu.wait_for(lambda: executions(emu, job.prompt_id) == 1, timeout=10)
    assert await engine.cancel(job.job_id)
    snapshots = await following
    assert snapshots[-1].phase is Phase.CANCELLED
    assert emu.queue.history[job.prompt_id]["status"]["status_str"] == "error"  # interrupted at the server


async def test_cancel_while_queued_at_the_server_removes_it_and_leaves_the_running_job(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    first = await slow_blocker(emu, registry, steps=30)
    running = engine.start(first)
    running_task = asyncio.create_task(finish(running))
    queued_job = spec(registry)
    queued = engine.start(queued_job)
    queued_task = asyncio.create_task(finish(queued))
    await emu.wait_for(lambda: queued_job.prompt_id in [i.prompt_id for i in emu.queue.pending], timeout=10)
    await queued.cancel()
    snapshots = await queued_task
    assert snapshots[-1].phase is Phase.CANCELLED
    assert queued_job.prompt_id not in [i.prompt_id for i in emu.queue.pending]
    assert executions(emu, queued_job.prompt_id) == 0
    emu.config.step_duration = 0.005
    await running_task
    assert_done_with_pngs(running)


async def test_cancel_while_waiting_for_a_server_slot_sends_nothing(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    eng = await make_engine(session, emu, capacity=1)
    first = await slow_blocker(emu, registry, steps=20)
    running_task = asyncio.create_task(finish(eng.start(first)))
    waiting_job = spec(registry)
    waiting = eng.start(waiting_job)
    waiting_task = asyncio.create_task(finish(waiting))
    await emu.wait_for(lambda: executions(emu, first.prompt_id) == 1, timeout=10)
    assert await eng.cancel(waiting_job.job_id)
    snapshots = await waiting_task
    assert snapshots[-1].phase is Phase.CANCELLED
    assert not any(r.json and r.json.get("prompt_id") == waiting_job.prompt_id for r in emu.requests)
    emu.config.step_duration = 0.005
    await running_task
    await eng.pool.close()


async def test_two_clients_each_see_only_their_own_progress_and_cancel_touches_only_one(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.config.step_duration = 0.03
    a_job, b_job = spec(registry, params={"steps": 30}), spec(registry, params={"steps": 5, "prompt": "b"})
    a, b = engine.start(a_job), engine.start(b_job)
    a_task, b_task = asyncio.create_task(finish(a)), asyncio.create_task(finish(b))
    await emu.wait_for(lambda: executions(emu, a_job.prompt_id) + executions(emu, b_job.prompt_id) == 1, timeout=10)
    first, second = (a, b) if executions(emu, a_job.prompt_id) else (b, a)
    await emu.wait_for(lambda: (first.snapshot.step_value or 0) >= 2, timeout=10)
    assert second.snapshot.phase is Phase.QUEUED and second.snapshot.step_value is None
    await second.cancel()
    second_snapshots = await (b_task if second is b else a_task)
    first_snapshots = await (a_task if first is a else b_task)
    assert second_snapshots[-1].phase is Phase.CANCELLED
    assert first_snapshots[-1].phase is Phase.DONE
    assert all(s.step_value is None for s in second_snapshots)


async def test_legacy_server_runs_and_cancels_only_our_queued_job() -> None:
    async with ComfyEmulator(legacy=True) as emu, aiohttp.ClientSession() as session:
        eng = await make_engine(session, emu)
        registry = load_workflows(WORKFLOWS, DEFAULT_MODELS)
        first = await slow_blocker(emu, registry, steps=30)
        running = eng.start(first)
        running_task = asyncio.create_task(finish(running))
        queued_job = spec(registry)
        queued = eng.start(queued_job)
        queued_task = asyncio.create_task(finish(queued))
        await emu.wait_for(lambda: queued_job.prompt_id in [i.prompt_id for i in emu.queue.pending], timeout=10)
        await queued.cancel()
        assert (await queued_task)[-1].phase is Phase.CANCELLED
        assert not any(r.path == "/interrupt" for r in emu.requests)  # an old server's interrupt is global
        emu.config.step_duration = 0.005
        await running_task
        assert_done_with_pngs(running)
        await eng.pool.close()
        assert not emu.errors


# -- inputs and several servers --------------------------------------------------------------------------------


async def test_input_image_is_uploaded_under_its_content_hash_once(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    source = buffer.getvalue()
    image = InputImage.from_bytes(source, "png")
    for _ in range(2):
        job = spec(registry, "upscale_simple", {"image": image.load_image_value, "scale": 2.0}, inputs=(image,))
        run = engine.start(job)
        await finish(run)
        assert_done_with_pngs(run)
    stored = list((comfyui_emulator.input_dir / "discomfy").iterdir())
    assert [p.name for p in stored] == [image.name]
    assert stored[0].read_bytes() == source


async def test_a_job_goes_to_the_server_that_has_its_models(session: aiohttp.ClientSession, registry: Registry) -> None:
    async with ComfyEmulator() as without, ComfyEmulator() as with_model:
        without.config.models["checkpoints"] = ["something_else.safetensors"]
        eng = await make_engine(session, without, with_model)
        run = eng.start(spec(registry))
        await finish(run)
        await eng.pool.close()
        assert_done_with_pngs(run)
        assert run.server == with_model.url


async def test_jobs_move_to_the_other_server_when_one_is_down(
    session: aiohttp.ClientSession, registry: Registry
) -> None:
    async with ComfyEmulator() as first, ComfyEmulator() as second:
        eng = await make_engine(session, first, second)
        await first.go_down()
        await eng.pool.check_all()
        runs = [eng.start(spec(registry)) for _ in range(3)]
        await asyncio.gather(*(finish(r) for r in runs))
        await eng.pool.close()
        for run in runs:
            assert_done_with_pngs(run)
            assert run.server == second.url


# The three tests below wait out submit_once's fixed backoff against a dead server (0.25 + 0.5 + 1 s, plus the
# HTTP retries of each check in between): about 3 s each that no engine option shortens yet.
@pytest.mark.slow
async def test_a_server_gone_before_the_pool_noticed_sends_the_job_elsewhere(
    session: aiohttp.ClientSession, registry: Registry
) -> None:
    async with ComfyEmulator() as first, ComfyEmulator() as second:
        pool = ServerPool([first.url, second.url], session, capacity=2, health_interval=60, timeout=5.0)
        await pool.start()
        eng = Engine(pool, EngineOptions(stream={**FAST_STREAM, "connect_timeout": 0.5}))
        await first.go_down()  # the pool still thinks it is up
        job = spec(registry)
        run = eng.start(job)
        await finish(run)
        await pool.close()
        assert_done_with_pngs(run)
        assert run.server == second.url
        assert not pool.servers[0].healthy
        assert executions(second, job.prompt_id) == 1


@pytest.mark.slow
async def test_a_server_gone_before_the_pool_noticed_fails_plainly_when_it_is_the_only_one(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    pool = ServerPool([comfyui_emulator.url], session, capacity=2, health_interval=60, timeout=5.0)
    await pool.start()
    eng = Engine(pool, EngineOptions(stream={**FAST_STREAM, "connect_timeout": 0.5}, server_wait=1.0))
    await comfyui_emulator.go_down()
    snapshots = await finish(eng.start(spec(registry)))
    await pool.close()
    await comfyui_emulator.come_up()
    assert snapshots[-1].phase is Phase.FAILED
    assert snapshots[-1].failure in (Failure.UNREACHABLE, Failure.LOST)


@pytest.mark.slow
async def test_a_job_whose_only_server_went_down_unnoticed_waits_for_it_to_come_back(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    pool = ServerPool([comfyui_emulator.url], session, capacity=2, health_interval=60, down_interval=0.2, timeout=5.0)
    await pool.start()
    eng = Engine(pool, EngineOptions(stream={**FAST_STREAM, "connect_timeout": 0.5}, server_wait=20.0))
    await comfyui_emulator.go_down()
    job = spec(registry)
    run = eng.start(job)
    following = asyncio.create_task(finish(run))
    await asyncio.sleep(3.0)  # the job found the server down and waits for it
    assert not following.done()
    await comfyui_emulator.come_up()
    await following
    await pool.close()
    assert_done_with_pngs(run)
    assert executions(comfyui_emulator, job.prompt_id) == 1


async def test_an_older_server_that_names_the_job_itself_is_followed_under_its_id(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    comfyui_emulator.config.client_prompt_id = False
    seen: list[str] = []

    async def on_submit(server: str, prompt_id: str) -> None:
        seen.append(prompt_id)

    job = spec(registry)
    run = engine.start(job, on_submit=on_submit)
    await finish(run)
    assert_done_with_pngs(run)
    assert len(seen) == 2 and seen[0] == job.prompt_id and seen[1] != job.prompt_id  # ours, then the server's
    assert executions(comfyui_emulator, seen[1]) == 1
    assert run.snapshot.prompt_id == seen[1]


async def test_cancel_on_an_older_server_that_names_the_job_itself_uses_its_id(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.config.client_prompt_id = False
    job = await slow_blocker(emu, registry)
    run = engine.start(job)
    following = asyncio.create_task(finish(run))
    await emu.wait_for(lambda: any(r.type == "execution_start" for r in emu.ws_log if r.direction == "out"), 10)
    await run.cancel()
    snapshots = await following
    assert snapshots[-1].phase is Phase.CANCELLED
