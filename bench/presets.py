"""Benchmark (not a test): the preset store's queries on a database with many presets.

What ``/preset use``, its autocomplete and ``/preset list`` ask the store, timed on a WAL SQLite file in a temporary
folder holding ``guilds`` × ``members`` × ``per_member`` presets (a tenth of them shared): ``usable`` (own, then
shared, by name), ``matching`` (an autocomplete keystroke: LIKE over the guild's names, own first), ``visible``
(``/preset list``), and ``save`` (count, uniqueness and insert in one write). Each is run ``rounds`` times;
p50 / p99 in milliseconds are printed.

    PYTHONPATH=. python bench/presets.py [guilds] [members] [per_member] [rounds]      (defaults 20 50 25 500)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from discomfy.jobs.presets import PresetStore
from discomfy.jobs.store import JobStore

PARAMS = {"prompt": "a fox in the snow, golden hour, 35 mm", "steps": 20, "cfg": 7.0, "width": 512, "height": 512}


async def timed(rounds: int, call: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    times = []
    for n in range(rounds):
        start = time.perf_counter()
        await call(n)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


async def main(guilds: int, members: int, per_member: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with JobStore(Path(folder) / "bench.sqlite3") as store:
            presets = PresetStore(store)
            start = time.perf_counter()
            for g in range(guilds):
                for m in range(members):
                    for p in range(per_member):
                        name = f"style {m:03d}-{p:03d}"
                        await presets.save(g, m, name, "txt2img", PARAMS, most=per_member)
                        if p % 10 == 0:
                            await presets.set_shared(g, m, name, True)
            total = guilds * members * per_member
            print(f"{total} presets written in {time.perf_counter() - start:.1f} s")
            results = {
                "usable (own)": await timed(
                    rounds, lambda n: presets.usable(n % guilds, n % members, f"style {n % members:03d}-007")
                ),
                "usable (shared)": await timed(
                    rounds, lambda n: presets.usable(n % guilds, members + 1, f"style {n % members:03d}-010")
                ),
                "matching (keystroke)": await timed(
                    rounds, lambda n: presets.matching(n % guilds, n % members, "styl", shared=True)
                ),
                "visible (/preset list)": await timed(rounds, lambda n: presets.visible(n % guilds, n % members)),
                "save": await timed(
                    rounds, lambda n: presets.save(guilds + n, 1, "new", "txt2img", PARAMS, most=per_member)
                ),
            }
    for name, (p50, p99) in results.items():
        print(f"{name:24} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]] + [20, 50, 25, 500][len(sys.argv) - 1 :]
    asyncio.run(main(*args[:4]))
