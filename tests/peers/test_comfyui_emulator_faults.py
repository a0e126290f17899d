"""The ComfyUI emulator's fault switches, settings and records: each does what it says."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.peers.comfyui import ComfyEmulator
from tests.peers.comfyui.replay import Client, load, recorded_requests

pytestmark = pytest.mark.timeout(30)


def graph(name: str = "basic") -> dict[str, Any]:
    prompt: dict[str, Any] = next(e for e in recorded_requests(load(name)) if e["method"] == "POST")["request_json"][
        "prompt"
    ]
    return prompt


def long_graph(frames: int = 60) -> dict[str, Any]:
    g = graph("interrupt")
    g["1"]["inputs"].update(width=16, height=16, batch_size=frames)
    return g


async def run(c: Client, prompt: dict[str, Any], **extra: Any) -> str:
    status, reply = await c.queue(prompt, **extra)
    assert status == 200, reply
    pid: str = reply["prompt_id"]
    return pid


async def test_drop_socket_at_node_loses_the_rest_but_the_job_finishes(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.faults.drop_socket(at_node="5")
    async with Client(emu.url) as c:
        await c.connect()
        pid = await run(c, graph())
        entry = await emu.wait_for_history(pid)
        await asyncio.wait_for(c._reader, 5)  # type: ignore[arg-type]
    assert entry["status"]["status_str"] == "success"
    assert not any(m["type"] == "executing" and m["data"].get("node") == "5" for m in c.messages)
    lost = [r for r in emu.ws_log if r.direction == "lost" and r.client_id == c.client_id]
    assert [r.type for r in lost][-1] == "executing" and lost[-1].data == {"node": None, "prompt_id": pid}


async def test_drop_socket_after_n_messages(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.faults.drop_socket(after_messages=3)
    async with Client(emu.url) as c:
        await c.connect()
        pid = await run(c, graph())
        await emu.wait_for_history(pid)
    job_messages = [m for m in c.messages if m["type"] not in ("status", "feature_flags")]
    assert [m["type"] for m in job_messages] == ["execution_start", "execution_cached", "progress_state"]


async def test_reconnect_after_lost_messages_gets_executing_without_prompt_id(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    async with Client(emu.url) as c:
        await c.connect()
        pid = await run(c, long_graph(120))
        await c.wait_for(lambda m: m["type"] == "progress")
        await c.disconnect()
        await emu.wait_for(lambda: any(r.direction == "lost" and r.type == "progress" for r in emu.ws_log))
        before = len(c.messages)
        await c.connect()
        await c.wait_done(pid)
    assert c.messages[before]["data"]["sid"] == c.client_id
    assert c.messages[before + 1] == {"type": "executing", "data": {"node": "4"}}


async def test_dup_client_id_bug_can_be_switched_off() -> None:
    async with ComfyEmulator(dup_client_id_bug=False) as emu:
        async with Client(emu.url, "dup", False) as old, Client(emu.url, "dup", False) as new:
            await old.connect()
            await new.connect()
            await old.disconnect()
            pid = await run(new, graph())
            await new.wait_done(pid)
        assert not emu.errors


async def test_delay_ws_accept_lets_the_job_finish_first(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.faults.delay_ws_accept(0.3)
    async with Client(emu.url) as c:
        connecting = asyncio.create_task(c.connect())
        await asyncio.sleep(0.05)
        pid = await run(c, graph())
        await emu.wait_for_history(pid)
        await connecting
    assert [m["type"] for m in c.messages] == ["status", "feature_flags"]


@pytest.mark.parametrize(("kind", "body"), [("null", b"null"), ("non_json", b"<html>")])
async def test_bad_body_for_n_requests(comfyui_emulator: ComfyEmulator, kind: str, body: bytes) -> None:
    emu = comfyui_emulator
    emu.faults.bad_body("/history/*", kind, count=2)
    async with aiohttp.ClientSession() as s:
        bodies = []
        for _ in range(3):
            async with s.get(f"{emu.url}/history/x") as r:
                assert r.status == 200 and r.content_type == "application/json"
                bodies.append(await r.read())
    assert bodies[0].startswith(body) and bodies[1].startswith(body) and bodies[2] == b"{}"
    assert [rec.fault for rec in emu.requests] == [kind, kind, None]


async def test_truncated_body_is_cut_json(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.faults.bad_body("/system_stats", "truncated")
    async with aiohttp.ClientSession() as s, s.get(f"{emu.url}/system_stats") as r:
        with pytest.raises(ValueError):
            await r.json()


async def test_server_error_for_n_requests_then_normal(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.faults.server_error("/prompt", count=2, method="POST")
    async with Client(emu.url) as c:
        statuses = [(await c.queue(graph()))[0] for _ in range(3)]
        assert await c.http("GET", "/prompt") == (200, {"exec_info": {"queue_remaining": 1}})
    assert statuses == [500, 500, 200]


async def test_slow_view_delays_downloads(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    (emu.output_dir / "x.png").write_bytes(b"\x89PNG")
    emu.faults.slow_view(0.3, count=1)
    async with Client(emu.url) as c:
        start = time.monotonic()
        assert (await c.http("GET", "/view", params={"filename": "x.png"}))[0] == 200
        slow = time.monotonic() - start
        start = time.monotonic()
        assert (await c.http("GET", "/view", params={"filename": "x.png"}))[0] == 200
        fast = time.monotonic() - start
    assert slow >= 0.3 > fast


async def test_restart_empties_queue_and_history_but_keeps_files(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    async with Client(emu.url) as c:
        await c.connect()
        done = await run(c, graph())
        await c.wait_done(done)
        pending = await run(c, long_graph(400))
        await emu.restart()
        await asyncio.wait_for(c._reader, 5)  # type: ignore[arg-type]
        assert await c.http("GET", f"/history/{done}") == (200, {})
        assert await c.http("GET", f"/api/jobs/{pending}") == (404, {"error": "Job not found"})
        assert await c.http("GET", "/queue") == (200, {"queue_running": [], "queue_pending": []})
        assert (await c.http("GET", "/view", params={"filename": "bot_basic_00001_.png"}))[0] == 200


async def test_down_refuses_connections_until_up(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    port = emu.port
    await emu.go_down()
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientConnectorError):
            await s.get(f"{emu.url}/system_stats")
        await emu.come_up()
        async with s.get(f"{emu.url}/system_stats") as r:
            assert r.status == 200 and emu.port == port


async def test_fail_node_by_id_gives_execution_error(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.faults.fail_node("3", message="boom", exception_type="torch.OutOfMemoryError")
    async with Client(emu.url) as c:
        await c.connect()
        pid = await run(c, graph())
        await c.wait_done(pid)
        _, job = await c.http("GET", f"/api/jobs/{pid}")
    error = next(m["data"] for m in c.messages if m["type"] == "execution_error")
    assert (error["node_id"], error["node_type"], error["exception_type"]) == (
        "3",
        "ImageBlur",
        "torch.OutOfMemoryError",
    )
    assert error["exception_message"] == "boom\n" and error["executed"] == ["1"]
    assert job["status"] == "failed"


async def test_fail_node_by_class(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.faults.fail_node(class_type="SaveImage")
    async with Client(emu.url) as c:
        await c.connect()
        pid = await run(c, graph())
        await c.wait_done(pid)
    error = next(m["data"] for m in c.messages if m["type"] == "execution_error")
    assert error["node_id"] == "6" and error["exception_type"] == "RuntimeError"


async def test_legacy_mode_is_an_old_server() -> None:
    async with ComfyEmulator(legacy=True) as emu, Client(emu.url) as c:
        await c.connect(wait_flags=False)
        pid = await run(c, long_graph(30))
        await c.wait_done(pid)
        types = [m["type"] for m in c.messages]
        progress = [m["data"] for m in c.messages if m["type"] == "progress"]
        assert "execution_success" not in types and "progress_state" not in types and "feature_flags" not in types
        assert progress and all("prompt_id" not in p for p in progress)
        assert (await c.http("GET", f"/api/jobs/{pid}"))[0] == 404
        other = await run(c, long_graph(200))
        await c.wait_for(lambda m: m["type"] == "progress" and m["data"]["max"] == 200)
        # A targeted interrupt of an unknown id is ignored by new servers; an old one interrupts globally.
        await c.http("POST", "/interrupt", json={"prompt_id": "00000000-0000-4000-8000-000000000000"})
        await c.wait_done(other)
        assert any(m["type"] == "execution_interrupted" for m in c.messages)


async def test_server_preview_method_sends_previews_without_asking() -> None:
    async with ComfyEmulator(preview_method="auto") as emu, Client(emu.url) as c:
        await c.connect()
        g = graph("ksampler_legacy_preview")
        g["1"]["inputs"]["ckpt_name"] = "v1-5-pruned-emaonly.safetensors"
        await c.wait_done(await run(c, g))
    previews = [m["data"] for m in c.messages if m["type"] == "__binary__" and m["data"]["event_type"] == 4]
    assert len(previews) == 4 and previews[0]["metadata"]["node_id"] == "5"


async def test_requests_and_frames_are_recorded(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    async with Client(emu.url, "recorded") as c:
        await c.connect()
        pid = await run(c, graph())
        await c.wait_done(pid)
    post = await emu.wait_for_request(method="POST", route="/prompt")
    assert post.json["client_id"] == "recorded" and post.status == 200 and post.response["prompt_id"] == pid
    sent = emu.sent_to("recorded")
    assert [r.type for r in sent][:2] == ["status", "feature_flags"] and sent[-1].data["node"] is None
    assert any(r.direction == "in" and r.type == "feature_flags" for r in emu.ws_log)
    assert any(r.type == "binary:3" and r.data["text"].startswith("width: 64") for r in sent)


async def test_two_instances_are_independent() -> None:
    async with ComfyEmulator() as a, ComfyEmulator() as b:
        assert a.url != b.url
        async with Client(a.url) as c:
            await c.connect()
            await c.wait_done(await run(c, graph()))
        assert a.queue.history and not b.queue.history
