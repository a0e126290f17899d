"""The one place where Pillow's and PyAV's exceptions become discomfy's.

``MediaError`` joins the tree of ``discomfy/errors.py`` under ``DiscomfyError``: a file that Pillow or PyAV could
not read or write. ``reading_media()`` wraps every library call of this package and translates, with
``raise ... from exc``. ``fit_for_discord`` never lets it out: it reports such a file in ``too_big``.

Never: swallow an exception that is not a library's (bugs stay bugs), or put file contents in a message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import av
from PIL import Image

from discomfy.errors import DiscomfyError


class MediaError(DiscomfyError):
    """Pillow or PyAV could not read or write a file; ``str()`` says what was being done."""

    user_message = "That file could not be read as an image or a video."


# Pillow raises OSError (UnidentifiedImageError included), ValueError, EOFError and its DecompressionBombError;
# PyAV raises FFmpegError (a subclass of OSError and ValueError in most versions) and ValueError.
_LIBRARY_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,  # raised only where warnings are errors; ``bombs.py`` checks sizes first
    av.FFmpegError,
)


@contextmanager
def reading_media(what: str) -> Iterator[None]:
    """Translate library errors raised inside the block into ``MediaError(what)``."""
    try:
        yield
    except MediaError:
        raise
    except _LIBRARY_ERRORS as exc:
        raise MediaError(f"{what}: {type(exc).__name__}") from exc
