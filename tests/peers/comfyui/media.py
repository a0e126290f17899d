"""Real pictures and files for the emulator's nodes: Pillow images, PNG / animated WEBP / APNG, WEBM and MP4.

An ``IMAGE`` value is an :class:`ImageBatch`: a list of Pillow RGB frames. Frames that are the same picture are the
same object (``EmptyImage`` with ``batch_size=400`` holds one picture 400 times), so big batches cost little and
per-frame nodes process each distinct picture once. Everything here is blocking: callers run it in a thread.

File names follow ComfyUI's ``folder_paths.get_save_image_path``: ``<prefix>_<counter:05>_.<ext>`` where the counter
is one more than the highest counter of that prefix already in the folder, whatever the extension (so
``bot_video_00001_.webm`` is followed by ``bot_video_00002_.webp``); a ``/`` in the prefix is a subfolder.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.stream import VideoStream
from PIL import Image, ImageFilter, ImageOps


@dataclass(frozen=True)
class ImageBatch:
    frames: list[Image.Image]

    @property
    def width(self) -> int:
        return self.frames[0].width

    @property
    def height(self) -> int:
        return self.frames[0].height

    def map(self, fn: object) -> ImageBatch:
        """Apply ``fn`` once per distinct frame object, keeping shared frames shared."""
        done: dict[int, Image.Image] = {}
        out = []
        for frame in self.frames:
            key = id(frame)
            if key not in done:
                done[key] = fn(frame)  # type: ignore[operator]
            out.append(done[key])
        return ImageBatch(out)


@dataclass(frozen=True)
class Latent:
    """A latent batch: its pixel size, batch size and a seed that makes the decoded picture deterministic."""

    width: int
    height: int
    batch_size: int
    seed: int = 0
    text: str = ""


def solid(width: int, height: int, color: int) -> Image.Image:
    return Image.new("RGB", (width, height), ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF))


def picture(width: int, height: int, seed: int, text: str = "", *, noise: bool = False) -> Image.Image:
    """A deterministic picture for a seed and prompt: a two-colour gradient, or RGB noise (``noise``: it does not
    compress, so its PNG is as big as its pixels)."""
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    if noise:
        return Image.frombytes("RGB", (width, height), random.Random(digest).randbytes(width * height * 3))
    a, b = tuple(digest[0:3]), tuple(digest[3:6])
    grad = Image.linear_gradient("L").resize((width, height))
    return Image.composite(Image.new("RGB", (width, height), a), Image.new("RGB", (width, height), b), grad)


def blur(img: Image.Image, radius: int, sigma: float) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius=min(float(radius), sigma * 2)))


def invert(img: Image.Image) -> Image.Image:
    return ImageOps.invert(img)


_RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def scale(img: Image.Image, width: int, height: int, method: str, crop: str = "disabled") -> Image.Image:
    if width == 0 and height == 0:
        return img
    if width == 0:
        width = max(1, round(img.width * height / img.height))
    elif height == 0:
        height = max(1, round(img.height * width / img.width))
    if crop == "center":
        return ImageOps.fit(img, (width, height), _RESAMPLE.get(method, Image.Resampling.BILINEAR))
    return img.resize((width, height), _RESAMPLE.get(method, Image.Resampling.BILINEAR))


def tint(img: Image.Image, ref: Image.Image, strength: float) -> Image.Image:
    """ColorTransfer stand-in: blend towards the reference's mean colour."""
    mean = ref.resize((1, 1), Image.Resampling.BOX)
    return Image.blend(img, mean.resize(img.size), max(0.0, min(1.0, strength * 0.5)))


def blend(before: Image.Image, after: Image.Image, t: float) -> Image.Image:
    """A frame ``t`` of the way from ``before`` to ``after`` (what an interpolation model approximates)."""
    return Image.blend(before.convert("RGB"), after.convert("RGB"), t)


def encode_preview(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=95, compress_level=1)
    return buf.getvalue()


def next_path(folder: Path, prefix: str, ext: str) -> tuple[Path, str, str]:
    """``(path, filename, subfolder)`` for the next file of ``prefix`` under ``folder``, as ComfyUI numbers them."""
    norm = os.path.normpath(prefix)
    subfolder = os.path.dirname(norm)
    base = os.path.basename(norm)
    target = folder / subfolder
    if not target.resolve().is_relative_to(folder.resolve()):
        raise Exception("**** ERROR: Saving image outside the output folder is not allowed.")
    target.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(base) + r"_(\d+)_?\.")
    counters = [int(m.group(1)) for p in target.iterdir() if (m := pattern.match(p.name))]
    counter = max(counters, default=0) + 1
    filename = f"{base}_{counter:05}_.{ext}"
    return target / filename, filename, subfolder


def save_png(path: Path, img: Image.Image) -> None:
    img.save(path, format="PNG", compress_level=1)


def save_webp(path: Path, batch: ImageBatch, fps: float, lossless: bool, quality: int) -> None:
    first, rest = batch.frames[0], batch.frames[1:]
    first.save(
        path,
        format="WEBP",
        save_all=True,
        append_images=rest,
        duration=int(1000.0 / fps),
        lossless=lossless,
        quality=quality,
    )


def save_apng(path: Path, batch: ImageBatch, fps: float, compress_level: int) -> None:
    first, rest = batch.frames[0], batch.frames[1:]
    first.save(
        path, format="PNG", save_all=True, append_images=rest, duration=int(1000.0 / fps), compress_level=compress_level
    )


def save_video(path: Path, batch: ImageBatch, fps: float, container: str) -> None:
    """MP4 (h264, or mpeg4 when libx264 is missing) or WEBM (vp9), with even dimensions as encoders need."""
    codecs = {"mp4": ["libx264", "h264", "mpeg4"], "webm": ["libvpx-vp9", "libvpx"]}[container]
    width, height = batch.width - batch.width % 2 or 2, batch.height - batch.height % 2 or 2
    with av.open(str(path), mode="w", format=container) as out:
        stream: VideoStream | None = None
        for name in codecs:
            try:
                candidate = out.add_stream(name, rate=Fraction(round(fps * 1000), 1000))
                assert isinstance(candidate, VideoStream)
                stream = candidate
                break
            except (av.FFmpegError, ValueError):
                continue
        if stream is None:
            raise RuntimeError(f"no {container} encoder available")
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for img in batch.frames:
            frame = av.VideoFrame.from_image(  # type: ignore[no-untyped-call]
                img.resize((width, height)) if img.size != (width, height) else img
            )
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def load_image(path: Path) -> ImageBatch:
    """LoadImage: Pillow raises ``PIL.UnidentifiedImageError`` for a file that is not an image, as in ComfyUI."""
    with Image.open(path) as img:
        return ImageBatch([ImageOps.exif_transpose(img).convert("RGB")])
