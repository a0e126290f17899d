"""Extending a video: its last frame as a picture, and one video made of the original followed by a new part.
Blocking PyAV and Pillow work: run it in a thread.

How it works:
- ``last_frame(data)`` counts the video's packets (one a frame, without decoding) and decodes from the last
  keyframe on, keeping the last frame as a PNG (the input picture of the job that continues the video), with the
  video's frame count, size and frame rate (``VideoFrames``). The
  same bytes always give the same PNG, so a job restarted from its stored row uploads the same picture again.
- ``join_videos(original, part)`` decodes both and encodes one H.264 MP4 (yuv420p, even dimensions): every frame
  of the original, then every frame of ``part`` except its first — an image-to-video model's first frame is
  its input picture, the original's last frame, which would otherwise show twice at the junction. Frames are
  numbered one after the other on the original's frame rate (the new part plays at the original's speed,
  whatever rate it was saved at) and the new part is scaled to the original's size. The result is encoded at a
  high quality, quickly (``JOIN_CRF``, ``JOIN_PRESET``); fitting it into Discord's upload limit is delivery's work
  (``fit.py``), as for every result. Audio is not kept (the shipped video workflows make none).
- Both are bounded before their frames are decoded: at most ``MAX_JOIN_FRAMES`` frames in all and
  ``MAX_FRAME_PIXELS`` pixels a frame (a part from ComfyUI is untrusted).

Never: run on the event loop, keep the junction frame twice, return frames at another rate than the original's,
or let a PyAV or Pillow exception out (``MediaError``, through ``errors.reading_media``).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from discomfy.media.errors import MediaError, reading_media
from discomfy.media.video import FASTSTART

#: The most frames a joined video may have (far above any manifest's ``extend_max_frames``).
MAX_JOIN_FRAMES = 4000
#: The most pixels one frame may have (4096 × 4096, as input pictures).
MAX_FRAME_PIXELS = 4096 * 4096
#: x264's constant quality and speed for the joined video: close to lossless, and quick (delivery shrinks it to fit
#: the upload limit anyway). Measured (``bench/extend_join.py``, 2 × 121 frames of noise at 1280×704 on a shared
#: 2-core machine): veryfast at crf 18 took 31 s, superfast at crf 20 4.4 s (14 MB), ultrafast 2.8 s (35 MB).
JOIN_CRF = 20
JOIN_PRESET = "superfast"
#: The rate used when a video names none.
DEFAULT_RATE = Fraction(24)


@dataclass(frozen=True)
class VideoFrames:
    """A video's last frame (PNG bytes) and what the continuation needs to know about it."""

    last_png: bytes = field(repr=False)
    frames: int
    width: int
    height: int
    rate: Fraction


@dataclass(frozen=True)
class Joined:
    data: bytes = field(repr=False)
    frames: int
    width: int
    height: int
    rate: Fraction


def last_frame(data: bytes | Path) -> VideoFrames:
    """The last frame of the video in ``data`` (its bytes, or its file: read as it goes, never whole) as a PNG,
    with its frame count, size and rate."""
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with reading_media("reading the video to extend"), av.open(source, "r") as container:
        stream = _video_stream(container, "the video to extend")
        rate = _rate(stream)
        # One packet a frame: count them without decoding (stopping past the bound), then decode only from the
        # last keyframe on.
        packets: list[av.Packet[Any]] = []
        for demuxed in container.demux(stream):
            if demuxed.size:
                packets.append(demuxed)
                if len(packets) > MAX_JOIN_FRAMES:
                    raise MediaError(f"reading the video to extend: more than {MAX_JOIN_FRAMES} frames")
        start = max((i for i, packet in enumerate(packets) if packet.is_keyframe), default=0)
        count, last = len(packets), None
        for packet in [*packets[start:], None]:
            for frame in stream.codec_context.decode(packet):
                last = frame
        if last is None:
            raise MediaError("reading the video to extend: it has no frames")
        out = io.BytesIO()
        last.to_image().save(out, "PNG")  # type: ignore[no-untyped-call]  # untyped in PyAV's stub
        return VideoFrames(out.getvalue(), count, last.width, last.height, rate)


def join_videos(original: bytes, part: bytes, *, max_frames: int = MAX_JOIN_FRAMES) -> Joined:
    """One H.264 MP4: ``original``'s frames, then ``part``'s without its first, on ``original``'s rate and size."""
    with (
        reading_media("joining the videos"),
        av.open(io.BytesIO(original), "r") as first,
        av.open(io.BytesIO(part), "r") as second,
    ):
        vfirst = _video_stream(first, "the original video")
        vsecond = _video_stream(second, "the new part")
        rate = _rate(vfirst)
        width, height = _even(vfirst.codec_context.width), _even(vfirst.codec_context.height)
        if width < 2 or height < 2:
            raise MediaError("joining the videos: the original has no picture size")
        with tempfile.TemporaryDirectory(prefix="discomfy-join-") as folder:
            path = Path(folder) / "joined.mp4"
            with av.open(str(path), "w", format="mp4", options=FASTSTART) as out:
                stream = out.add_stream("libx264", rate=rate, options={"preset": JOIN_PRESET, "crf": str(JOIN_CRF)})
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                count = 0
                second_frames = _frames(second, vsecond, max_frames + 1)
                next(second_frames, None)  # the junction: the part's first frame is the original's last
                for source in (_frames(first, vfirst, max_frames), second_frames):
                    for frame in source:
                        if count >= max_frames:
                            raise MediaError(f"joining the videos: more than {max_frames} frames")
                        picture = frame.reformat(width, height, "yuv420p", interpolation="BICUBIC")
                        picture.pts, picture.time_base = count, Fraction(1) / rate
                        out.mux(stream.encode(picture))
                        count += 1
                out.mux(stream.encode(None))
            return Joined(path.read_bytes(), count, width, height, rate)


def _video_stream(container: av.container.InputContainer, what: str) -> av.VideoStream:
    if not container.streams.video:
        raise MediaError(f"reading {what}: it has no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx.width * ctx.height > MAX_FRAME_PIXELS:
        raise MediaError(f"reading {what}: {ctx.width}×{ctx.height} is more pixels a frame than we decode")
    stream.thread_type = "AUTO"
    return stream


def _frames(container: av.container.InputContainer, stream: av.VideoStream, most: int) -> Iterator[av.VideoFrame]:
    for count, frame in enumerate(container.decode(stream), start=1):
        if count > most:
            raise MediaError(f"reading a video: more than {most} frames")
        yield frame


def _rate(stream: av.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate
    if not rate or rate <= 0:
        return DEFAULT_RATE
    return Fraction(rate.numerator, rate.denominator)


def _even(n: int) -> int:
    return n - n % 2
