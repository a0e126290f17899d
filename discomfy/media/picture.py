"""Input pictures: bytes a user gave us (an attachment, an earlier result), checked and named by their content.

How it works: ``read_picture(data)`` opens the bytes with Pillow (blocking: call it in a thread), refuses what is
not a picture or is too large in pixels, keeps PNG, JPEG and WebP files as they are and re-encodes anything else
as PNG. The ``Picture`` it returns is what the job service is given; the service names it by its content hash
for ComfyUI's LoadImage (``comfy/engine.py`` ``InputImage``), so the bot never needs to know how ComfyUI stores
uploads.

Never: trust a file name or a declared type; run on the event loop.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from discomfy.errors import BadInputError

#: Pictures ComfyUI's LoadImage reads and we pass through as they are.
KEEP_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MAX_INPUT_PIXELS = 4096 * 4096


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
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise BadInputError(f"The {option} picture is {width}×{height}; the most we take is 4096×4096 pixels.")
            image_format = image.format or ""
            if image_format in KEEP_FORMATS:
                image.verify()
                return Picture.of(data, KEEP_FORMATS[image_format])
            image.seek(0)
            out = io.BytesIO()
            image.convert("RGBA" if "A" in image.getbands() else "RGB").save(out, "PNG")
            return Picture.of(out.getvalue(), "png")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInputError(f"The {option} file could not be read as a picture. Try a PNG or JPEG.") from exc
