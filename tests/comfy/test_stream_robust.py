"""JobStream and submit_once against the emulator's outage switches: a submission in doubt, a cancel before the
POST, the reconnect backoff reset, a deaf socket reopened, frames read with backpressure."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest

from discomfy.comfy import stream as stream_module
from discomfy.comfy.http import ComfyHTTP
from discomfy.comfy.progress import Phase, ProgressTracker
from discomfy.comfy.remote import submit_once
from discomfy.comfy.stream import JobStream
from discomfy.config import DEFAULT_MODELS
from discomfy.errors import ComfyUnavailableError
from discomfy.retry import Backoff
from discomfy.workflows import Registry, bind
from tests.peers.comfyui import ComfyEmulator

pytestmark = pytest.mark.timeout(30)


def graph(registry: Registry, **params: Any) -> dict[str, Any]:
    values = {"prompt": "a fox", "width": 256, "height": 256, "steps": 4, **params}
    return dict(bind(registry.get("txt2img"), values, DEFAULT_MODELS).graph)


def make_stream(http: ComfyHTTP, registry: Registry, **options: Any) -> JobStream:
    prompt_id = str(uuid.uuid4())
    g = graph(registry)
    options = {"silence_timeout": 0.25, "connect_timeout": 1.0, "unreachable_timeout": 10.0, **options}
    return JobStream(
        http, prompt_id=prompt_id, client_id=uuid.uuid4().hex, graph=g, tracker=ProgressTracker(prompt_id, g), **options
    )


def posts(emu: ComfyEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST" and r.path in ("/prompt", "/api/prompt")]


async def test_submit_once_in_doubt_answers_none_only_when_asked_to(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    http = ComfyHTTP(emu.url, session, timeout=2.0)
    fast = Backoff(base=0.01, cap=0.02)
    emu.outages.lose_prompt_answer(down_for=1.0)
    answer = await submit_once(
        http, graph(registry), prompt_id=str(uuid.uuid4()), client_id="c", backoff=fast, doubt_ok=True
    )
    assert answer is None
    await asyncio.sleep(1.2)
    emu.outages.lose_prompt_answer(down_for=1.0)
    with pytest.raises(ComfyUnavailableError, match="may have reached"):
        await submit_once(http, graph(registry, seed=2), prompt_id=str(uuid.uuid4()), client_id="c", backoff=fast)
    await asyncio.sleep(1.2)
    assert len(posts(emu)) == 2


async def test_a_stream_cancelled_before_its_socket_connects_sends_nothing(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.faults.delay_ws_accept(1.0)
    cancel = asyncio.Event()
    stream = make_stream(ComfyHTTP(emu.url, session), registry, connect_timeout=5.0, cancel_event=cancel)
    asyncio.get_running_loop().call_later(0.1, cancel.set)
    snapshots = [s async for s in stream.run()]
    await asyncio.sleep(1.1)
    assert snapshots[-1].phase is Phase.CANCELLED
    assert stream.result is not None and stream.result.phase is Phase.CANCELLED
    assert not stream.submitted and posts(emu) == []


async def test_a_reconcile_answered_while_the_socket_is_down_wakes_the_socket_loop(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    stream = make_stream(ComfyHTTP(comfyui_emulator.url, session), registry)
    stream._submitted = True
    with pytest.raises(Exception, match="no longer knows"):  # the prompt was never sent: "unknown"
        await stream._reconcile()
    assert stream._answered.is_set()  # not connected: the reconnect wait is cut short


async def test_the_socket_loop_retries_at_once_with_a_fresh_schedule_when_the_server_answers(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    await emu.go_down()
    stream = make_stream(ComfyHTTP(emu.url, session), registry, backoff=Backoff(base=30.0, cap=30.0, jitter=False))
    loop = asyncio.create_task(stream._socket_loop())
    await asyncio.sleep(0.2)  # refused once; now waiting 30 s
    await emu.come_up()
    stream._answered.set()
    async with asyncio.timeout(3):
        await stream._connected.wait()
    assert not stream._answered.is_set()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def test_reopen_closes_the_socket_and_a_fresh_one_registers(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    stream = make_stream(ComfyHTTP(emu.url, session), registry)
    loop = asyncio.create_task(stream._socket_loop())
    async with asyncio.timeout(3):
        await stream._connected.wait()
    first = stream._serial
    stream._reopen()
    assert stream.reopens == 1
    await emu.wait_for(lambda: stream._serial > first and stream._connected.is_set(), 3)
    await emu.wait_for(lambda: stream.client_id in emu.hub.sockets, 3)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def test_the_reader_stops_at_max_queued_frames_until_they_are_decoded(
    session: aiohttp.ClientSession, registry: Registry, comfyui_emulator: ComfyEmulator
) -> None:
    emu = comfyui_emulator
    emu.outages.flood_on_connect(stream_module.MAX_QUEUED * 4)
    stream = make_stream(ComfyHTTP(emu.url, session), registry)
    loop = asyncio.create_task(stream._socket_loop())
    await emu.wait_for(lambda: stream._frames.qsize() >= stream_module.MAX_QUEUED, 5)
    await asyncio.sleep(0.2)
    assert stream._frames.qsize() == stream_module.MAX_QUEUED  # nobody decodes: reading stopped
    assert not stream._room.is_set()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
