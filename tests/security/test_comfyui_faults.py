"""A ComfyUI server that fails the way real ones do (the outage switches of ``tests/peers/comfyui/outages.py``,
each checked against a real ComfyUI 0.33): every job still ends right — done when the server ran it, run once,
never left orphaned — and what a broken server sends cannot stall the bot."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from discomfy.comfy import stream as stream_module
from discomfy.comfy.engine import Engine, EngineOptions, JobRun, JobSpec
from discomfy.comfy.pool import ServerPool
from discomfy.comfy.progress import Phase, Snapshot
from discomfy.config import DEFAULT_MODELS
from discomfy.outcome import Failure
from discomfy.retry import Backoff
from discomfy.workflows import Registry, bind
from tests.peers.comfyui import ComfyEmulator
from tests.support import FAST_STREAM

pytestmark = pytest.mark.timeout(40)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def spec(registry: Registry, **params: Any) -> JobSpec:
    values = {"prompt": "a red fox in the snow", "width": 256, "height": 256, "steps": 4, **params}
    bound = bind(registry.get("txt2img"), values, DEFAULT_MODELS)
    return JobSpec(uuid.uuid4().hex, str(uuid.uuid4()), bound.graph, bound.models)


async def engine_for(
    session: aiohttp.ClientSession, emu: ComfyEmulator, stream: Mapping[str, Any] | None = None, **options: Any
) -> Engine:
    pool = ServerPool([emu.url], session, capacity=2, health_interval=60, timeout=5.0)
    await pool.start()
    return Engine(pool, EngineOptions(stream={**FAST_STREAM, **(stream or {})}, **options))


async def finish(run: JobRun, timeout: float = 30.0) -> list[Snapshot]:  # noqa: ASYNC109
    snapshots: list[Snapshot] = []
    async with asyncio.timeout(timeout):
        async for snapshot in run:
            snapshots.append(snapshot)
    return snapshots


def executions(emu: ComfyEmulator, prompt_id: str) -> int:
    return sum(
        1
        for r in emu.ws_log
        if r.direction in ("out", "lost")
        and r.type == "execution_start"
        and isinstance(r.data, dict)
        and r.data.get("prompt_id") == prompt_id
    )


def posts(emu: ComfyEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST" and r.path in ("/prompt", "/api/prompt")]


def assert_done(run: JobRun) -> None:
    assert run.result is not None
    assert run.result.phase is Phase.DONE, (run.result.snapshot.failure, run.result.snapshot.error)
    assert run.result.files and all(f.data.startswith(PNG_MAGIC) for f in run.result.files)


# -- a POST /prompt whose answer was lost ----------------------------------------------------------------------


@pytest.mark.slow
async def test_a_lost_prompt_answer_then_a_short_outage_ends_done_not_orphaned(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.outages.lose_prompt_answer(down_for=5.0)  # longer than submit_once's own tries (~2 s)
    eng = await engine_for(session, emu, {"unreachable_timeout": 30.0})
    job = spec(registry)
    run = eng.start(job)
    await finish(run)
    await eng.pool.close()
    assert any(f.startswith("network_outage") for f in emu.outages.fired)
    assert_done(run)
    assert len(posts(emu)) == 1  # the server knew it: never sent again
    assert executions(emu, job.prompt_id) == 1


async def test_a_lost_prompt_answer_without_outage_is_asked_about_not_resent(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.outages.lose_prompt_answer()
    eng = await engine_for(session, emu)
    job = spec(registry)
    run = eng.start(job)
    await finish(run)
    await eng.pool.close()
    assert_done(run)
    assert len(posts(emu)) == 1
    assert executions(emu, job.prompt_id) == 1


@pytest.mark.slow
async def test_a_prompt_in_doubt_the_server_then_forgot_is_sent_again_once(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    """The answer was lost, the job waited behind another, and the server restarted (its queue gone): only its
    "unknown" sends it again, and it runs once."""
    emu = comfyui_emulator
    emu.config.step_duration = 0.1
    eng = await engine_for(session, emu, {"unreachable_timeout": 30.0}, server_wait=20.0)
    blocker = eng.start(spec(registry, steps=40, prompt="a slow one"))
    blocking = asyncio.create_task(finish(blocker))
    await emu.wait_for(lambda: any(r.type == "execution_start" for r in emu.ws_log if r.direction == "out"), 10)
    emu.outages.lose_prompt_answer()
    job = spec(registry)
    run = eng.start(job)
    following = asyncio.create_task(finish(run))
    await emu.wait_for(lambda: emu.outages.fired, 10)
    await emu.restart(down_for=1.0)
    emu.config.step_duration = 0.005
    await following
    await blocking
    await eng.pool.close()
    assert_done(run)
    ours = [p for p in posts(emu) if isinstance(p.json, dict) and p.json.get("prompt_id") == job.prompt_id]
    assert len(ours) == 2
    assert executions(emu, job.prompt_id) == 1
    assert blocker.result is not None and blocker.result.phase is Phase.FAILED  # it had started: not resent


# -- ComfyUI's old-socket cleanup race -------------------------------------------------------------------------


async def test_a_socket_unregistered_by_the_old_ones_cleanup_is_reopened_and_progress_resumes(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.config.step_duration = 0.1
    emu.outages.late_socket_cleanup(0.6)  # the old handler pops the clientId after we reconnected
    eng = await engine_for(session, emu, {"silence_timeout": 0.5})
    job = spec(registry, steps=40)
    emu.faults.drop_socket(job.job_id, after_messages=8)
    run = eng.start(job)
    following = asyncio.create_task(finish(run))
    await emu.wait_for(lambda: run._stream is not None and run._stream.reopens > 0, 10)
    reopened_at = len(emu.ws_log)
    # The race happened: messages for our client went nowhere while its new socket was open.
    assert any(r.direction == "lost" and r.client_id == job.job_id for r in emu.ws_log[:reopened_at])
    snapshots = await following
    await eng.pool.close()
    assert_done(run)
    after = [r for r in emu.ws_log[reopened_at:] if r.direction == "out" and r.type == "progress"]
    assert after, "progress never came back over the websocket"
    steps = [s.step_value for s in snapshots if s.step_value is not None]
    assert steps and max(steps) == 40
    assert executions(emu, job.prompt_id) == 1


# -- cancel while the socket connects --------------------------------------------------------------------------


async def test_a_cancel_while_the_socket_is_still_connecting_sends_nothing(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.faults.delay_ws_accept(2.0)
    eng = await engine_for(session, emu, {"connect_timeout": 3.0})
    submitted = asyncio.Event()

    async def on_submit(server: str, prompt_id: str) -> None:
        submitted.set()

    run = eng.start(spec(registry), on_submit=on_submit)
    following = asyncio.create_task(finish(run))
    await asyncio.wait_for(submitted.wait(), 5)
    await asyncio.sleep(0.2)  # the socket is connecting now
    await run.cancel()
    snapshots = await following
    await asyncio.sleep(2.2)  # the held handshake ends; still no POST
    await eng.pool.close()
    assert snapshots[-1].phase is Phase.CANCELLED
    assert posts(emu) == []


# -- reconnect backoff -----------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_socket_comes_back_soon_after_the_server_answers_again_whatever_the_backoff(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.config.step_duration = 0.1
    # A slow schedule: without the reset the socket would wait 4 s, 8 s, … after the network is back.
    slow = Backoff(base=4.0, cap=30.0, jitter=False)
    eng = await engine_for(session, emu, {"silence_timeout": 0.5, "unreachable_timeout": 30.0, "backoff": slow})
    job = spec(registry, steps=60)
    run = eng.start(job)
    following = asyncio.create_task(finish(run))
    await emu.wait_for(lambda: any(r.type == "progress" and r.direction == "out" for r in emu.ws_log), 10)
    await emu.outages.network_outage(1.5)
    back = time.monotonic()
    await emu.wait_for(lambda: any(r.type == "open" and r.time > back for r in emu.ws_log), 10)
    reopened = next(r.time for r in emu.ws_log if r.type == "open" and r.time > back)
    await following
    await eng.pool.close()
    assert reopened - back < 2.0, f"socket back {reopened - back:.1f} s after the network"
    assert_done(run)


# -- frames a broken server sends ------------------------------------------------------------------------------


def test_the_frame_cap_fits_what_comfyui_sends_and_no_more() -> None:
    # Real previews are tens of KiB (512 px JPEG/PNG), text frames a few KiB at most: a few MiB of headroom.
    assert 1024 * 1024 <= stream_module.MAX_FRAME <= 16 * 1024 * 1024


async def test_a_text_frame_over_the_cap_closes_the_socket_and_the_job_still_ends_done(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.outages.huge_text_on_connect(stream_module.MAX_FRAME + 1024)
    eng = await engine_for(session, emu)
    job = spec(registry)
    run = eng.start(job)
    following = asyncio.create_task(finish(run))
    await emu.wait_for(lambda: emu.outages.fired, 10)
    emu.outages.huge_text_on_connect(0)
    await following
    await eng.pool.close()
    assert_done(run)
    assert executions(emu, job.prompt_id) == 1


async def test_a_big_text_frame_under_the_cap_is_ignored(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.outages.huge_text_on_connect(stream_module.MAX_FRAME // 2)
    eng = await engine_for(session, emu)
    run = eng.start(spec(registry))
    await finish(run)
    await eng.pool.close()
    assert_done(run)
    assert run.snapshot.phase is Phase.DONE


async def test_a_frame_flood_is_read_with_backpressure_and_the_loop_keeps_turning(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.outages.flood_on_connect(5000)
    eng = await engine_for(session, emu)
    run = eng.start(spec(registry))
    most = 0
    ticks = 0

    async def watch() -> None:
        nonlocal most, ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1
            if run._stream is not None:
                most = max(most, run._stream._frames.qsize())

    watcher = asyncio.create_task(watch())
    await finish(run)
    watcher.cancel()
    await eng.pool.close()
    assert_done(run)
    assert most <= stream_module.MAX_QUEUED + 2  # the reader stopped reading, TCP pushed back
    assert ticks > 5000 // stream_module._YIELD_EVERY


# -- a model missing everywhere --------------------------------------------------------------------------------


async def test_a_model_missing_on_every_server_says_ask_an_admin_and_names_it(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.config.models = {**emu.config.models, "checkpoints": ["something-else.safetensors"]}
    eng = await engine_for(session, emu)
    job = spec(registry)
    snapshots = await finish(eng.start(job))
    await eng.pool.close()
    last = snapshots[-1]
    assert last.phase is Phase.FAILED
    assert last.failure is Failure.MISSING_MODEL
    assert last.error is not None and "admin" in last.error
    assert all(model in last.error for model in job.needed_models)
    assert "try again" not in last.error.lower()
