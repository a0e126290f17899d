"""What a file is, from its first bytes: never from the name or the type a server or a user gave it.

How it works: ``sniff(data)`` matches the magic numbers of the formats we deliver — PNG (APNG too), JPEG, GIF,
WebP, MP4 / M4V (ISO base media), QuickTime MOV, WebM / Matroska and AVI — and returns the ``Sniffed`` kind:
the extension a stored file is named with, its mime type and whether it is a picture or a video. Anything else
(a shell script, HTML, an archive, a format we do not deliver) is ``None``: the caller refuses it. A match only
says what the file claims to be in its own bytes; ``media.bombs.image_header`` (pictures) and PyAV (videos)
then check that it really opens.

Pure: no I/O, no library; a few comparisons on the first 64 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Family(StrEnum):
    PICTURE = "picture"
    VIDEO = "video"


@dataclass(frozen=True)
class Sniffed:
    #: The extension the file is stored and sent with (``png``, ``jpg``, ``mp4``, …).
    ext: str
    mime: str
    family: Family
    #: Pillow's name for the format (``PNG``, ``JPEG``, …), for pictures; ``""`` for videos.
    pillow_format: str = ""


PNG = Sniffed("png", "image/png", Family.PICTURE, "PNG")
JPEG = Sniffed("jpg", "image/jpeg", Family.PICTURE, "JPEG")
GIF = Sniffed("gif", "image/gif", Family.PICTURE, "GIF")
WEBP = Sniffed("webp", "image/webp", Family.PICTURE, "WEBP")
MP4 = Sniffed("mp4", "video/mp4", Family.VIDEO)
MOV = Sniffed("mov", "video/quicktime", Family.VIDEO)
WEBM = Sniffed("webm", "video/webm", Family.VIDEO)
MKV = Sniffed("mkv", "video/x-matroska", Family.VIDEO)
AVI = Sniffed("avi", "video/x-msvideo", Family.VIDEO)

_EBML = b"\x1a\x45\xdf\xa3"
#: ISO base media brands of QuickTime files; every other brand is stored as MP4.
_QUICKTIME_BRANDS = {b"qt  "}


def sniff(data: bytes) -> Sniffed | None:
    """The kind of ``data`` by its magic bytes, or None when it is nothing we deliver."""
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return AVI
    if head[4:8] == b"ftyp" and len(head) >= 12:
        return MOV if head[8:12] in _QUICKTIME_BRANDS else MP4
    if head.startswith(_EBML):
        return WEBM if b"webm" in head else MKV
    return None
