"""Benchmark (not a test): tracker events per second on one core, ``protocol.decode`` + ``ProgressTracker.feed``.

Replays the recorded ``ksampler`` transcript (two prompts: 8 steps with previews, then 20 steps) as its socket
received it — JSON text frames, and real binary preview frames rebuilt from the recorded headers — over and
over, with fresh trackers each pass, as a job runner would: one tracker per prompt, the next one taking over
once the previous prompt is over.

    python bench/tracker.py [seconds]

Prints the number of events per second on stdout (details on stderr). Target (issue 3): ≥ 50,000.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

from discomfy.comfy.progress import ProgressTracker
from discomfy.comfy.protocol import decode

REPO = Path(__file__).resolve().parents[1]


def transcript(name: str) -> list[dict[str, Any]]:
    path = REPO / "tests" / "peers" / "comfyui" / "transcripts" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def binary_frame(header: dict[str, Any]) -> bytes:
    kind = header["event_type"]
    image = bytes.fromhex(header.get("image_magic", "")).ljust(header.get("image_len", 0), b"\0")
    if kind == 1:
        return struct.pack(">II", 1, 1 if header["image_type"] == "JPEG" else 2) + image
    if kind == 3:
        node = header["node_id"].encode()
        return struct.pack(">II", 3, len(node)) + node + header["text"].encode()
    meta = json.dumps(header["metadata"]).encode()
    return struct.pack(">II", 4, len(meta)) + meta + image


def load() -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[float, str | bytes]]]:
    records = transcript("ksampler")
    prompts = [
        (r["response"]["prompt_id"], r["request_json"]["prompt"])
        for r in records
        if r["kind"] == "http" and r["path"] == "/prompt" and r["status"] == 200
    ]
    frames: list[tuple[float, str | bytes]] = []
    for r in records:
        if r["kind"] == "ws_json":
            frames.append((r["t"], json.dumps(r["msg"])))
        elif r["kind"] == "ws_binary":
            frames.append((r["t"], binary_frame(r["frame"])))
    return prompts, frames


def one_pass(prompts: list[tuple[str, dict[str, Any]]], frames: list[tuple[float, str | bytes]]) -> None:
    trackers = [ProgressTracker(prompt_id, graph, started_at=0.0) for prompt_id, graph in prompts]
    index = 0
    for t, frame in frames:
        snapshot = trackers[index].feed(decode(frame), t)
        if snapshot.is_terminal and index + 1 < len(trackers):
            index += 1
    assert all(tracker.snapshot.is_terminal for tracker in trackers)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    prompts, frames = load()
    for _ in range(20):  # warm up
        one_pass(prompts, frames)
    passes = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        one_pass(prompts, frames)
        passes += 1
    rate = passes * len(frames) / elapsed
    print(
        f"tracker: {passes} passes x {len(frames)} frames of ksampler.jsonl in {elapsed:.2f} s on one core",
        file=sys.stderr,
    )
    print(f"{rate:.0f}")


if __name__ == "__main__":
    main()
