"""Benchmark (not a test): the engine's own overhead per job, against the ComfyUI emulator in another process.

Runs the same small txt2img job, alternately, through

- a *bare* client that does the least a correct client must: open ``/ws?clientId``, ``POST /prompt``, read
  frames until ``executing`` with ``node: null`` for its prompt, ``GET /history/{id}``, ``GET /view`` per file;
- the *engine*: ``Engine.start(spec)`` and iterate to the end (pool slot, its own websocket, exactly-once
  submit, tracker, reconciliation, files fetched as they appear).

and prints, as medians over the runs, for each: submit → first job event seen (for the engine, the first
RUNNING snapshot), first event → files in hand, and the total; then the engine's overhead (engine − bare) and
the ratio. Both share the machine and the emulator, measured in one run, so the difference is the engine.

    python bench/engine.py [jobs]

Target (issue 3): ≤ 20 ms of engine overhead per job besides transfer.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from discomfy.comfy.engine import Engine, EngineOptions, JobSpec
from discomfy.comfy.pool import ServerPool
from discomfy.comfy.progress import Phase
from discomfy.config import DEFAULT_MODELS
from discomfy.workflows import bind, load_workflows

REPO = Path(__file__).resolve().parents[1]
EMULATOR = """
import asyncio, sys
from tests.peers.comfyui import ComfyEmulator
async def main():
    async with ComfyEmulator(step_duration=0.0) as emu:
        print(emu.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


REGISTRY = load_workflows(REPO / "workflows", DEFAULT_MODELS)


def graph(seed: int) -> dict[str, Any]:
    registry = REGISTRY
    values = {"prompt": "a lighthouse at dusk", "width": 256, "height": 256, "steps": 4, "seed": seed}
    return dict(bind(registry.get("txt2img"), values, DEFAULT_MODELS).graph)


async def bare(session: aiohttp.ClientSession, url: str, seed: int) -> tuple[float, float, float]:
    client_id, prompt_id = uuid.uuid4().hex, str(uuid.uuid4())
    body = {"prompt": graph(seed), "prompt_id": prompt_id, "client_id": client_id}
    t0 = time.perf_counter()
    first = 0.0
    async with session.ws_connect(f"{url.replace('http', 'ws')}/ws?clientId={client_id}") as ws:
        async with session.post(f"{url}/prompt", json=body) as response:
            await response.read()
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data.get("type") != "status" and not first:
                first = time.perf_counter()
            if data.get("type") == "executing" and data["data"].get("node") is None:
                break
    async with session.get(f"{url}/history/{prompt_id}") as response:
        history = await response.json()
    for output in history[prompt_id]["outputs"].values():
        for image in output.get("images", []):
            params = {"filename": image["filename"], "subfolder": image["subfolder"], "type": image["type"]}
            async with session.get(f"{url}/view", params=params) as response:
                await response.read()
    end = time.perf_counter()
    return first - t0, end - first, end - t0


async def engine_job(engine: Engine, seed: int) -> tuple[float, float, float]:
    spec = JobSpec(uuid.uuid4().hex, str(uuid.uuid4()), graph(seed), preview=False)
    t0 = time.perf_counter()
    first = 0.0
    run = engine.start(spec)
    async for snapshot in run:
        if snapshot.phase is Phase.RUNNING and not first:
            first = time.perf_counter()
    end = time.perf_counter()
    assert run.result is not None and run.result.phase is Phase.DONE and run.result.files
    return first - t0, end - first, end - t0


def median_ms(rows: list[tuple[float, float, float]], column: int) -> float:
    return statistics.median(r[column] for r in rows) * 1000


async def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    emulator = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [sys.executable, "-c", EMULATOR], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip()
        async with aiohttp.ClientSession() as session:
            pool = ServerPool([url], session, capacity=1, health_interval=60)
            await pool.start()
            engine = Engine(pool, EngineOptions())
            bare_rows: list[tuple[float, float, float]] = []
            engine_rows: list[tuple[float, float, float]] = []
            for i in range(3):  # warm up both paths
                await bare(session, url, i)
                await engine_job(engine, i)
            for i in range(jobs):
                bare_rows.append(await bare(session, url, 100 + i))
                engine_rows.append(await engine_job(engine, 100 + i))
            await pool.close()
    finally:
        if emulator.stdin is not None:
            emulator.stdin.close()
        emulator.wait(10)
    print(f"{jobs} jobs each, medians in ms            submit→first event  first event→files  total")
    for name, rows in (("bare client", bare_rows), ("engine", engine_rows)):
        print(f"  {name:<36} {median_ms(rows, 0):>18.1f} {median_ms(rows, 1):>18.1f} {median_ms(rows, 2):>6.1f}")
    overhead = [median_ms(engine_rows, c) - median_ms(bare_rows, c) for c in range(3)]
    print(f"  {'engine overhead (engine − bare)':<36} {overhead[0]:>18.1f} {overhead[1]:>18.1f} {overhead[2]:>6.1f}")
    print(f"  engine / bare total: {median_ms(engine_rows, 2) / median_ms(bare_rows, 2):.2f}×")


if __name__ == "__main__":
    asyncio.run(main())
