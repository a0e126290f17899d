"""Input pictures: bytes a user gave us (an attachment, an earlier result), checked and named by their content.

How it works: ``read_picture(data)`` reads the picture's header first (``bombs.image_header``: no pixel decoded),
refuses what is not a picture or is too large in pixels — a decompression bomb too, with a clear message — keeps
PNG, JPEG and WebP files as they are and re-encodes anything else as PNG. The ``Picture`` it returns is what the
job service is given; the service names it by its content hash for ComfyUI's LoadImage (``comfy/engine.py``
``InputImage``), so the bot never needs to know how ComfyUI stores uploads.

Never: trust a file name or a declared type; run on the event loop.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from discomfy.errors import BadInputError
from discomfy.media.bombs import BOMB_SIGNALS, image_header

#: Pictures ComfyUI's LoadImage reads and we pass through as they are.
KEEP_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MAX_INPUT_PIXELS = 4096 * 4096
#: What Pillow raises for a file it cannot read as a picture.
_UNREADABLE: tuple[type[BaseException], ...] = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    *BOMB_SIGNALS,
)


@dataclass(frozen=True)
class Picture:
    data: bytes = field(repr=False)
    #: ``png``, ``jpg`` or ``webp``.
    extension: str

    @classmethod
    def of(cls, data: bytes, extension: str) -> Picture:
        return cls(data, extension.lstrip(".").lower())

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def read_picture(data: bytes, *, option: str = "image", max_pixels: int = MAX_INPUT_PIXELS) -> Picture:
    """``data`` checked to be a picture (blocking: call in a thread); re-encoded as PNG unless PNG, JPEG or WebP."""
    header = image_header(data, max_pixels)
    if header.bomb:
        size = (
            f"is {header.width}×{header.height} pixels" if header.width and header.height else "has far too many pixels"
        )
        raise BadInputError(
            f"The {option} picture {size} (a decompression bomb?); the most we take is "
            f"{_side(max_pixels)}×{_side(max_pixels)} pixels."
        )
    if header.format is None:
        raise BadInputError(f"The {option} file could not be read as a picture. Try a PNG or JPEG.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format or ""
            if image_format in KEEP_FORMATS:
                image.verify()
                return Picture.of(data, KEEP_FORMATS[image_format])
            image.seek(0)
            out = io.BytesIO()
            image.convert("RGBA" if "A" in image.getbands() else "RGB").save(out, "PNG")
            return Picture.of(out.getvalue(), "png")
    except _UNREADABLE as exc:
        raise BadInputError(f"The {option} file could not be read as a picture. Try a PNG or JPEG.") from exc


def _side(pixels: int) -> int:
    return int(pixels**0.5)
