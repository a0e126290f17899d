"""Contract tests: each recorded ComfyUI 0.33 scenario (``tests/peers/comfyui/transcripts``) replayed against the
emulator with the recorder's own requests and client behaviour; the message sequences must match.

``replay.skeleton`` compares types, order, routing and field values with ids, timestamps and file counters
normalised; ``progress`` and the ``progress_state`` snapshots sent with each progress update are compared by their
first and last values only, because how many get through the server's throttle (≥100 ms apart) depends on how long
each step takes, which differs between a CPU running torch and the emulator's 5 ms steps.

Where a recording depends on what an earlier scenario left in the server's cache, the test first runs that earlier
prompt (a "prelude") from another client, as the recording session did.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import av
import pytest
from PIL import Image

from tests.peers.comfyui import ComfyEmulator
from tests.peers.comfyui.replay import Client, load, progress_runs, recorded_messages, recorded_requests, skeleton

pytestmark = pytest.mark.timeout(30)


def prompts(name: str) -> list[dict[str, Any]]:
    return [e["request_json"] for e in recorded_requests(load(name)) if e["method"] == "POST"]


async def run_prelude(emu: ComfyEmulator, scenario: str, index: int = -1) -> None:
    """Run a recorded prompt from another client, so the cache holds what the recording session's did.

    Its steps take no time: only what it leaves in the cache matters (400 frames take 2 s at the usual 5 ms)."""
    step_duration, emu.config.step_duration = emu.config.step_duration, 0.0
    try:
        async with Client(emu.url, "prelude", feature_flags=False) as c:
            await c.connect()
            body = prompts(scenario)[index]
            status, reply = await c.queue(body["prompt"], extra_data=body.get("extra_data", {}))
            assert status == 200, reply
            await c.wait_done(reply["prompt_id"])
    finally:
        emu.config.step_duration = step_duration


async def replay_simple(emu: ComfyEmulator, name: str, *, flags: bool = True) -> Client:
    async with Client(emu.url, feature_flags=flags) as c:
        await c.connect()
        for body in prompts(name):
            extra = {k: v for k, v in body.items() if k not in ("prompt", "client_id")}
            status, reply = await c.queue(body["prompt"], **extra)
            assert status == 200, reply
            await c.wait_done(reply["prompt_id"])
        return c


def assert_same_sequence(ours: list[dict[str, Any]], name: str, to: str | None = None) -> None:
    recorded = recorded_messages(load(name), to)
    assert skeleton(ours) == skeleton(recorded)
    # The first and last update of a node always get through the throttle.
    assert progress_runs(ours) == progress_runs(recorded)


async def test_basic_matches_recording(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    rec = load("basic")
    async with Client(emu.url) as c:
        await c.connect()
        assert await c.http("GET", "/prompt") == (200, {"exec_info": {"queue_remaining": 0}})
        body = prompts("basic")[0]
        status, reply = await c.queue(body["prompt"])
        assert status == 200 and set(reply) == {"prompt_id", "number", "node_errors"} and reply["node_errors"] == {}
        pid = reply["prompt_id"]
        await c.wait_done(pid)
        _, history = await c.http("GET", f"/history/{pid}")
        recorded_history = next(e["response"] for e in rec if e["kind"] == "http" and e["path"].startswith("/history/"))
        entry, rec_entry = history[pid], next(iter(recorded_history.values()))
        assert set(entry) == set(rec_entry) and entry["prompt"][4] == rec_entry["prompt"][4] == ["7", "6"]
        assert [m[0] for m in entry["status"]["messages"]] == [m[0] for m in rec_entry["status"]["messages"]]
        for out in entry["outputs"].values():
            for img in out["images"]:
                status, data = await c.http("GET", "/view", params=img)
                assert status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n"
        _, job = await c.http("GET", f"/api/jobs/{pid}")
        rec_job = next(e["response"] for e in rec if e["kind"] == "http" and e["path"].startswith("/api/jobs/"))
        assert set(job) == set(rec_job) and job["status"] == "completed"
        assert set(job["preview_output"]) == set(rec_job["preview_output"])
    assert_same_sequence(c.messages, "basic")


async def test_cached_second_run_reuses_unchanged_nodes(comfyui_emulator: ComfyEmulator) -> None:
    await run_prelude(comfyui_emulator, "basic")
    c = await replay_simple(comfyui_emulator, "cached")
    assert_same_sequence(c.messages, "cached")


async def test_video_savers_write_real_files(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    c = await replay_simple(emu, "video")
    assert_same_sequence(c.messages, "video")
    mp4 = emu.output_dir / "video" / "bot_video_00001_.mp4"
    with av.open(str(mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 24
    assert (emu.output_dir / "bot_video_00001_.webm").stat().st_size > 0
    assert (emu.output_dir / "bot_video_00002_.webp").read_bytes()[8:12] == b"WEBP"


async def test_two_clients_job_messages_reach_only_the_submitter(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    await run_prelude(emu, "no_client_id")
    async with Client(emu.url, "client_a") as a, Client(emu.url, "client_b") as b:
        await a.connect()
        await b.connect()
        body = prompts("two_clients")[0]
        _, reply = await b.queue(body["prompt"])
        await b.wait_done(reply["prompt_id"])
        await a.wait_for(
            lambda m: m["type"] == "status" and m["data"]["status"]["exec_info"]["queue_remaining"] == 0, since=2
        )
    assert_same_sequence(b.messages, "two_clients", "client_b")
    assert skeleton(a.messages) == skeleton(recorded_messages(load("two_clients"), "client_a"))


async def test_ksampler_progress_and_metadata_previews(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.config.models["checkpoints"].append("tiny_sd15_random.safetensors")
    c = await replay_simple(emu, "ksampler")
    assert_same_sequence(c.messages, "ksampler")
    previews = [m["data"] for m in c.messages if m["type"] == "__binary__" and m["data"]["event_type"] == 4]
    recorded = [m["data"] for m in recorded_messages(load("ksampler")) if m["type"] == "__binary__"]
    assert len(previews) == len(recorded) == 8
    assert set(previews[0]["metadata"]) == set(recorded[0]["metadata"]) and previews[0]["image_magic"] == "ffd8ffe0"


async def test_ksampler_preview_without_feature_flags_is_type_1(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.config.models["checkpoints"].append("tiny_sd15_random.safetensors")
    await run_prelude(emu, "ksampler")
    c = await replay_simple(emu, "ksampler_legacy_preview", flags=False)
    assert_same_sequence(c.messages, "ksampler_legacy_preview")
    kinds = [m["data"]["event_type"] for m in c.messages if m["type"] == "__binary__"]
    assert kinds == [1, 1, 1, 1]


async def test_upload_load_renames_and_view_codes(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator

    def png(color: tuple[int, int, int]) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (48, 32), color).save(buf, "PNG")
        return buf.getvalue()

    rec = load("upload_load")
    answers = []
    async with Client(emu.url) as c:
        await c.connect()
        for overwrite, color in (
            (None, (10, 200, 90)),
            (None, (10, 200, 90)),
            ("true", (10, 200, 90)),
            (None, (1, 2, 3)),
        ):
            form = aiohttp.FormData()
            form.add_field("image", png(color), filename="bot_input.png", content_type="image/png")
            form.add_field("subfolder", "discord")
            if color != (1, 2, 3):
                form.add_field("type", "input")
            if overwrite:
                form.add_field("overwrite", overwrite)
            answers.append(await c.http("POST", "/upload/image", data=form))
        assert answers == [(e["status"], e["response"]) for e in recorded_requests(rec, "/upload/image")]
        body = prompts("upload_load")[0]
        _, reply = await c.queue(body["prompt"])
        await c.wait_done(reply["prompt_id"])
        codes = []
        views = [
            {"filename": "bot_input.png", "subfolder": "discord", "type": "input"},
            {"filename": "nope.png", "type": "output"},
            {"filename": "../x.png", "type": "output"},
        ]
        for params in views:
            codes.append((await c.http("GET", "/view", params=params))[0])
        assert codes == [e["status"] for e in recorded_requests(rec, "/view")]
    assert_same_sequence(c.messages, "upload_load")


async def test_execution_error_for_a_file_that_is_not_an_image(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    rec = load("execution_error")
    async with Client(emu.url) as c:
        await c.connect()
        form = aiohttp.FormData()
        form.add_field("image", b"this is not a png", filename="broken.png", content_type="image/png")
        form.add_field("overwrite", "true")
        assert await c.http("POST", "/upload/image", data=form) == (
            200,
            recorded_requests(rec, "/upload/image")[0]["response"],
        )
        _, reply = await c.queue(prompts("execution_error")[0]["prompt"])
        await c.wait_done(reply["prompt_id"])
        error = next(m["data"] for m in c.messages if m["type"] == "execution_error")
        assert error["exception_message"] == f"cannot identify image file '{emu.input_dir / 'broken.png'}'\n"
        assert error["current_inputs"] == {"image": ["broken.png"]}
        _, job = await c.http("GET", f"/api/jobs/{reply['prompt_id']}")
        rec_job = next(e["response"] for e in rec if e["kind"] == "http" and e["path"].startswith("/api/jobs/"))
        assert job["status"] == "failed" and set(job) == set(rec_job)
        assert set(job["execution_error"]) == set(rec_job["execution_error"])
    assert_same_sequence(c.messages, "execution_error")


async def test_targeted_interrupt_cancels_the_running_job(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    async with Client(emu.url) as c:
        await c.connect()
        _, reply = await c.queue(prompts("interrupt")[0]["prompt"])
        pid = reply["prompt_id"]
        for n in range(3):
            await c.wait_for(lambda m: m["type"] == "progress", since=len(c.messages) if n else 0)
        assert await c.http("POST", "/interrupt", json={"prompt_id": pid}) == (200, b"")
        await c.wait_done(pid)
        _, job = await c.http("GET", f"/api/jobs/{pid}")
        assert job["status"] == "cancelled" and job["outputs"] == {}
    assert skeleton(c.messages) == skeleton(recorded_messages(load("interrupt")))


async def test_reconnect_gets_status_and_current_node_then_the_rest(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    await run_prelude(emu, "interrupt")
    emu.config.step_duration = 0.002  # 400 frames: the job still runs (0.8 s) long after we are back
    async with Client(emu.url) as c:
        await c.connect()
        _, reply = await c.queue(prompts("reconnect")[0]["prompt"])
        pid = reply["prompt_id"]
        await c.wait_for(lambda m: m["type"] == "progress")
        first_socket = len(c.messages)
        await c.disconnect()
        # Back only once the server has let go of the old socket (else ComfyUI's duplicate-clientId bug mutes us).
        await emu.wait_for(lambda: c.client_id not in emu.hub.sockets)
        await c.connect()
        await c.wait_done(pid)
    recorded = recorded_messages(load("reconnect"))
    cut = next(i for i, m in enumerate(recorded) if m["type"] == "status" and "sid" in m["data"] and i > 0)
    # Before the drop: the recording got two progress updates, we wait for one; the skeleton drops both.
    assert skeleton(c.messages[:first_socket]) == skeleton(recorded[:cut])
    assert skeleton(c.messages[first_socket:]) == skeleton(recorded[cut:])
    assert c.messages[first_socket + 1] == {"type": "executing", "data": {"node": "4"}}


async def test_late_connect_sees_only_status(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    await run_prelude(emu, "reconnect")
    async with Client(emu.url) as c:
        _, reply = await c.queue(prompts("late_connect")[0]["prompt"])
        await emu.wait_for_history(reply["prompt_id"])
        await c.connect()
        await asyncio.sleep(0.1)
        _, history = await c.http("GET", "/history?max_items=2")
        assert len(history) == 2 and list(history)[-1] == reply["prompt_id"]
    assert skeleton(c.messages) == skeleton(recorded_messages(load("late_connect")))


async def test_no_client_id_broadcasts_progress_only(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    async with Client(emu.url) as c:
        await c.connect()
        _, reply = await c.queue(prompts("no_client_id")[0]["prompt"], with_client_id=False)
        await emu.wait_for_history(reply["prompt_id"])
        await c.wait_for(
            lambda m: m["type"] == "status" and m["data"]["status"]["exec_info"]["queue_remaining"] == 0, since=2
        )
    ours, recorded = c.messages, recorded_messages(load("no_client_id"))
    assert {m["type"] for m in ours} == {m["type"] for m in recorded}
    assert skeleton(ours) == skeleton(recorded)


async def test_dup_client_id_new_socket_gets_nothing_after_old_closes(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    async with Client(emu.url, "dup_id", False) as old, Client(emu.url, "dup_id", False) as new:
        await old.connect()
        await new.connect()
        await old.disconnect()
        await emu.wait_for(lambda: "dup_id" not in emu.hub.sockets)
        _, reply = await new.queue(prompts("dup_client_id")[0]["prompt"])
        await emu.wait_for_history(reply["prompt_id"])
        await asyncio.sleep(0.05)
        assert len(new.messages) == 1 and new.messages[0]["data"]["sid"] == "dup_id"
    assert [m["type"] for m in recorded_messages(load("dup_client_id"))] == ["status", "status"]


async def test_validation_errors_have_comfyui_bodies(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    rec = load("validation_error")
    answers = []
    async with Client(emu.url) as c:
        await c.connect()
        for body in prompts("validation_error"):
            status, reply = await c.http("POST", "/prompt", json={**body, "client_id": c.client_id})
            answers.append((status, reply))
            if status == 200:
                await c.wait_done(reply["prompt_id"])
    recorded = [(e["status"], e["response"]) for e in recorded_requests(rec) if e["method"] == "POST"]
    assert [s for s, _ in answers] == [s for s, _ in recorded] == [400, 400, 400, 200, 400, 200, 400]
    for (_, ours), (_, theirs) in zip(answers, recorded, strict=True):
        if "error" in theirs:
            assert ours["error"] == theirs["error"]
        assert ours["node_errors"] == theirs["node_errors"]
    own_id = prompts("validation_error")[5]["prompt_id"]
    assert answers[5][1]["prompt_id"] == own_id
    assert_same_sequence(c.messages, "validation_error")


async def test_value_above_max_and_unknown_model_fail_validation(comfyui_emulator: ComfyEmulator) -> None:
    graph = prompts("ksampler")[0]["prompt"]
    graph["4"]["inputs"]["width"] = 99999
    async with Client(comfyui_emulator.url) as c:
        status, reply = await c.queue(graph)
    assert status == 400 and reply["error"]["type"] == "prompt_outputs_failed_validation"
    ckpt = reply["node_errors"]["1"]["errors"][0]
    assert ckpt["type"] == "value_not_in_list" and ckpt["extra_info"]["input_name"] == "ckpt_name"
    assert ckpt["details"] == (
        "ckpt_name: 'tiny_sd15_random.safetensors' not in ['v1-5-pruned-emaonly.safetensors', 'svd_xt.safetensors']"
    )
    width = reply["node_errors"]["4"]["errors"][0]
    assert width["type"] == "value_bigger_than_max" and width["message"] == "Value 99999 bigger than max of 16384"


async def test_bad_link_is_reported(comfyui_emulator: ComfyEmulator) -> None:
    graph = prompts("basic")[0]["prompt"]
    graph["4"]["inputs"]["image"] = ["3"]
    async with Client(comfyui_emulator.url) as c:
        status, reply = await c.queue(graph)
    assert status == 400
    assert reply["node_errors"]["4"]["errors"][0]["type"] == "bad_linked_input"


async def test_misc_routes_answer_like_the_recording(comfyui_emulator: ComfyEmulator) -> None:
    emu = comfyui_emulator
    emu.config.models["checkpoints"] = ["tiny_sd15_random.safetensors"]
    recorded = {e["path"]: e for e in load("misc") if e["kind"] == "http"}
    async with Client(emu.url, feature_flags=False) as c:
        await c.connect()
        for path, rec in recorded.items():
            async with c.session.request(rec["method"], emu.url + path, json=rec.get("request_json")) as r:
                assert (r.status, r.headers.get("Content-Type", "")) == (rec["status"], rec["content_type"]), path
                if "response" not in rec:
                    continue
                body = await r.json()
                if path == "/system_stats":
                    assert set(body) == set(rec["response"])
                    assert set(body["system"]) == set(rec["response"]["system"])
                    assert set(body["devices"][0]) == set(rec["response"]["devices"][0])
                else:
                    assert body == rec["response"], path
    assert [m["type"] for m in c.messages] == ["status"]


async def test_object_info_lists_every_emulated_node_with_models(comfyui_emulator: ComfyEmulator) -> None:
    async with Client(comfyui_emulator.url) as c:
        status, info = await c.http("GET", "/object_info")
    assert status == 200 and len(info) == 29 + 7  # + LTX-Video's seven (nodes_ltxv.py)
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == [
        "v1-5-pruned-emaonly.safetensors",
        "svd_xt.safetensors",
    ]
    assert info["UpscaleModelLoader"]["input"]["required"]["model_name"][0] == ["RealESRGAN_x4plus.pth"]
    assert info["KSampler"]["output"] == ["LATENT"] and info["SaveVideo"]["output_node"] is True


async def test_queue_ops_delete_cancel_front_and_clear(comfyui_emulator: ComfyEmulator) -> None:
    """queue_ops.jsonl. Not reproducible exactly: there, the global interrupt landed while the first job was still
    in its slow 512×512×300 EmptyImage, so it surfaced at ColorTransfer's start; here EmptyImage is instant and the
    interrupt lands during ColorTransfer's frames. Everything else — numbers, the heap order of ``queue_pending``,
    delete / cancel making jobs vanish (404), the no-op interrupt of an unknown id, the front job running next —
    is asserted as recorded."""
    emu = comfyui_emulator
    emu.config.step_duration = 0.01
    await run_prelude(emu, "two_clients")
    bodies = prompts("queue_ops")
    rec = load("queue_ops")
    async with Client(emu.url) as c:
        await c.connect()
        ids = []
        for body in bodies:
            extra = {k: v for k, v in body.items() if k not in ("prompt", "client_id")}
            _, reply = await c.queue(body["prompt"], **extra)
            ids.append(reply["prompt_id"])
        _, queue = await c.http("GET", "/queue")
        rec_queue = recorded_requests(rec, "/queue")[0]["response"]
        assert [q[0] - 1 for q in queue["queue_running"]] == [q[0] - 21 for q in rec_queue["queue_running"]]
        order = [i for q in queue["queue_pending"] for i, pid in enumerate(ids) if pid == q[1]]
        assert order == [3, 2, 1] and [q[4] for q in queue["queue_pending"]] == [["7", "6"], ["7"], ["7"]]
        assert queue["queue_pending"][0][0] == -4
        _, jobs = await c.http("GET", "/api/jobs?limit=5")
        assert [j["status"] for j in jobs["jobs"]] == ["pending", "pending", "pending", "in_progress", "completed"]
        assert set(jobs["pagination"]) == {"offset", "limit", "total", "has_more"}
        assert await c.http("POST", "/queue", json={"delete": [ids[2]]}) == (200, b"")
        assert await c.http("POST", f"/api/jobs/{ids[1]}/cancel") == (200, {"cancelled": True})
        assert await c.http("POST", "/interrupt", json={"prompt_id": "d701b768-0f10-49e0-a857-ef0099b77dd1"}) == (
            200,
            b"",
        )
        assert await c.http("POST", "/interrupt") == (200, b"")
        await c.wait_done(ids[0])
        await c.wait_done(ids[3])
        assert await c.http("POST", "/queue", json={"clear": True}) == (200, b"")
        assert await c.http("GET", "/queue") == (200, {"queue_running": [], "queue_pending": []})
        statuses = [await c.http("GET", f"/api/jobs/{pid}") for pid in ids]
        assert [s for s, _ in statuses] == [200, 404, 404, 200]
        assert [j.get("status") for _, j in statuses] == ["cancelled", None, None, "completed"]
        assert statuses[1][1] == {"error": "Job not found"}
    interrupted = next(m["data"] for m in c.messages if m["type"] == "execution_interrupted")
    rec_interrupted = next(m["data"] for m in recorded_messages(rec) if m["type"] == "execution_interrupted")
    assert {k: v for k, v in interrupted.items() if k not in ("prompt_id", "timestamp")} == {
        k: v for k, v in rec_interrupted.items() if k not in ("prompt_id", "timestamp")
    }
    front = [m for m in c.messages if m.get("data", {}).get("prompt_id") == ids[3] or m["type"] == "__binary__"]
    rec_front = [
        m
        for m in recorded_messages(rec)
        if (m.get("data") or {}).get("prompt_id", "").startswith("627ba18e") or m["type"] == "__binary__"
    ]
    assert skeleton(front) == skeleton(rec_front)
