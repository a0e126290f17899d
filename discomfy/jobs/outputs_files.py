"""The blocking half of the output store: atomic writes, probing media, walking and removing files.

How it works: every function here is synchronous and is meant to run in a worker thread
(``asyncio.to_thread``); ``outputs.py`` is the only caller. ``write_atomic`` writes to a temporary file in the
target's own directory (``.<name>.<random>.part``), flushes and fsyncs it, renames it over the target
(``os.replace`` is atomic on one filesystem) and fsyncs the directory: a reader, or a crash, sees either no file
or the whole file. ``probe`` reads what is cheap to read (image size and frame count with Pillow, a video's size
and duration with PyAV); both libraries are optional and a file they cannot read simply has no dimensions.

Never: touch a file other than the one being written (an existing file is replaced only by the final rename,
never opened for writing); leave a ``.part`` file behind after an error; import asyncio.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import mimetypes
import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
from PIL import Image

from discomfy.comfy.types import MediaKind
from discomfy.errors import UserError
from discomfy.jobs.records import OutputKind
from discomfy.outcome import Failure

log = logging.getLogger("discomfy.jobs.outputs")

#: Temporary files of writes in progress end with this; ``reconcile`` removes leftovers of interrupted writes.
TEMP_SUFFIX = ".part"
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[0-9a-f]{8}\.part$")

#: Writes ``data`` into an open binary file; the store's default is ``file.write``. Tests inject one that runs
#: out of space part-way, like a full disk.
Writer = Callable[[BinaryIO, bytes], None]

_MIME = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "mp4": "video/mp4",
    "m4v": "video/x-m4v",
    "webm": "video/webm",
    "mov": "video/quicktime",
    "mkv": "video/x-matroska",
    "avi": "video/x-msvideo",
}
#: Summing frame durations seeks through every frame; past this many it is not "cheap" any more.
_MAX_FRAMES_FOR_DURATION = 2000


def default_writer(file: BinaryIO, data: bytes) -> None:
    file.write(data)


def extension_of(filename: str) -> str:
    """The lower-case extension without the dot, or ``bin`` when there is none or it looks odd."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return ext if re.fullmatch(r"[a-z0-9]{1,8}", ext) else "bin"


def mime_of(ext: str) -> str:
    return _MIME.get(ext) or mimetypes.types_map.get(f".{ext}") or "application/octet-stream"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Probe:
    kind: OutputKind
    width: int | None = None
    height: int | None = None
    duration: float | None = None


def probe(data: bytes, media: MediaKind, mime: str) -> Probe:
    """Kind and dimensions of a file, from its bytes. Never raises: what cannot be read stays ``None``."""
    if media is MediaKind.VIDEO or (media is MediaKind.OTHER and mime.startswith("video/")):
        width, height, duration = _video_facts(data)
        return Probe(OutputKind.VIDEO, width, height, duration)
    facts = _image_facts(data)
    if facts is None:
        # ComfyUI said image or animation (or something we do not know): keep its word; delivery sends
        # what it cannot process as a plain file, and the mime says what it is.
        return Probe(OutputKind.ANIMATION if media is MediaKind.ANIMATION else OutputKind.IMAGE)
    width, height, frames, duration = facts
    kind = OutputKind.ANIMATION if frames > 1 else OutputKind.IMAGE
    return Probe(kind, width, height, duration if frames > 1 else None)


def _image_facts(data: bytes) -> tuple[int, int, int, float | None] | None:
    try:
        with warnings.catch_warnings():
            # Opening only reads the header; a "decompression bomb" warning about the pixel count is moot.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                frames = int(getattr(image, "n_frames", 1) or 1)
                duration: float | None = None
                if 1 < frames <= _MAX_FRAMES_FOR_DURATION:
                    total = 0.0
                    for frame in range(frames):
                        image.seek(frame)
                        total += float(image.info.get("duration") or 0)
                    duration = total / 1000 if total > 0 else None
                return int(width), int(height), frames, duration
    except Exception:  # Pillow raises many types for files it cannot read; none of them is our problem here
        return None


def _video_facts(data: bytes) -> tuple[int | None, int | None, float | None]:
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            duration = container.duration / 1_000_000 if container.duration else None
            streams = container.streams.video
            if not streams:
                return None, None, duration
            ctx = streams[0].codec_context
            return int(ctx.width) or None, int(ctx.height) or None, duration
    except Exception:  # PyAV raises its own tree plus ValueError/OSError on garbage
        return None, None, None


# -- writing and removing --


def temp_path_for(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


def target_of_temp(temp: Path) -> Path | None:
    """The file a ``.part`` file was going to become, or None if the name is not one of ours."""
    match = _TEMP_NAME.match(temp.name)
    return temp.with_name(match["target"]) if match else None


def write_atomic(target: Path, data: bytes, writer: Writer = default_writer) -> None:
    """``target`` holds exactly ``data`` afterwards, or is untouched and no temporary file is left."""
    temp = temp_path_for(target)
    try:
        fd = _create(temp)
        with os.fdopen(fd, "wb") as file:
            writer(file, data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(target.parent)


def _create(temp: Path) -> int:
    """Create ``temp`` exclusively, making its directory; once more if the directory vanished in between
    (``reconcile`` removes empty month directories)."""
    for attempt in (1, 2):
        temp.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def fsync_dir(directory: Path) -> None:
    """Make a rename durable. Some filesystems refuse fsync on a directory; that only weakens power-loss safety."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove(path: Path) -> bool:
    """Delete a file; True if it existed. Other ``OSError``s propagate."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def remove_found(file: FoundFile, what: str) -> int:
    """Delete a file found while reconciling, logging it; 1 if it was removed, else 0."""
    try:
        path_existed = remove(file.path)
    except OSError as exc:
        log.warning("reconcile: could not remove %s (%s): %s", file.path, what, exc)
        return 0
    if path_existed:
        log.info("reconcile: removed %s (%s)", file.path, what)
    return int(path_existed)


def remove_quietly(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def has_content(path: Path, sha256: str) -> bool:
    """True if ``path`` exists with content ``sha256`` (used to skip rewriting identical content)."""
    data = read_bytes(path)
    return data is not None and sha256_hex(data) == sha256


@dataclass(frozen=True)
class FoundFile:
    path: Path
    mtime: float


def walk_files(directory: Path) -> Iterator[FoundFile]:
    """Every regular file under ``directory`` (which may not exist), with its modification time."""
    if not directory.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(directory):
        for name in filenames:
            path = Path(dirpath) / name
            with contextlib.suppress(FileNotFoundError):
                yield FoundFile(path, path.stat().st_mtime)


def remove_empty_dirs(directory: Path) -> None:
    """Month directories left empty by eviction; ``directory`` itself stays."""
    if not directory.is_dir():
        return
    for dirpath, _dirnames, _filenames in os.walk(directory, topdown=False):
        if Path(dirpath) != directory:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)  # fails (and is skipped) unless empty


# -- errors --


class OutputStoreError(UserError):
    """A result or input could not be saved (disk full, folder unwritable); nothing of it was left behind."""

    failure = Failure.STORAGE

    def __init__(self, user_message: str, detail: str = "") -> None:
        super().__init__(user_message)
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.user_message} ({self.detail})" if self.detail else self.user_message


DISK_FULL = "The bot's disk is full, so this result could not be saved. An admin has to free space."
UNWRITABLE = "The bot can't write to its storage folder, so this result could not be saved. An admin has to fix it."
NOT_SAVED = "This result could not be saved on the bot's disk. Please try again; if it keeps happening, tell an admin."
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR}


def user_message_for(exc: OSError) -> str:
    if exc.errno in _FULL:
        return DISK_FULL
    if exc.errno in _UNWRITABLE:
        return UNWRITABLE
    return NOT_SAVED
