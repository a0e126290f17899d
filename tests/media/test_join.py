"""Extending a video (``media/join.py``): the last frame as a picture, and the original joined with a new part —
the junction frame once, the original's rate and size, H.264 in yuv420p. Frames are solid colours, so each
decoded frame says which source frame it was."""

from __future__ import annotations

import io
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image

from discomfy.media.errors import MediaError
from discomfy.media.join import join_videos, last_frame

#: Far apart in grey, so x264's small errors never make one look like another.
SHADES = [10, 40, 70, 100, 130, 160, 190, 220, 250]


def solid_video(
    shades: list[int], *, fps: int, width: int = 64, height: int = 48, container: str = "mp4", gop: int | None = None
) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip.{container}"
        with av.open(str(path), "w", format=container) as out:
            codec = "libx264" if container == "mp4" else "libvpx-vp9"
            stream = out.add_stream(codec, rate=fps, options={"g": str(gop)} if gop else {})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for index, shade in enumerate(shades):
                frame = av.VideoFrame.from_image(Image.new("RGB", (width, height), (shade, shade, shade)))
                frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base = index, Fraction(1, fps)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        return path.read_bytes()


def shades_of(data: bytes) -> list[int]:
    with av.open(io.BytesIO(data)) as container:
        return [_shade(frame.to_image()) for frame in container.decode(container.streams.video[0])]


def _shade(image: Image.Image) -> int:
    grey = image.convert("L")
    pixel = grey.getpixel((grey.width // 2, grey.height // 2))
    assert isinstance(pixel, int)
    return min(SHADES, key=lambda s: abs(s - pixel))


def test_the_last_frame_is_the_videos_last_picture_with_its_count_size_and_rate() -> None:
    video = solid_video(SHADES[:5], fps=8)

    found = last_frame(video)

    assert (found.frames, found.width, found.height, found.rate) == (5, 64, 48, Fraction(8))
    with Image.open(io.BytesIO(found.last_png)) as picture:
        assert picture.format == "PNG" and picture.size == (64, 48)
        assert _shade(picture) == SHADES[4]


def test_the_last_frame_of_a_video_with_many_keyframes_is_its_last() -> None:
    found = last_frame(solid_video(SHADES, fps=8, gop=2))
    assert found.frames == len(SHADES)
    with Image.open(io.BytesIO(found.last_png)) as picture:
        assert _shade(picture) == SHADES[-1]


def test_the_same_video_always_gives_the_same_last_frame_bytes() -> None:
    video = solid_video(SHADES[:3], fps=8)
    assert last_frame(video).last_png == last_frame(video).last_png


def test_joining_keeps_the_junction_frame_once_and_the_originals_rate_and_size() -> None:
    original = solid_video(SHADES[:5], fps=8)
    # The new part starts with the original's last frame (its input picture), at another rate and size.
    part = solid_video([SHADES[4], *SHADES[5:9]], fps=24, width=96, height=80)

    joined = join_videos(original, part)

    assert joined.frames == 5 + 5 - 1
    assert shades_of(joined.data) == SHADES[:9]
    with av.open(io.BytesIO(joined.data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (64, 48)
        assert stream.average_rate == 8
        assert len(list(container.decode(stream))) == 9
    assert (joined.width, joined.height, joined.rate) == (64, 48, Fraction(8))


def test_a_joined_video_can_be_extended_again() -> None:
    first = join_videos(solid_video(SHADES[:3], fps=6), solid_video(SHADES[2:5], fps=6))
    again = join_videos(first.data, solid_video(SHADES[4:7], fps=6))
    assert shades_of(again.data) == SHADES[:7]
    assert last_frame(again.data).frames == 7


def test_a_webm_part_is_joined_too() -> None:
    joined = join_videos(solid_video(SHADES[:2], fps=8), solid_video(SHADES[1:4], fps=8, container="webm"))
    assert shades_of(joined.data) == SHADES[:4]


def test_more_frames_than_the_bound_are_refused() -> None:
    with pytest.raises(MediaError, match="more than 6 frames"):
        join_videos(solid_video(SHADES[:4], fps=8), solid_video(SHADES[3:8], fps=8), max_frames=6)


def test_what_is_not_a_video_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="reading the video to extend"):
        last_frame(b"\x89PNG\r\n\x1a\n not a video")
    with pytest.raises(MediaError, match="joining the videos"):
        join_videos(solid_video(SHADES[:2], fps=8), b"garbage")


def test_the_last_frame_is_read_from_the_file_as_well_as_from_bytes(tmp_path: Path) -> None:
    data = solid_video(SHADES[:5], fps=8, gop=2)
    path = tmp_path / "v.mp4"
    path.write_bytes(data)
    assert last_frame(path) == last_frame(data)
