"""Benchmark (not a test): what one ``/metrics`` scrape and one ``/healthz`` cost the bot, with a big database.

A ``JobStore`` with ``jobs`` rows (spread over the nine states and three workflows) and ``outputs`` output rows,
a ``ServerPool`` of four servers (never checked: the numbers are the pool's fields), and the endpoint on
loopback; ``rounds`` scrapes and health requests are timed from an aiohttp client in the same process (so the
time includes the request and the answer, as a Prometheus scrape would see it, minus the network).

    python -m bench.scrape [jobs] [rounds]      (defaults 100000 and 50; about half a minute)
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from discomfy.comfy.pool import ServerPool
from discomfy.config import OpsSettings
from discomfy.jobs.records import OutputKind, StoredOutput
from discomfy.jobs.schema import JOB_COLUMNS, OUTPUT_COLUMNS, job_values, output_values
from discomfy.jobs.state import ChannelId, Job, JobAction, JobId, JobKind, JobState, UserId
from discomfy.jobs.store import JobStore
from discomfy.metrics import Metrics
from discomfy.ops_http import OpsServer, Probe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def fill(store: JobStore, jobs: int) -> None:
    states, workflows = list(JobState), ["txt2img", "upscale", "svd"]
    rows = [
        job_values(
            Job(
                id=JobId(f"{n:032x}"),
                owner_id=UserId(n % 500),
                channel_id=ChannelId(1),
                workflow=workflows[n % 3],
                kind=JobKind.IMAGE,
                action=JobAction.GENERATE,
                created_at=float(n),
                state=states[n % len(states)],
            )
        )
        for n in range(jobs)
    ]
    outputs = [
        output_values(
            StoredOutput(
                JobId(f"{n:032x}"), 0, OutputKind.IMAGE, f"outputs/{n}.png", "image/png", 1000 + n, "0" * 64, float(n)
            )
        )
        for n in range(0, jobs, 10)
    ]
    db = store._connection()
    await db.execute("BEGIN")
    await db.executemany(
        f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})", rows
    )
    await db.executemany(
        f"INSERT INTO outputs ({', '.join(OUTPUT_COLUMNS)}) VALUES ({', '.join('?' * len(OUTPUT_COLUMNS))})", outputs
    )
    await db.execute("COMMIT")


async def timed(session: aiohttp.ClientSession, url: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def main(jobs: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with JobStore(Path(tmp) / "bench.sqlite3") as store, aiohttp.ClientSession() as session:
            await fill(store, jobs)
            pool = ServerPool([f"http://127.0.0.1:{9000 + i}" for i in range(4)], session)
            pool.servers[0].healthy = True
            port = free_port()
            probe = Probe(lambda: True, lambda: (store, pool), lambda: {"user": 3})
            server = await OpsServer.start(OpsSettings(http_port=port), Metrics(), probe)
            try:
                for path in ("/metrics", "/healthz"):
                    times = await timed(session, f"http://127.0.0.1:{port}{path}", rounds)
                    p95 = statistics.quantiles(times, n=20)[-1]
                    print(
                        f"{path}: {jobs} jobs, {rounds} requests: median {statistics.median(times):.1f} ms, "
                        f"p95 {p95:.1f} ms, max {max(times):.1f} ms"
                    )
            finally:
                await server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, int(sys.argv[2]) if len(sys.argv) > 2 else 50))
