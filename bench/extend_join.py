"""Benchmark (not a test): what Extend costs the bot itself — the last frame of a video, and joining the new part.

Two videos like the Wan 2.2 workflow's (H.264 yuv420p MP4 at 24 fps, noise in 8-pixel blocks so the encoder has
real work), the original and a new part whose first frame is the original's last; ``media.join.last_frame`` of
the original, then ``media.join.join_videos`` of both. Run once per size; one thread, as in the bot (the media
work runs in a worker thread; the event loop is never blocked by it).

    python bench/extend_join.py [frames] [width] [height]      (defaults 121 1280 704: Wan 2.2's 5 s)
"""

from __future__ import annotations

import io
import sys
import time

import av

from discomfy.media.join import join_videos, last_frame
from tests.media.makers import video_bytes


def main(frames: int = 121, width: int = 1280, height: int = 704) -> None:
    original = video_bytes(width=width, height=height, frames=frames, fps=24, block=8)
    part = video_bytes(width=width, height=height, frames=frames, fps=24, block=8)
    began = time.perf_counter()
    found = last_frame(original)
    after_last = time.perf_counter()
    joined = join_videos(original, part)
    after_join = time.perf_counter()
    with av.open(io.BytesIO(joined.data)) as container:
        decoded = len(list(container.decode(container.streams.video[0])))
    print(f"video {width}x{height}, {frames} frames at 24 fps: original {len(original) / 1e6:.1f} MB")
    print(f"last_frame: {after_last - began:.2f} s (PNG {len(found.last_png) / 1e3:.0f} kB, {found.frames} frames)")
    print(
        f"join_videos: {after_join - after_last:.2f} s → {joined.frames} frames ({decoded} decoded), "
        f"{len(joined.data) / 1e6:.1f} MB at {joined.rate} fps"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
