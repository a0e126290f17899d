"""The blocking half of the output store: atomic writes, probing media, walking and removing files.

How it works: every function here is synchronous and is meant to run in a worker thread
(``asyncio.to_thread``); ``outputs.py`` is the only caller. ``write_atomic`` writes to a temporary file in the
target's own directory (``.<name>.<random>.part``), flushes and fsyncs it, renames it over the target
(``os.replace`` is atomic on one filesystem) and fsyncs the directory: a reader, or a crash, sees either no file
or the whole file. Every file is written 0600: a result is the bot's until it is sent.

``inspect`` says what a fetched file *is*, from its bytes (``media.sniff``), never from the name or kind the server
gave it: the extension it is stored and sent with, its mime type, and what is cheap to read (image size and frame
count with Pillow, a video's size and duration with PyAV). A file whose bytes are no picture or video we deliver,
or that does not open as the format its bytes claim, is ``Refused`` (``Failure.BAD_OUTPUT``); a picture or video
frame over ``OUTPUT_MAX_PIXELS`` (a decompression bomb) is ``Refused`` (``Failure.TOO_LARGE``) before any pixel
is decoded.

Never: trust a server's file name or extension; touch a file other than the one being written (an existing file
is replaced only by the final rename, never opened for writing); leave a ``.part`` file behind after an error;
import asyncio.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
from PIL import Image

from discomfy.errors import UserError
from discomfy.jobs.records import OutputKind
from discomfy.media.bombs import OUTPUT_MAX_PIXELS, bomb_message, image_header, is_bomb
from discomfy.media.sniff import Family, Sniffed, sniff
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
#: ... nor past this many pixels decoded in all (frames × width × height).
_MAX_PIXELS_FOR_DURATION = 1 << 30
#: Mode of every file the store writes: the bot's own, until Discord has it.
FILE_MODE = 0o600


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


@dataclass(frozen=True)
class Inspected:
    """A fetched file we deliver: what its bytes are, and what is cheap to know of it."""

    ext: str
    mime: str
    facts: Probe


@dataclass(frozen=True)
class Refused:
    """A fetched file we do not keep: why (for the log), and the kind of failure if nothing else is left."""

    reason: str
    failure: Failure


def inspect(data: bytes) -> Inspected | Refused:
    """What ``data`` is by its bytes, checked to open as that (blocking: Pillow / PyAV). Never raises."""
    sniffed = sniff(data)
    if sniffed is None:
        return Refused(
            f"its bytes are not a picture or a video we deliver (they begin {data[:8]!r})", Failure.BAD_OUTPUT
        )
    if sniffed.family is Family.VIDEO:
        return _inspect_video(data, sniffed)
    header = image_header(data, OUTPUT_MAX_PIXELS)
    if header.bomb:
        return Refused(bomb_message(header, OUTPUT_MAX_PIXELS), Failure.TOO_LARGE)
    if header.format != sniffed.pillow_format:
        return Refused(f"its bytes begin like {sniffed.ext.upper()} but it does not open as one", Failure.BAD_OUTPUT)
    facts = _image_facts(data)
    if facts is None:
        return Refused(f"it does not open as the {sniffed.ext.upper()} its bytes begin like", Failure.BAD_OUTPUT)
    width, height, frames, duration = facts
    kind = OutputKind.ANIMATION if frames > 1 else OutputKind.IMAGE
    return Inspected(sniffed.ext, sniffed.mime, Probe(kind, width, height, duration if frames > 1 else None))


def _inspect_video(data: bytes, sniffed: Sniffed) -> Inspected | Refused:
    facts = _video_facts(data)
    if facts is None:
        return Refused(f"it does not open as the {sniffed.ext.upper()} video its bytes begin like", Failure.BAD_OUTPUT)
    width, height, duration = facts
    if width is None or height is None:
        return Refused(f"its {sniffed.ext.upper()} holds no video we can read", Failure.BAD_OUTPUT)
    if is_bomb(width, height, OUTPUT_MAX_PIXELS):
        return Refused(f"its frames are {width}×{height} pixels, more than we decode", Failure.TOO_LARGE)
    return Inspected(sniffed.ext, sniffed.mime, Probe(OutputKind.VIDEO, width, height, duration))


def _image_facts(data: bytes) -> tuple[int, int, int, float | None] | None:
    """Size, frame count and (cheap to sum) duration of a picture ``image_header`` found within the pixel cap."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()  # the file's structure (for PNG: every chunk and its checksum), no pixel decoded
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            frames = int(getattr(image, "n_frames", 1) or 1)
            duration: float | None = None
            cheap = frames * width * height <= _MAX_PIXELS_FOR_DURATION
            if 1 < frames <= _MAX_FRAMES_FOR_DURATION and cheap:
                total = 0.0
                for frame in range(frames):
                    image.seek(frame)
                    total += float(image.info.get("duration") or 0)
                duration = total / 1000 if total > 0 else None
            return int(width), int(height), frames, duration
    except Exception:  # Pillow raises many types (bomb warnings too, where warnings are errors)
        return None


def _video_facts(data: bytes) -> tuple[int | None, int | None, float | None] | None:
    """A video's frame size and duration from its headers; None when PyAV cannot open it at all."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            duration = container.duration / 1_000_000 if container.duration else None
            streams = container.streams.video
            if not streams:
                return None, None, duration
            ctx = streams[0].codec_context
            return int(ctx.width) or None, int(ctx.height) or None, duration
    except Exception:  # PyAV raises its own tree plus ValueError/OSError on garbage
        return None


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
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # whatever the umask
            return fd
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
    """A result or input could not be saved (disk full, folder unwritable), or none of a job's files was fit to
    keep (``failure``: ``TOO_LARGE``, ``BAD_OUTPUT``); nothing of it was left behind."""

    failure = Failure.STORAGE

    def __init__(self, user_message: str, detail: str = "", *, failure: Failure = Failure.STORAGE) -> None:
        super().__init__(user_message)
        self.detail = detail
        self.failure = failure

    def __str__(self) -> str:
        return f"{self.user_message} ({self.detail})" if self.detail else self.user_message


DISK_FULL = "The bot's disk is full, so this result could not be saved. An admin has to free space."
UNWRITABLE = "The bot can't write to its storage folder, so this result could not be saved. An admin has to fix it."
NOTHING_DELIVERABLE = "The image server sent no picture or video that could be delivered."
NOT_SAVED = "This result could not be saved on the bot's disk. Please try again; if it keeps happening, tell an admin."
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR}


def user_message_for(exc: OSError) -> str:
    if exc.errno in _FULL:
        return DISK_FULL
    if exc.errno in _UNWRITABLE:
        return UNWRITABLE
    return NOT_SAVED
