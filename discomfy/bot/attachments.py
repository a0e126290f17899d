"""Input images from Discord: an attachment option checked, downloaded and read as a ``Picture``.

How it works: ``check_attachment`` looks only at what Discord tells us (name, content type, size) and refuses
cheaply, before we defer; ``fetch_image`` downloads it (bounded in size and time) and reads it with
``media.picture.read_picture`` in a thread, which refuses a decompression bomb (a small file declaring a huge
picture) from its header, with a message saying so, before any pixel is decoded. ``download`` also fetches a
result whose file we no longer store (the Discord attachment URL kept in its row).

Never: trust the file name or the declared type alone, read more than ``max_bytes``, or run Pillow on the event
loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from discomfy.errors import BadInputError
from discomfy.media.picture import Picture, read_picture

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
MAX_INPUT_BYTES = 25 * 1024 * 1024
DOWNLOAD_TIMEOUT = 30.0


@dataclass(frozen=True)
class AttachmentInfo:
    filename: str
    content_type: str | None
    size: int
    url: str


def check_attachment(info: AttachmentInfo, *, option: str = "image", max_bytes: int = MAX_INPUT_BYTES) -> None:
    """Refuse what is plainly not a usable picture, from Discord's metadata alone."""
    looks_like_image = (info.content_type or "").startswith("image/") or info.filename.lower().endswith(
        IMAGE_EXTENSIONS
    )
    if not looks_like_image:
        raise BadInputError(f"The {option} option needs a picture (PNG, JPEG or WebP); '{info.filename}' is not one.")
    if info.size > max_bytes:
        raise BadInputError(
            f"The {option} picture is {info.size / 1024 / 1024:.1f} MiB; the most it may be is "
            f"{max_bytes / 1024 / 1024:.0f} MiB."
        )


async def fetch_image(
    session: aiohttp.ClientSession, info: AttachmentInfo, *, option: str = "image", max_bytes: int = MAX_INPUT_BYTES
) -> Picture:
    check_attachment(info, option=option, max_bytes=max_bytes)
    data = await download(session, info.url, max_bytes=max_bytes, what=f"the {option} picture")
    return await asyncio.to_thread(read_picture, data, option=option)


async def download(session: aiohttp.ClientSession, url: str, *, max_bytes: int, what: str) -> bytes:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT)) as response:
            if response.status != 200:
                raise BadInputError(f"Discord would not give us {what} (HTTP {response.status}). Try again.")
            data = await response.content.read(max_bytes + 1)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise BadInputError(f"Downloading {what} from Discord failed. Try again.") from exc
    if len(data) > max_bytes:
        raise BadInputError(f"{what.capitalize()} is larger than {max_bytes / 1024 / 1024:.0f} MiB.")
    return data
