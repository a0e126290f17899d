"""Pillow work of size-aware delivery: fitting a still image into a byte budget. Blocking: run it in a thread.

How it works:
- ``inspect_image`` opens the bytes once and says whether they are an animation (more than one frame: GIF,
  animated WebP, APNG) or a still image.
- ``fit_still`` decodes the image, bakes its EXIF orientation into the pixels (the EXIF is not carried over, so
  the picture must already stand the right way), then walks the steps chosen by ``plan``: the lossless PNG steps
  (a palette image only when converting back gives every pixel exactly; the original's text chunks — ComfyUI's
  workflow — and ICC profile kept), then the lossy ladder, resizing with Lanczos once per scale. WebP keeps
  alpha; JPEG gets the image flattened over white. The ICC profile goes into every encoding (colours are
  visible); EXIF and text chunks do not go into lossy ones.

Every opening is checked first against decompression bombs (``bombs.image_header``, ``OUTPUT_MAX_PIXELS``): a
picture with more pixels is a ``MediaError`` saying so, never decoded.

Never: run on the event loop, return an encoding over the budget, or let a Pillow exception out (they become
``MediaError`` in ``errors.reading_media``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops, ImageOps, PngImagePlugin

from discomfy.media import plan
from discomfy.media.bombs import OUTPUT_MAX_PIXELS, bomb_message, image_header
from discomfy.media.errors import MediaError, reading_media

#: The background an image with transparency is flattened over when the format has no alpha (JPEG, H.264).
FLATTEN_BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class Encoded:
    data: bytes
    step: plan.ImageStep


@dataclass(frozen=True)
class ImageInfo:
    animated: bool
    frames: int
    width: int
    height: int


def refuse_bombs(data: bytes, what: str) -> None:
    """Raise ``MediaError`` when the picture declares more than ``OUTPUT_MAX_PIXELS`` (decode nothing of it)."""
    header = image_header(data, OUTPUT_MAX_PIXELS)
    if header.bomb:
        raise MediaError(f"{what}: {bomb_message(header, OUTPUT_MAX_PIXELS)}")


def inspect_image(data: bytes) -> ImageInfo:
    refuse_bombs(data, "reading an image")
    with reading_media("reading an image"), Image.open(io.BytesIO(data)) as im:
        frames = int(getattr(im, "n_frames", 1))
        return ImageInfo(frames > 1, frames, im.width, im.height)


def flatten(im: Image.Image) -> Image.Image:
    """RGB pixels of ``im``, with any transparency composited over ``FLATTEN_BACKGROUND``."""
    if not has_alpha(im):
        return im if im.mode == "RGB" else to_8bit(im).convert("RGB")
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*FLATTEN_BACKGROUND, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info)


def to_8bit(im: Image.Image) -> Image.Image:
    """16- and 32-bit grey images, which Pillow's ``convert("RGB")`` would clip, scaled to 8 bits."""
    if im.mode.startswith("I;16") or im.mode == "I":
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    return im


def fit_still(data: bytes, budget: int) -> Encoded | None:
    """The first encoding of the ladder within ``budget`` bytes, or None when even the last does not fit."""
    refuse_bombs(data, "re-encoding an image")
    with reading_media("re-encoding an image"), Image.open(io.BytesIO(data)) as source:
        source.load()
        is_png = source.format == "PNG"
        text = dict(getattr(source, "text", {}) or {})
        icc = source.info.get("icc_profile")
        image = ImageOps.exif_transpose(source) or source
        palette = exact_palette(image) if is_png else None
        for step in plan.lossless_steps(is_png, len(data), budget, palette is not None):
            encoded = encode_png(palette if step.palette and palette is not None else image, text, icc)
            if len(encoded) <= budget:
                return Encoded(encoded, step)
        return _walk_ladder(image, budget, icc)


def _walk_ladder(image: Image.Image, budget: int, icc: bytes | None) -> Encoded | None:
    keep_alpha = has_alpha(image)
    base = to_8bit(image).convert("RGBA" if keep_alpha else "RGB")
    ladder = plan.lossy_ladder(base.width, base.height)
    resized: dict[float, Image.Image] = {}
    flat: dict[float, Image.Image] = {}
    index: int | None = 0 if ladder else None
    while index is not None:
        step = ladder[index]
        if step.scale not in resized:
            resized.clear()
            flat.clear()
            size = plan.scaled_size(base.width, base.height, step.scale)
            resized[step.scale] = base if step.scale == 1.0 else base.resize(size, Image.Resampling.LANCZOS)
        picture = resized[step.scale]
        if step.format == "JPEG":
            if step.scale not in flat:
                flat[step.scale] = flatten(picture)
            picture = flat[step.scale]
        encoded = encode_lossy(picture, step, icc)
        if len(encoded) <= budget:
            return Encoded(encoded, step)
        index = plan.next_lossy_step(ladder, index, len(encoded), budget)
    return None


def exact_palette(im: Image.Image) -> Image.Image | None:
    """A palette ("P") copy of an RGB/RGBA image with ≤256 colours, only if it gives back every pixel exactly."""
    if im.mode not in ("RGB", "RGBA"):
        return None
    colours = im.getcolors(256)
    if colours is None:
        return None
    method = Image.Quantize.FASTOCTREE if im.mode == "RGBA" else Image.Quantize.MEDIANCUT
    quantised = im.quantize(colors=len(colours), method=method, dither=Image.Dither.NONE)
    if ImageChops.difference(quantised.convert(im.mode), im).getbbox() is not None:
        return None
    return quantised


def encode_png(im: Image.Image, text: dict[str, str], icc: bytes | None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    out = io.BytesIO()
    options: dict[str, Any] = {"optimize": True, "pnginfo": info}
    if icc:
        options["icc_profile"] = icc
    im.save(out, "PNG", **options)
    return out.getvalue()


def encode_lossy(im: Image.Image, step: plan.ImageStep, icc: bytes | None) -> bytes:
    out = io.BytesIO()
    options: dict[str, Any] = {"quality": step.quality}
    if icc:
        options["icc_profile"] = icc
    if step.format == "WEBP":
        options["method"] = 4
        if im.mode == "RGBA":
            options["exact"] = False  # fully transparent pixels may change colour: invisible
    # No ``optimize`` for JPEG: Pillow then encodes the whole image in one call holding the GIL (a 240 ms
    # event-loop stall at 4096×4096, measured); in 64 KiB chunks the loop keeps running, for a few % of size.
    im.save(out, step.format, **options)
    return out.getvalue()
