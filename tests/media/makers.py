"""Media made on the fly for the tests: noise that codecs cannot shrink, with some structure over it."""

from __future__ import annotations

import io
import math
import os
import random
import tempfile
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw


def noise_image(width: int, height: int, mode: str = "RGB", seed: int = 1) -> Image.Image:
    """Random pixels (incompressible) with a few solid shapes drawn over them (structure)."""
    bands = len(mode)
    image = Image.frombytes(mode, (width, height), random.Random(seed).randbytes(width * height * bands))
    draw = ImageDraw.Draw(image)
    for i in range(4):
        box = (i * width // 5, i * height // 6, i * width // 5 + width // 12, i * height // 6 + height // 12)
        draw.rectangle(box, fill=(40 * i, 200 - 40 * i, 90) + ((255,) if bands == 4 else ()))
    return image


def png_bytes(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1, **options)
    return out.getvalue()


def animation_bytes(fmt: str, frames: int, size: int, duration_ms: int = 80) -> bytes:
    """An animated GIF / WebP / PNG of noise frames."""
    images = [noise_image(size, size, seed=seed) for seed in range(frames)]
    out = io.BytesIO()
    options: dict[str, object] = {"save_all": True, "append_images": images[1:], "duration": duration_ms, "loop": 0}
    if fmt == "WEBP":
        options["lossless"] = True
    images[0].save(out, fmt, **options)
    return out.getvalue()


def video_bytes(
    *,
    width: int,
    height: int,
    frames: int,
    fps: int,
    codec: str = "libx264",
    container: str = "mp4",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    audio: bool = False,
    block: int = 2,
) -> bytes:
    """A video of fresh noise in every frame (``block``-pixel squares), optionally with a sine tone as audio."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip.{container}"
        with av.open(str(path), "w", format=container) as out:
            stream = out.add_stream(codec, rate=fps, options=options or {})
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            astream = out.add_stream("aac" if container == "mp4" else "libopus", rate=48000) if audio else None
            for index in range(frames):
                small = Image.frombytes(
                    "RGB", (width // block, height // block), os.urandom(width * height * 3 // block // block)
                )
                picture = small.resize((width, height), Image.Resampling.NEAREST)
                frame = av.VideoFrame.from_image(picture).reformat(format=pix_fmt)
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
            if astream is not None:
                samples = 48000 * frames // fps
                pcm = b"".join(
                    int(8000 * math.sin(2 * math.pi * 440 * n / 48000)).to_bytes(2, "little", signed=True)
                    for n in range(samples)
                )
                for start in range(0, samples, 1024):
                    chunk = pcm[start * 2 : (start + 1024) * 2]
                    audio_frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk) // 2)
                    audio_frame.planes[0].update(chunk)
                    audio_frame.sample_rate = 48000
                    audio_frame.pts = start
                    audio_frame.time_base = Fraction(1, 48000)
                    out.mux(astream.encode(audio_frame))
                out.mux(astream.encode(None))
        return path.read_bytes()
