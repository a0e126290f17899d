"""Benchmark (not a test): does what a broken ComfyUI sends on the job's websocket stall the bot's event loop?

The ComfyUI emulator runs in a child process (as in ``bench/bot.py``: when both share one loop, the emulator's
own sending is what stalls). This process runs the engine on one txt2img job while a ticker measures the event
loop's lag (a 5 ms sleep, how late it wakes). Cases, via the emulator's outage switches
(``tests/peers/comfyui/outages.py``), sent on the job's socket as it opens:

- ``baseline``: nothing extra;
- ``text 7.9 MiB``: one text frame just under ``MAX_FRAME`` (decoded as JSON, ignored);
- ``text 60 MiB``: one text frame just under the old 64 MiB cap (over the new cap: the socket is refused it);
- ``flood 20000``: 20 000 small ``progress`` frames back to back.

Prints, per case, the loop's worst lag and its p99 (ms), and how the job ended. ``--tree DIR`` imports
``discomfy`` from another tree instead (e.g. an export of an older commit: ``git archive <rev> discomfy | tar -x
-C DIR``), to compare before and after.

    python bench/ws_stall.py [--tree DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# The emulator child: prints its URL; each stdin line is a JSON object {switch: argument} of ``emu.outages``
# (answered "ok"); exits at EOF.
EMULATOR = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from tests.peers.comfyui import ComfyEmulator
async def main():
    async with ComfyEmulator(step_duration=0.01) as emu:
        print(emu.url, flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            emu.outages.clear()
            for switch, argument in json.loads(line).items():
                getattr(emu.outages, switch)(argument)
            print("ok", flush=True)
asyncio.run(main())
"""

CASES: dict[str, dict[str, int]] = {
    "baseline": {},
    "text 7.9 MiB": {"huge_text_on_connect": 8 * 1024 * 1024 - 100 * 1024},
    "text 60 MiB": {"huge_text_on_connect": 60 * 1024 * 1024},
    "flood 20000": {"flood_on_connect": 20000},
}


class Child:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", EMULATOR, str(REPO)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        self.out, self.inp = self.process.stdout, self.process.stdin
        self.url = self.out.readline().strip()

    def arm(self, switches: dict[str, int]) -> None:
        self.inp.write(json.dumps(switches) + "\n")
        self.inp.flush()
        if self.out.readline().strip() != "ok":
            raise RuntimeError("the emulator did not take the switches")

    def stop(self) -> None:
        self.inp.close()
        self.process.wait(10)


async def one_job(url: str, registry: Any, modules: Any) -> tuple[list[float], str]:
    import aiohttp

    engine_mod, pool_mod, config_mod, workflows_mod = modules
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    async with aiohttp.ClientSession() as session:
        pool = pool_mod.ServerPool([url], session, capacity=2, health_interval=60)
        await pool.start()
        engine = engine_mod.Engine(pool, engine_mod.EngineOptions(stream={"silence_timeout": 2.0}))
        values = {"prompt": "a fox", "width": 256, "height": 256, "steps": 20}
        bound = workflows_mod.bind(registry.get("txt2img"), values, config_mod.DEFAULT_MODELS)
        spec = engine_mod.JobSpec(uuid.uuid4().hex, str(uuid.uuid4()), bound.graph, bound.models)
        ticking = asyncio.create_task(ticker())
        run = engine.start(spec)
        async with asyncio.timeout(60):
            async for _ in run:
                pass
        ticking.cancel()
        await pool.close()
    assert run.result is not None
    return lags, str(run.result.phase)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", type=Path, default=REPO, help="where to import discomfy from")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    import discomfy.comfy.engine as engine_mod
    import discomfy.comfy.pool as pool_mod
    import discomfy.config as config_mod
    import discomfy.workflows as workflows_mod
    from discomfy.comfy import stream

    print(f"discomfy from {Path(engine_mod.__file__).parents[2]}; MAX_FRAME = {stream.MAX_FRAME / 2**20:.0f} MiB")
    registry = workflows_mod.load_workflows(REPO / "workflows", config_mod.DEFAULT_MODELS)
    child = Child()
    try:
        for name, switches in CASES.items():
            worst, p99s, ends = [], [], []
            for _ in range(args.runs):
                child.arm(switches)
                lags, phase = await one_job(child.url, registry, (engine_mod, pool_mod, config_mod, workflows_mod))
                worst.append(max(lags) * 1000)
                p99s.append(statistics.quantiles(lags, n=100)[98] * 1000)
                ends.append(phase)
            print(
                f"{name:14} worst lag {statistics.median(worst):7.1f} ms (max {max(worst):7.1f})  "
                f"p99 {statistics.median(p99s):6.1f} ms  ended: {', '.join(sorted(set(ends)))}"
            )
    finally:
        child.stop()


if __name__ == "__main__":
    asyncio.run(main())
