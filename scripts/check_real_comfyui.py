"""By-hand check (not a test): the engine against a real ComfyUI server, e.g. the CPU one of
``../shared/comfyui-real/README.md`` with its tiny random SD1.5 checkpoint.

    python scripts/check_real_comfyui.py [--url http://127.0.0.1:8188] [--checkpoint tiny_sd15_random.safetensors]

Runs, with the shipped workflows: a txt2img job with previews (done, steps, previews, a PNG); a cancel while
running; a cancel of a queued job while another runs (the other must finish); an upscale_simple job with an
uploaded input (named by content hash, uploaded twice, stored once); a reattach after the follower was dropped
mid-run. Prints one line per check and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from discomfy.comfy.engine import Engine, EngineOptions, InputImage, JobRun, JobSpec
from discomfy.comfy.pool import ServerPool
from discomfy.comfy.progress import Phase, Snapshot
from discomfy.config import DEFAULT_MODELS
from discomfy.workflows import bind, load_workflows

REPO = Path(__file__).resolve().parents[1]


def make_spec(models: dict[str, str], workflow: str, params: dict[str, Any], **kw: Any) -> JobSpec:
    registry = load_workflows(REPO / "workflows", models)
    bound = bind(registry.get(workflow), params, models)
    return JobSpec(uuid.uuid4().hex, str(uuid.uuid4()), bound.graph, bound.models, **kw)


async def follow(run: JobRun) -> list[Snapshot]:
    return [s async for s in run]


def txt2img(models: dict[str, str], steps: int = 6, **kw: Any) -> JobSpec:
    params = {"prompt": "a lighthouse", "width": 256, "height": 256, "steps": steps}
    return make_spec(models, "txt2img", params, **kw)


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8188")
    parser.add_argument("--checkpoint", default="tiny_sd15_random.safetensors")
    args = parser.parse_args()
    models = {**DEFAULT_MODELS, "checkpoint": args.checkpoint}
    failures = 0

    def check(name: str, ok: bool, detail: str = "") -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")

    async with aiohttp.ClientSession() as session:
        pool = ServerPool([args.url], session, capacity=2, health_interval=5)
        await pool.start()
        engine = Engine(pool, EngineOptions(preview_method="latent2rgb"))

        t0 = time.monotonic()
        run = engine.start(txt2img(models, preview=True))
        snaps = await follow(run)
        steps = {s.step_value for s in snaps if s.step_value}
        fractions = [s.fraction for s in snaps]
        png = bool(run.result and run.result.files and run.result.files[0].data.startswith(b"\x89PNG"))
        check(
            "txt2img done with a PNG",
            bool(run.result and run.result.phase is Phase.DONE and png),
            f"({time.monotonic() - t0:.1f} s, {len(snaps)} snapshots)",
        )
        check("sampler steps seen", max(steps, default=0) == 6, f"steps={sorted(steps)}")
        check("previews seen", any(s.preview for s in snaps))
        check("fraction never goes back", all(a <= b for a, b in itertools.pairwise(fractions)))
        check("nodes counted", snaps[-1].nodes_done == snaps[-1].nodes_total > 0, f"{snaps[-1].nodes_done}")

        run = engine.start(txt2img(models, steps=60))
        task = asyncio.create_task(follow(run))
        while run.snapshot.phase is not Phase.RUNNING or not run.snapshot.step_value:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await run.cancel()
        snaps = await task
        check("cancel while running", snaps[-1].phase is Phase.CANCELLED, f"at step {run.snapshot.step_value}")

        first, second = engine.start(txt2img(models, steps=30)), engine.start(txt2img(models, steps=4))
        tasks = [asyncio.create_task(follow(first)), asyncio.create_task(follow(second))]
        while first.snapshot.phase is not Phase.RUNNING:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        await second.cancel()
        a, b = await asyncio.gather(*tasks)
        check("cancel a queued job", b[-1].phase is Phase.CANCELLED)
        check("the running one is untouched", a[-1].phase is Phase.DONE)

        buffer = io.BytesIO()
        Image.new("RGB", (96, 64), (20, 120, 220)).save(buffer, "PNG")
        image = InputImage.from_bytes(buffer.getvalue(), "png")
        ok = True
        for _ in range(2):
            spec = make_spec(models, "upscale_simple", {"image": image.load_image_value, "scale": 2.0}, inputs=(image,))
            run = engine.start(spec)
            await follow(run)
            ok = ok and bool(run.result and run.result.phase is Phase.DONE and run.result.files)
            if run.result and run.result.files:
                size = Image.open(io.BytesIO(run.result.files[0].data)).size
        check("upscale_simple with an uploaded input", ok, f"result {size}")

        spec = txt2img(models, steps=30)
        run = engine.start(spec)
        agen = aiter(run)
        async for snapshot in agen:
            if snapshot.step_value and snapshot.step_value >= 3:
                break
        with contextlib.suppress(Exception):
            await agen.aclose()  # type: ignore[attr-defined]
        again = engine.start(spec, attach_to=args.url, was_running=True)
        snaps = await follow(again)
        check(
            "reattached after the follower dropped",
            snaps[-1].phase is Phase.DONE and bool(again.result and again.result.files),
        )
        await pool.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
