"""What a file is comes from its first bytes (``media/sniff.py``), and its pixel count from its header
(``media/bombs.py``), never from a name."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from discomfy.media.bombs import OUTPUT_MAX_PIXELS, declared_size, image_header
from discomfy.media.sniff import AVI, GIF, JPEG, MKV, MOV, MP4, PNG, WEBM, WEBP, Family, sniff


def encoded(fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (6, 4), (1, 2, 3)).save(out, fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (encoded("PNG"), PNG),
        (encoded("JPEG"), JPEG),
        (encoded("GIF"), GIF),
        (encoded("WEBP"), WEBP),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", MP4),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", MOV),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", WEBM),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", MKV),
        (b"RIFF\x00\x00\x00\x00AVI LIST", AVI),
    ],
)
def test_known_kinds_are_named_by_their_bytes(data: bytes, kind: object) -> None:
    assert sniff(data) is kind


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"#!/bin/sh\n",
        b"<html>",
        b"\x7fELF",
        b"PK\x03\x04",
        b"BM\x00\x00",
        b"%PDF-1.7",
        b"RIFF\x00\x00\x00\x00WAVE",
    ],
)
def test_anything_else_is_nothing_we_deliver(data: bytes) -> None:
    assert sniff(data) is None


def test_families() -> None:
    assert {k.family for k in (PNG, JPEG, GIF, WEBP)} == {Family.PICTURE}
    assert {k.family for k in (MP4, MOV, WEBM, MKV, AVI)} == {Family.VIDEO}


def test_a_picture_within_the_cap_is_no_bomb_and_one_past_it_is() -> None:
    header = image_header(encoded("PNG"))
    assert (header.format, header.width, header.height, header.bomb) == ("PNG", 6, 4, False)
    assert image_header(encoded("PNG"), max_pixels=23).bomb
    assert not image_header(encoded("PNG"), max_pixels=24).bomb
    assert OUTPUT_MAX_PIXELS >= 8192 * 8192  # a 4× upscale of 2048×2048 is never refused


def test_garbage_is_unreadable_not_a_bomb() -> None:
    header = image_header(b"#!/bin/sh\n")
    assert header.format is None and not header.bomb and not header.readable


def test_declared_sizes_are_read_from_png_and_gif_headers() -> None:
    assert declared_size(encoded("PNG")) == (6, 4)
    assert declared_size(encoded("GIF")) == (6, 4)
    assert declared_size(b"nothing") == (0, 0)
