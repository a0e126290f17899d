"""Shrinks a ComfyUI preview (JPEG or PNG bytes) to the small JPEG the progress message shows.

How it works: Pillow decodes the picture, ``thumbnail`` scales it to fit ``max_side`` (never up), and it is
saved as a baseline JPEG (quality 80, a few tens of kB at 384 px). Not pure: Pillow is CPU work that would stall
the event loop, so callers run it in a thread: ``await asyncio.to_thread(shrink_preview, data)``.

Never: run on the event loop, raise anything but ``PreviewError`` (a broken preview is skipped, not fatal),
or decode an absurdly large picture (Pillow's decompression-bomb guard stays on).
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from discomfy.errors import DiscomfyError

__all__ = ["PreviewError", "shrink_preview"]


class PreviewError(DiscomfyError):
    """The preview bytes are not a picture Pillow can read; the progress message goes on without it."""


def shrink_preview(image_bytes: bytes, max_side: int = 384, *, quality: int = 80) -> bytes:
    """``image_bytes`` scaled to fit ``max_side`` × ``max_side``, as JPEG bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image_bytes)) as image:
                image.thumbnail((max_side, max_side))
                rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombWarning) as exc:
        raise PreviewError(f"unreadable preview ({len(image_bytes)} bytes): {exc}") from exc
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=quality)
    return out.getvalue()
