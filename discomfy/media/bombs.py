"""Decompression bombs: a picture's size read from its header before any pixel is decoded, and refused when huge.

How it works: ``image_header(data, max_pixels)`` opens the bytes with Pillow, which reads only the header, and
returns a ``Header``: the format, the size and ``bomb`` — more pixels than ``max_pixels``, or more than Pillow
itself will open (``Image.DecompressionBombError``, and its ``DecompressionBombWarning`` where warnings are
errors). A small file can declare a 50 000 × 50 000 picture: decoding it would take gigabytes, so every caller
that decodes (input pictures, probing and fitting results) asks here first and refuses a bomb with a clear
message. ``OUTPUT_MAX_PIXELS`` is what we decode of a result: Pillow's own limit (about 89 megapixels, a
9459 × 9459 picture, more than a 4× upscale of 2048 × 2048).

Never: decode pixels here, raise on a file Pillow cannot read (``format`` is then ``None``), or run on the event
loop (Pillow blocks).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

#: The most pixels (per frame) we decode of a result file.
OUTPUT_MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
#: Pillow's bomb signals: the error past twice its limit, the warning past it (an error where warnings are).
BOMB_SIGNALS: tuple[type[BaseException], ...] = (Image.DecompressionBombError, Image.DecompressionBombWarning)


@dataclass(frozen=True)
class Header:
    #: Pillow's format name (``PNG``, ``JPEG``, …), or None when Pillow cannot read the file at all.
    format: str | None
    width: int = 0
    height: int = 0
    #: More pixels than allowed: never decode this file.
    bomb: bool = False

    @property
    def readable(self) -> bool:
        return self.format is not None and not self.bomb

    @property
    def pixels(self) -> int:
        return self.width * self.height


def is_bomb(width: int, height: int, max_pixels: int) -> bool:
    return width * height > max_pixels


def image_header(data: bytes, max_pixels: int = OUTPUT_MAX_PIXELS) -> Header:
    """The picture's format and size from its header; ``bomb`` when it is over ``max_pixels`` (or Pillow's)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = (int(n) for n in image.size)
            return Header(image.format, width, height, is_bomb(width, height, max_pixels))
    except BOMB_SIGNALS:
        width, height = declared_size(data)
        return Header("?", width, height, bomb=True)
    except Exception:  # Pillow raises many types for files it cannot read
        return Header(None)


def declared_size(data: bytes) -> tuple[int, int]:
    """Width and height as a PNG or GIF header declares them (Pillow will not say, past its limit); else 0, 0."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    return 0, 0


def bomb_message(header: Header, max_pixels: int) -> str:
    """Plain words for a refused picture: its size when known, and the most we take."""
    size = f"{header.width}×{header.height} pixels" if header.width and header.height else "far too many pixels"
    return f"it is {size}, more than the {max_pixels / 1_000_000:.0f} megapixels we decode (a decompression bomb?)"
