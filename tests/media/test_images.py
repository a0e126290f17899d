"""Still images through ``fit_for_discord``: lossless first, then the WebP/JPEG ladder, never over budget."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from discomfy.media import fit_for_discord
from tests.media.makers import noise_image, png_bytes

MIB = 1024 * 1024
LIMIT = 10 * MIB


@pytest.fixture(scope="module")
def png_30mb() -> bytes:
    data = png_bytes(noise_image(3200, 3200))
    assert len(data) > 28 * MIB
    return data


async def test_a_30_mb_png_is_delivered_under_10_mib_with_a_note(png_30mb: bytes) -> None:
    result = await fit_for_discord([("ComfyUI_00001_.png", png_30mb)], per_file_limit=LIMIT)
    (upload,) = result.uploads
    assert result.too_big == ()
    assert len(upload.data) <= LIMIT
    assert upload.changed and upload.original_size == len(png_30mb)
    assert upload.filename == "ComfyUI_00001_.webp" and upload.mime == "image/webp"
    assert upload.note is not None and "10 MiB" in upload.note and "WebP" in upload.note
    assert result.notes == (upload.note,)
    with Image.open(io.BytesIO(upload.data)) as im:
        assert im.format == "WEBP" and im.size == (3200, 3200)


async def test_a_small_png_passes_through_unchanged() -> None:
    data = png_bytes(noise_image(64, 64))
    result = await fit_for_discord([("small.png", data)], per_file_limit=LIMIT)
    (upload,) = result.uploads
    assert upload.data == data and upload.filename == "small.png" and upload.mime == "image/png"
    assert not upload.changed and upload.note is None and result.notes == ()


async def test_rgba_keeps_transparency_in_webp() -> None:
    image = noise_image(400, 400, mode="RGBA")
    alpha = Image.new("L", image.size, 255)
    alpha.paste(0, (0, 0, 100, 100))  # a fully transparent corner
    image.putalpha(alpha)
    data = png_bytes(image)
    result = await fit_for_discord([("alpha.png", data)], per_file_limit=len(data) // 2)
    (upload,) = result.uploads
    with Image.open(io.BytesIO(upload.data)) as im:
        assert im.format == "WEBP" and im.mode == "RGBA"
        assert im.getpixel((10, 10))[3] == 0  # type: ignore[index]  # RGBA pixels are tuples
        assert im.getpixel((300, 300))[3] == 255  # type: ignore[index]


async def test_a_few_colours_become_an_exact_palette_png_keeping_its_text() -> None:
    image = Image.new("RGB", (600, 600))
    for i in range(0, 600, 20):
        image.paste((i % 256, (i * 3) % 256, 90), (i, 0, i + 20, 600))
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", '{"3": {"class_type": "KSampler"}}')
    raw = io.BytesIO()
    image.save(raw, "PNG", compress_level=0, pnginfo=info)
    data = raw.getvalue()
    result = await fit_for_discord([("flat.png", data)], per_file_limit=len(data) // 4)
    (upload,) = result.uploads
    assert upload.filename == "flat.png" and upload.changed
    assert upload.note is not None and "losslessly" in upload.note
    with Image.open(io.BytesIO(upload.data)) as im:
        assert im.format == "PNG" and im.mode == "P"
        assert im.text["prompt"] == '{"3": {"class_type": "KSampler"}}'  # type: ignore[attr-defined]
        assert im.convert("RGB").tobytes() == image.tobytes()


async def test_exif_orientation_is_kept_in_the_pixels() -> None:
    image = noise_image(800, 400)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    raw = io.BytesIO()
    image.save(raw, "JPEG", quality=95, exif=exif)
    data = raw.getvalue()
    result = await fit_for_discord([("phone.jpg", data)], per_file_limit=len(data) // 2)
    (upload,) = result.uploads
    with Image.open(io.BytesIO(upload.data)) as im:
        assert im.height > im.width  # displayed upright: 400 wide, 800 tall (or a scaled copy)


async def test_jpeg_rung_flattens_transparency_over_white() -> None:
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))  # fully transparent
    image.paste(noise_image(300, 150, mode="RGBA"), (0, 150))
    data = png_bytes(image)
    # A budget only a low rung reaches: whatever format comes out must be within it and show white, not black.
    result = await fit_for_discord([("t.png", data)], per_file_limit=len(data) // 6)
    (upload,) = result.uploads
    assert len(upload.data) <= len(data) // 6
    with Image.open(io.BytesIO(upload.data)) as im:
        corner = im.convert("RGBA").getpixel((5, 5))
    assert corner[3] == 0 or corner[:3] == (255, 255, 255)  # type: ignore[index]
