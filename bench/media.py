"""Benchmark (not a test): time to fit a 4096×4096 PNG and a 10-second 1080p video under 10 MiB, and the event
loop's longest stall meanwhile.

The PNG is noise with solid shapes over it (PNG cannot compress it: ~48 MiB), the video 300 frames of 1080p at
30 fps of moving noise blocks with an AAC tone, encoded near-losslessly (well over 10 MiB). Both are made
first, outside the timing. A ticker task sleeping 1 ms measures the longest gap between its wake-ups while
``fit_for_discord`` runs; its stall is that gap less the 1 ms asked for.

    python bench/media.py

Target (issue 5): no stall over 50 ms.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import random
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw

from discomfy.media import DEFAULT_LIMIT, fit_for_discord

MIB = 1024 * 1024


def make_png(side: int) -> bytes:
    image = Image.frombytes("RGB", (side, side), random.Random(5).randbytes(side * side * 3))
    draw = ImageDraw.Draw(image)
    for i in range(6):
        draw.ellipse(
            (i * side // 7, i * side // 8, i * side // 7 + side // 6, i * side // 8 + side // 6), fill=(200, 40 * i, 90)
        )
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def make_video(seconds: int, fps: int = 30) -> bytes:
    width, height, block = 1920, 1080, 8
    tiles = [
        Image.frombytes("RGB", (width // block, height // block), os.urandom(width * height * 3 // block**2))
        for _ in range(8)
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "source.mp4"
        with av.open(str(path), "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "14"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            audio = out.add_stream("aac", rate=48000)
            for index in range(seconds * fps):
                tile = tiles[index % len(tiles)].rotate(index * 3)
                picture = tile.resize((width, height), Image.Resampling.BILINEAR)
                frame = av.VideoFrame.from_image(picture)
                frame.pts, frame.time_base = index, Fraction(1, fps)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
            samples = 48000 * seconds
            tone = b"".join(int(6000 * math.sin(n / 17)).to_bytes(2, "little", signed=True) for n in range(samples))
            for start in range(0, samples, 1024):
                chunk = tone[start * 2 : (start + 1024) * 2]
                audio_frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk) // 2)
                audio_frame.planes[0].update(chunk)
                audio_frame.sample_rate, audio_frame.pts, audio_frame.time_base = 48000, start, Fraction(1, 48000)
                out.mux(audio.encode(audio_frame))
            out.mux(audio.encode(None))
        return path.read_bytes()


async def timed_fit(name: str, data: bytes) -> tuple[float, float, int, str | None]:
    """Seconds to fit, the loop's longest stall (s), the size sent, and the note."""
    longest = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last - 0.001)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    result = await fit_for_discord([(name, data)], per_file_limit=DEFAULT_LIMIT)
    elapsed = time.perf_counter() - started
    done.set()
    await task
    sent = len(result.uploads[0].data) if result.uploads else 0
    return elapsed, longest, sent, result.notes[0] if result.notes else None


async def main() -> None:
    print("making a 4096×4096 PNG and a 10 s 1080p video…", file=sys.stderr)
    png = make_png(4096)
    clip = make_video(10)
    for name, data in (("bench_4096.png", png), ("bench_1080p_10s.mp4", clip)):
        elapsed, stall, sent, note = await timed_fit(name, data)
        print(
            f"{name}: {len(data) / MIB:.1f} MiB → {sent / MIB:.2f} MiB in {elapsed:.2f} s; "
            f"longest event-loop stall {stall * 1000:.1f} ms"
        )
        print(f"  note: {note}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
