"""Input images from Discord: an attachment option checked, downloaded and turned into an ``InputImage``.

How it works: ``check_attachment`` looks only at what Discord tells us (name, content type, size) and refuses
cheaply, before we defer; ``fetch_image`` downloads it (bounded in size and time) and opens it with Pillow in a
thread to be sure it is a picture, re-encoding anything that is not a PNG, JPEG or WebP file into PNG, and names
it by its content hash. ``fetch_url_image`` does the same for a result whose file we no longer store (the
Discord attachment URL kept in its row).

Never: trust the file name or the declared type alone, read more than ``max_bytes``, or run Pillow on the event
loop.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

import aiohttp
from PIL import Image, UnidentifiedImageError

from discomfy.comfy.engine import InputImage
from discomfy.errors import BadInputError

#: Pictures ComfyUI's LoadImage reads and we pass through as they are.
KEEP_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
MAX_INPUT_BYTES = 25 * 1024 * 1024
MAX_INPUT_PIXELS = 4096 * 4096
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


def to_input_image(data: bytes, *, option: str = "image") -> InputImage:
    """Check ``data`` is a picture (blocking: call in a thread) and name it by content."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_INPUT_PIXELS:
                raise BadInputError(f"The {option} picture is {width}×{height}; the most we take is 4096×4096 pixels.")
            image_format = image.format or ""
            if image_format in KEEP_FORMATS:
                image.verify()
                return InputImage.from_bytes(data, KEEP_FORMATS[image_format])
            image.seek(0)
            out = io.BytesIO()
            image.convert("RGBA" if "A" in image.getbands() else "RGB").save(out, "PNG")
            return InputImage.from_bytes(out.getvalue(), "png")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"The {option} file could not be read as a picture. Try a PNG or JPEG.") from exc


async def fetch_image(
    session: aiohttp.ClientSession, info: AttachmentInfo, *, option: str = "image", max_bytes: int = MAX_INPUT_BYTES
) -> InputImage:
    check_attachment(info, option=option, max_bytes=max_bytes)
    data = await download(session, info.url, max_bytes=max_bytes, what=f"the {option} picture")
    return await asyncio.to_thread(to_input_image, data, option=option)


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
