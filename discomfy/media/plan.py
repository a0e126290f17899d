"""Pure decisions of size-aware delivery: what kind a file is, how much of a message's budget each file gets,
which image encoding to try next, and the bitrate and size of a transcoded video.

How it works:
- ``sniff(filename, data)`` reads magic bytes (the extension only when they say nothing): still-or-animated
  image containers (PNG/APNG, GIF, WebP, JPEG), video containers (MP4/MOV ``ftyp``, Matroska/WEBM EBML), or
  other. Whether an image is animated is asked of Pillow by the adapter; ``is_apng`` is the one exception.
- ``share_budget`` splits a message's total over its files by water-filling: every file may use up to its own
  size and the per-file limit, and when they do not all fit, one common cap is lowered until they do — so small
  files pass untouched and the largest are squeezed first. The caller asks again after each file, with what is
  left, so a file that came out smaller than its share leaves the rest to the others.
- Images: ``lossless_steps`` (a palette PNG when the image has at most 256 colours, a re-optimised PNG when that
  can plausibly save enough) come before ``lossy_ladder``: at each scale (1, 0.75, 0.5, …) WebP at decreasing
  quality, then JPEG (which also covers images past WebP's 16383 px limit). ``next_lossy_step`` skips quality
  steps that cannot close the gap: when an attempt is more than ``QUALITY_REACH`` times the budget it jumps to
  the first step of the scale whose pixel count would bring it under (size taken as proportional to pixels).
- Video: ``plan_video`` turns a budget and a duration into a total bitrate (``HEADROOM`` of the budget, minus a
  fixed and per-frame allowance for the MP4 index), gives audio a low AAC bitrate or nothing when the budget is
  tiny, caps the video bitrate at a quality ceiling (so a file converted only for its codec does not grow to fill
  the budget), and scales the picture down (even dimensions) when the bits per pixel would fall below
  ``MIN_BPP``. ``None`` means nothing watchable fits. ``retry_shrink`` lowers the target after a miss.
- ``output_name``, ``format_size`` and the ``*_note`` functions give the user-facing words.

Never: do I/O, import an I/O or media library, read a clock, or raise on odd input (zero sizes, unknown
durations) — every function returns a decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Literal

#: Discord's upload limit for a file when the interaction does not say otherwise.
DEFAULT_LIMIT = 10 * 1024 * 1024


class Kind(StrEnum):
    IMAGE = "image"  # PNG / APNG / GIF / WebP / JPEG: may be animated (Pillow decides)
    VIDEO = "video"  # MP4 / MOV / WEBM / MKV
    OTHER = "other"  # anything else: passed through when it fits, never converted


_IMAGE_EXTENSIONS = {".png", ".apng", ".gif", ".webp", ".jpg", ".jpeg"}
_VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".webm", ".mkv"}


def sniff(filename: str, data: bytes) -> Kind:
    """The kind of a file, from its first bytes; the extension decides only when they are not recognised."""
    head = data[:16]
    if (
        head.startswith(b"\x89PNG\r\n\x1a\n")
        or head.startswith((b"GIF87a", b"GIF89a", b"\xff\xd8\xff"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    ):
        return Kind.IMAGE
    if head[4:8] == b"ftyp" or head.startswith(b"\x1a\x45\xdf\xa3"):
        return Kind.VIDEO
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix in _IMAGE_EXTENSIONS:
        return Kind.IMAGE
    if suffix in _VIDEO_EXTENSIONS:
        return Kind.VIDEO
    return Kind.OTHER


def is_mp4(filename: str, data: bytes) -> bool:
    """An MP4 (not a QuickTime MOV, which some Discord clients will not play inline)."""
    return data[4:8] == b"ftyp" and data[8:12] != b"qt  " and PurePosixPath(filename).suffix.lower() != ".mov"


def is_apng(data: bytes) -> bool:
    """A PNG with an animation control chunk (``acTL`` must come before the first ``IDAT``)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    idat = data.find(b"IDAT")
    return data.find(b"acTL", 0, idat if idat >= 0 else len(data)) >= 0


def share_budget(sizes: Sequence[int], per_file_limit: int, total_limit: int | None) -> list[int]:
    """Each file's byte budget: at most its size and the per-file limit; the largest squeezed first to fit total."""
    caps = [max(0, min(size, per_file_limit)) for size in sizes]
    if total_limit is None or sum(caps) <= total_limit:
        return caps
    remaining = max(0, total_limit)
    level = 0
    ordered = sorted(caps)
    for index, cap in enumerate(ordered):
        left = len(ordered) - index
        if cap * left <= remaining:
            remaining -= cap
        else:
            level = remaining // left
            break
    return [min(cap, level) for cap in caps]


# ---- images -----------------------------------------------------------------------------------------------

ImageFormat = Literal["PNG", "WEBP", "JPEG"]

#: WebP cannot encode an image wider or taller than this.
WEBP_MAX_SIDE = 16383
#: Re-optimising a PNG losslessly rarely saves more than this fraction: beyond it, go straight to lossy.
PNG_OPTIMISE_REACH = 1.5
#: Lowering quality at one scale rarely shrinks a file more than this factor: beyond it, downscale.
QUALITY_REACH = 1.6
SCALES = (1.0, 0.75, 0.5, 0.35, 0.25, 0.18, 0.125, 0.09)
QUALITIES: tuple[tuple[ImageFormat, int], ...] = (("WEBP", 85), ("WEBP", 70), ("WEBP", 55), ("JPEG", 75), ("JPEG", 55))
#: Never downscale an image's shorter side below this many pixels.
MIN_IMAGE_SIDE = 64


@dataclass(frozen=True)
class ImageStep:
    format: ImageFormat
    quality: int | None  # None: lossless
    scale: float = 1.0
    palette: bool = False  # PNG as an exact palette image


def lossless_steps(is_png: bool, original_size: int, budget: int, palette_exact: bool) -> tuple[ImageStep, ...]:
    """Lossless PNG steps worth an attempt before any quality is given up."""
    if not is_png:
        return ()
    if palette_exact:
        return (ImageStep("PNG", None, palette=True),)
    if original_size <= budget * PNG_OPTIMISE_REACH:
        return (ImageStep("PNG", None),)
    return ()


def lossy_ladder(width: int, height: int) -> tuple[ImageStep, ...]:
    """Every lossy step, best first: decreasing quality at each scale, then the next scale down."""
    steps: list[ImageStep] = []
    for scale in SCALES:
        if scale < 1.0 and min(width, height) * scale < MIN_IMAGE_SIDE:
            break
        for fmt, quality in QUALITIES:
            if fmt == "WEBP" and max(width, height) * scale > WEBP_MAX_SIDE:
                continue
            steps.append(ImageStep(fmt, quality, scale))
    return tuple(steps)


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def next_lossy_step(ladder: Sequence[ImageStep], index: int, produced: int, budget: int) -> int | None:
    """The index of the next step to try after ``ladder[index]`` came out ``produced`` bytes; None: none left."""
    if index + 1 >= len(ladder):
        return None
    if budget <= 0:
        return None
    ratio = produced / budget
    if ratio <= QUALITY_REACH:
        return index + 1
    wanted = ladder[index].scale * math.sqrt(1.0 / ratio)
    for candidate in range(index + 1, len(ladder)):
        if ladder[candidate].scale <= wanted * 1.05:
            return candidate
    # Nothing small enough in the ladder: its very smallest, highest-quality step is the last hope.
    smallest = ladder[-1].scale
    return next(i for i in range(index + 1, len(ladder)) if ladder[i].scale == smallest)


# ---- video ------------------------------------------------------------------------------------------------

#: Share of the budget aimed at; the rest absorbs the encoder's overshoot.
HEADROOM = 0.92
#: MP4 header and index: a fixed part and about this much per sample (stts/stsz/stco/ctts entries).
MP4_FIXED_OVERHEAD = 48 * 1024
MP4_PER_FRAME_OVERHEAD = 24
#: Bits per pixel per frame of H.264: below MIN_BPP the picture is downscaled; QUALITY_BPP is the ceiling.
MIN_BPP = 0.05
QUALITY_BPP = 0.15
#: Never below this shorter side, nor below this video bitrate: then nothing watchable fits.
MIN_VIDEO_SIDE = 144
MIN_VIDEO_BITRATE = 48_000
#: AAC bitrates by total bitrate available (bits/s): (needs at least, gets). Below the last: audio dropped.
AUDIO_TIERS = ((2_000_000, 128_000), (600_000, 64_000), (250_000, 32_000))
MAX_VIDEO_ATTEMPTS = 4
MAX_FPS = 60.0


@dataclass(frozen=True)
class VideoSource:
    width: int
    height: int
    duration: float  # seconds
    frames: int
    has_audio: bool

    @property
    def fps(self) -> float:
        if self.duration <= 0 or self.frames <= 0:
            return 30.0
        return min(MAX_FPS, max(1.0, self.frames / self.duration))


@dataclass(frozen=True)
class VideoPlan:
    width: int
    height: int
    fps: float
    video_bitrate: int
    audio_bitrate: int  # 0: no audio track in the output

    @property
    def drops_audio(self) -> bool:
        return self.audio_bitrate == 0


def even(value: float) -> int:
    """H.264 in yuv420p needs even dimensions."""
    return max(2, int(value) // 2 * 2)


def plan_video(src: VideoSource, budget: int, shrink: float = 1.0) -> VideoPlan | None:
    """Bitrates and dimensions for an H.264 MP4 of ``src`` within ``budget`` bytes; None when nothing fits."""
    duration = max(src.duration, 0.04)
    frames = max(src.frames, 1)
    fps = src.fps
    usable = budget * HEADROOM * shrink - MP4_FIXED_OVERHEAD - MP4_PER_FRAME_OVERHEAD * frames * 2
    total_bps = usable * 8 / duration
    if total_bps <= 0:
        return None
    audio_bps = 0
    if src.has_audio:
        audio_bps = next((bps for needs, bps in AUDIO_TIERS if total_bps >= needs), 0)
    video_bps = total_bps - audio_bps
    width, height = even(src.width), even(src.height)
    ceiling = width * height * fps * QUALITY_BPP
    video_bps = min(video_bps, max(ceiling, 500_000))
    if video_bps < MIN_VIDEO_BITRATE:
        return None
    bpp = video_bps / (width * height * fps)
    if bpp < MIN_BPP:
        scale = math.sqrt(bpp / MIN_BPP)
        short = min(width, height)
        scale = max(scale, min(1.0, MIN_VIDEO_SIDE / short)) if short > 0 else scale
        width, height = even(src.width * scale), even(src.height * scale)
    return VideoPlan(width, height, fps, int(video_bps), audio_bps)


def retry_shrink(shrink: float, produced: int, budget: int) -> float:
    """The next ``shrink`` after an encode of ``produced`` bytes missed ``budget``: aim lower by the miss, and more."""
    if produced <= 0:
        return shrink * 0.8
    return shrink * min(0.9, budget / produced * 0.9)


def frame_delay_ms(raw: object) -> int:
    """An animation frame's display time: browsers show a missing or ≤10 ms delay as 100 ms."""
    if isinstance(raw, int | float) and raw > 10:
        return int(raw)
    return 100


# ---- words ------------------------------------------------------------------------------------------------

_EXTENSIONS = {"PNG": ".png", "WEBP": ".webp", "JPEG": ".jpg", "MP4": ".mp4"}
_FORMAT_NAMES = {"PNG": "PNG", "WEBP": "WebP", "JPEG": "JPEG", "MP4": "MP4"}


def output_name(original: str, fmt: str, taken: set[str]) -> str:
    """The upload's name: the original stem with the new format's extension, made unique within the message."""
    path = PurePosixPath(original)
    stem, suffix = path.stem or "file", _EXTENSIONS[fmt]
    name, counter = f"{stem}{suffix}", 2
    while name in taken:
        name, counter = f"{stem}_{counter}{suffix}", counter + 1
    return name


def format_size(size: int) -> str:
    if size >= 1024 * 1024:
        mib = size / (1024 * 1024)
        return f"{mib:.0f} MiB" if mib == round(mib) else f"{mib:.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size} B"


def limit_phrase(budget: int, per_file_limit: int) -> str:
    if budget < per_file_limit:
        return f"this message's share of the upload limit ({format_size(budget)})"
    return f"Discord's {format_size(per_file_limit)} upload limit"


def image_note(name: str, step: ImageStep, before: int, after: int, limit: str) -> str:
    if step.quality is None:
        how = "optimised losslessly (palette PNG)" if step.palette else "optimised losslessly"
    else:
        how = f"compressed to {_FORMAT_NAMES[step.format]} (quality {step.quality})"
        if step.scale < 1.0:
            how += f" and scaled to {round(step.scale * 100)}%"
    return f"{name} was {how} to fit {limit} ({format_size(before)} → {format_size(after)})."


def video_note(name: str, plan: VideoPlan, src: VideoSource, before: int, after: int, limit: str | None) -> str:
    """``limit`` None: converted only so that it plays in Discord."""
    why = f"to fit {limit}" if limit else "so it plays in Discord"
    parts = [f"{name} was converted to H.264 MP4 {why} ({format_size(before)} → {format_size(after)})"]
    if (plan.width, plan.height) != (src.width, src.height) and limit:
        parts.append(f"scaled to {plan.width}×{plan.height}")
    if src.has_audio:
        parts.append(
            "audio dropped to make it fit" if plan.drops_audio else f"audio AAC {plan.audio_bitrate // 1000} kbps"
        )
    return "; ".join(parts) + "."


def too_big_note(name: str, size: int, budget: int, per_file_limit: int, reason: str | None = None) -> str:
    tail = f": {reason}" if reason else ", even compressed"
    return (
        f"{name} ({format_size(size)}) could not be sent: it does not fit {limit_phrase(budget, per_file_limit)}{tail}."
    )


_MIME_BY_EXTENSION = {
    ".png": "image/png",
    ".apng": "image/apng",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".txt": "text/plain",
    ".json": "application/json",
}


def mime_type(filename: str, data: bytes) -> str:
    """The MIME type of a file, from its magic bytes first and its extension second."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    suffix = PurePosixPath(filename).suffix.lower()
    return _MIME_BY_EXTENSION.get(suffix, "application/octet-stream")
