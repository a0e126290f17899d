"""Benchmark (not a test): how long after ComfyUI said a prompt finished does the engine hold its result?

For N jobs against the ComfyUI emulator (in this process, so its send times and ours share one clock), it
measures from the moment the emulator sent ``execution_success`` to the job's socket (the websocket saying the
prompt finished, after the ``executed`` messages that name the outputs) to

- the engine's DONE snapshot (the progress message can say "done"), and
- the end of the run: ``JobRun.result`` with the files in hand (what delivery waits for),

and prints p50 / p95 / max in milliseconds. Two server behaviours: the emulator as is (history written right
after ``execution_success``) and with the history written 255 ms later, as recorded from a real ComfyUI
(``tests/peers/comfyui/transcripts/reconnect.jsonl``: ``execution_success`` → ``executing`` ``node: null``).
Where the checked-out engine has the switch (``JobStream(confirm_in_background=…)``), both ways run in the
same process, alternately: *record first* (the result waits for the server's record of the job, as before
issue 10) and *background* (the result as soon as the websocket's named files are in hand; the record is read
afterwards). Without it, only the checked-out behaviour is measured (``PYTHONPATH=<older tree>`` for before).

    python bench/result_latency.py [jobs]            # default 30 jobs per row
"""

from __future__ import annotations

import asyncio
import inspect
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the emulator lives in tests/

from discomfy.comfy.engine import Engine, EngineOptions, JobSpec  # noqa: E402
from discomfy.comfy.pool import ServerPool  # noqa: E402
from discomfy.comfy.progress import Phase  # noqa: E402
from discomfy.comfy.stream import JobStream  # noqa: E402
from discomfy.config import DEFAULT_MODELS  # noqa: E402
from discomfy.workflows import bind, load_workflows  # noqa: E402
from tests.peers.comfyui import ComfyEmulator  # noqa: E402

REGISTRY = load_workflows(REPO / "workflows", DEFAULT_MODELS)
#: execution_success → executing(node: null) in the real recording of a long run.
RECORDED_GAP = 0.255
HAS_SWITCH = "confirm_in_background" in inspect.signature(JobStream.__init__).parameters


def graph(seed: int) -> dict[str, Any]:
    values = {"prompt": "a lighthouse at dusk", "width": 512, "height": 512, "steps": 4, "seed": seed}
    return dict(bind(REGISTRY.get("txt2img"), values, DEFAULT_MODELS).graph)


async def one_job(emu: ComfyEmulator, engine: Engine, seed: int) -> tuple[float, float]:
    """(finished → DONE snapshot, finished → files in hand), in seconds."""
    spec = JobSpec(uuid.uuid4().hex, str(uuid.uuid4()), graph(seed), preview=False)
    done_at = 0.0
    run = engine.start(spec)
    async for snapshot in run:
        if snapshot.phase is Phase.DONE:
            done_at = time.monotonic()
    files_at = time.monotonic()
    assert run.result is not None and run.result.phase is Phase.DONE and run.result.files, run.result
    finished = next(
        r.time
        for r in emu.ws_log
        if r.direction == "out" and r.client_id == spec.job_id and r.type == "execution_success"
    )
    return done_at - finished, files_at - finished


def row(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"{name:<44} {statistics.median(ms):>8.1f} {p95:>8.1f} {ms[-1]:>8.1f}"


async def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    modes: list[tuple[str, dict[str, Any]]] = (
        [("record first", {"confirm_in_background": False}), ("background", {"confirm_in_background": True})]
        if HAS_SWITCH
        else [("as checked out", {})]
    )
    lines: list[str] = []
    async with ComfyEmulator(step_duration=0.0, noisy_pictures=True) as emu, aiohttp.ClientSession() as session:
        pool = ServerPool([emu.url], session, capacity=1, health_interval=60)
        await pool.start()
        engines = {name: Engine(pool, EngineOptions(stream=stream)) for name, stream in modes}
        for gap in (0.0, RECORDED_GAP):
            emu.faults.delay_record(gap)
            rows: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in modes}
            for i in range(2):  # warm up
                for name, _ in modes:
                    await one_job(emu, engines[name], i)
            for i in range(jobs):
                for name, _ in modes:
                    rows[name].append(await one_job(emu, engines[name], 100 + i))
            for name, _ in modes:
                label = f"history +{gap * 1000:.0f} ms, {name}"
                lines.append(row(f"{label}: DONE snapshot", [r[0] for r in rows[name]]))
                lines.append(row(f"{label}: files in hand", [r[1] for r in rows[name]]))
        for engine in engines.values():
            close = getattr(engine, "close", None)  # older trees have none
            if close is not None:
                await close()
        await pool.close()
    print(f"{jobs} jobs per row; ms after ComfyUI sent execution_success   p50      p95      max")
    for line in lines:
        print("  " + line)


if __name__ == "__main__":
    asyncio.run(main())
