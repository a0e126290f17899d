"""Results fast (issue 10): when the websocket named the outputs, a run ends as soon as those files are in hand;
the server's record of the job is read afterwards, in the background, and never delays, changes or repeats the
result. Where the websocket's account may be incomplete, the result still waits for the record."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from discomfy.comfy.engine import Engine
from discomfy.comfy.progress import Phase
from discomfy.config import DEFAULT_MODELS
from discomfy.workflows import Registry, load_workflows
from tests.comfy.test_engine import assert_done_with_pngs, executions, finish, make_engine, spec
from tests.peers.comfyui import ComfyEmulator
from tests.support import FAST_STREAM, WORKFLOWS

pytestmark = pytest.mark.timeout(40)

#: Absurdly slow, so that "ended well before it" says the result did not wait for it on any machine.
FOREVER = 30.0
#: Silence never makes these streams reconcile by themselves (the slow routes are the ones it would ask).
QUIET_STREAM = {**FAST_STREAM, "silence_timeout": 20.0}


@pytest.fixture
async def engine(comfyui_emulator: ComfyEmulator, session: aiohttp.ClientSession) -> AsyncIterator[Engine]:
    eng = await make_engine(session, comfyui_emulator)
    eng.options.stream = QUIET_STREAM
    yield eng
    await eng.close()
    await eng.pool.close()


def record_reads(emu: ComfyEmulator, prompt_id: str) -> list[Any]:
    """Requests that read the server's record of ``prompt_id`` (answered or still held)."""
    return [r for r in emu.requests if r.method == "GET" and prompt_id in r.path and "/view" not in r.path]


def ended_by_websocket(emu: ComfyEmulator, job_id: str) -> list[str]:
    return [r.type for r in emu.sent_to(job_id) if r.type in ("execution_success", "executing")]


async def test_the_result_does_not_wait_for_a_record_written_late(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.faults.delay_record(FOREVER)  # the server writes the job's history 30 s after execution_success
    job = spec(registry)
    run = engine.start(job)
    started = time.monotonic()
    snapshots = await finish(run)
    took = time.monotonic() - started
    assert took < FOREVER / 3, f"the run took {took:.1f} s: it waited for the record"
    assert_done_with_pngs(run)
    assert snapshots[-1].phase is Phase.DONE
    assert job.prompt_id not in emu.queue.history  # the record really is not written yet …
    assert [r.prompt_id for r in emu.queue.running_items()] == [job.prompt_id]  # … and the server says running
    assert ended_by_websocket(emu, job.job_id)[-1] == "execution_success"  # no `executing node: null` yet
    # The check runs on in the background, still waiting for the record.
    assert run.confirmation is not None and not run.confirmation.done()
    await emu.wait_for(lambda: record_reads(emu, job.prompt_id))
    assert executions(emu, job.prompt_id) == 1


async def test_the_result_does_not_wait_for_slow_record_routes(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    for route in ("/api/jobs/*", "/history/*"):
        emu.faults.slow_http(route, FOREVER, method="GET")
    job = spec(registry)
    run = engine.start(job)
    started = time.monotonic()
    await finish(run)
    took = time.monotonic() - started
    assert took < FOREVER / 3, f"the run took {took:.1f} s: it waited for the record"
    assert_done_with_pngs(run)
    assert run.confirmation is not None and not run.confirmation.done()
    held = await emu.wait_for(lambda: record_reads(emu, job.prompt_id))
    assert all(r.status == 0 and r.fault == "slow_http" for r in held)  # asked, not answered yet
    await engine.close()
    assert run.confirmation.cancelled()


async def test_the_background_check_agrees_and_changes_nothing(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    job = spec(registry, params={"batch": 2})
    run = engine.start(job)
    await finish(run)
    assert_done_with_pngs(run, count=2)
    assert run.confirmation is not None
    confirmation = await asyncio.wait_for(run.confirmation, 10)
    assert confirmation.agrees and confirmation.record is not None
    assert {o.filename for o in confirmation.record.outputs} == {f.output.filename for f in run.result.files}


async def test_a_record_naming_more_files_is_reported_not_delivered_again(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = comfyui_emulator
    emu.faults.slow_http("/api/jobs/*", 1.0, method="GET")  # answered late, with the record as it is then
    job = spec(registry)
    run = engine.start(job)
    await finish(run)
    assert_done_with_pngs(run)
    # A server breaking the protocol: its record names a file no `executed` message did.
    entry = await emu.wait_for_history(job.prompt_id)
    extra = {"filename": "unannounced_00001_.png", "subfolder": "", "type": "output"}
    entry["outputs"]["99"] = {"images": [extra]}
    assert run.confirmation is not None
    with caplog.at_level(logging.WARNING, logger="discomfy.comfy.stream"):
        confirmation = await asyncio.wait_for(run.confirmation, 10)
    assert [o.filename for o in confirmation.missed] == ["unannounced_00001_.png"]
    assert not confirmation.agrees
    assert run.result is not None  # the result stands: handed over once, not amended
    assert [f.output.filename for f in run.result.files] == [confirmation.record.outputs[0].filename]
    assert "unannounced_00001_.png" in caplog.text


async def test_after_a_socket_gap_the_result_waits_for_the_record(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.faults.drop_socket(at_node="7")  # just before SaveImage: its `executed` is lost
    emu.faults.delay_record(0.3)
    job = spec(registry)
    run = engine.start(job)
    await finish(run)
    assert_done_with_pngs(run)
    assert run.confirmation is None  # the record was read before the run ended
    assert job.prompt_id in emu.queue.history
    assert executions(emu, job.prompt_id) == 1


async def test_a_sink_that_sent_nothing_makes_the_result_wait_for_the_record(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    job = spec(registry)
    # A node no other node reads from, and not an output: it never runs and never sends `executed`, as an
    # older server's cached SaveImage would not. The websocket's account cannot be proven complete.
    decode = next(k for k, n in job.graph.items() if n["class_type"] == "VAEDecode")
    graph = {**job.graph, "90": {"class_type": "ImageInvert", "inputs": {"image": [decode, 0]}}}
    job = dataclasses.replace(job, graph=graph)
    emu.faults.delay_record(0.3)
    run = engine.start(job)
    await finish(run)
    assert_done_with_pngs(run)
    assert run.confirmation is None
    assert job.prompt_id in emu.queue.history


async def test_a_legacy_server_result_is_read_from_its_record() -> None:
    async with ComfyEmulator(legacy=True) as emu, aiohttp.ClientSession() as session:
        eng = await make_engine(session, emu)
        job = spec(load_workflows(WORKFLOWS, DEFAULT_MODELS))
        run = eng.start(job)
        await finish(run)
        assert_done_with_pngs(run)
        assert run.confirmation is None  # no execution_success: the record (written already) decides
        await eng.close()
        await eng.pool.close()
        assert not emu.errors


async def test_the_switch_off_makes_every_result_wait_for_the_record(
    engine: Engine, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    engine.options.stream = {**QUIET_STREAM, "confirm_in_background": False}
    emu.faults.delay_record(0.5)
    job = spec(registry)
    run = engine.start(job)
    await finish(run)
    assert_done_with_pngs(run)
    assert run.confirmation is None
    assert job.prompt_id in emu.queue.history  # it ended only once the record was there
