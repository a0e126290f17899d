"""The pure decisions of size-aware delivery (``discomfy/media/plan.py``)."""

from __future__ import annotations

from discomfy.media import plan
from discomfy.media.plan import Kind, VideoSource

MIB = 1024 * 1024


def test_sniff_reads_magic_bytes_before_the_extension() -> None:
    assert plan.sniff("x.mp4", b"\x89PNG\r\n\x1a\n" + b"\0" * 8) is Kind.IMAGE
    assert plan.sniff("x.png", b"\0\0\0\x20ftypisom" + b"\0" * 8) is Kind.VIDEO
    assert plan.sniff("x.webm", b"\x1a\x45\xdf\xa3" + b"\0" * 12) is Kind.VIDEO
    assert plan.sniff("x.gif", b"GIF89a" + b"\0" * 10) is Kind.IMAGE
    assert plan.sniff("x.webp", b"RIFF\0\0\0\0WEBPVP8 ") is Kind.IMAGE


def test_sniff_falls_back_on_the_extension_then_other() -> None:
    assert plan.sniff("clip.mov", b"garbage") is Kind.VIDEO
    assert plan.sniff("latent.safetensors", b"garbage") is Kind.OTHER


def test_a_quicktime_brand_is_not_mp4() -> None:
    assert plan.is_mp4("a.mp4", b"\0\0\0\x14ftypisom")
    assert not plan.is_mp4("a.mp4", b"\0\0\0\x14ftypqt  ")
    assert not plan.is_mp4("a.mov", b"\0\0\0\x14ftypisom")


def test_apng_is_told_by_an_actl_chunk_before_idat() -> None:
    png = b"\x89PNG\r\n\x1a\n"
    assert plan.is_apng(png + b"....IHDR....acTL....IDAT")
    assert not plan.is_apng(png + b"....IHDR....IDAT....acTL")


def test_budget_keeps_every_file_whole_when_all_fit() -> None:
    assert plan.share_budget([100, 200], per_file_limit=1000, total_limit=None) == [100, 200]
    assert plan.share_budget([100, 200], per_file_limit=1000, total_limit=300) == [100, 200]


def test_budget_caps_each_file_at_the_per_file_limit() -> None:
    assert plan.share_budget([5000, 200], per_file_limit=1000, total_limit=None) == [1000, 200]


def test_budget_squeezes_the_largest_first() -> None:
    budgets = plan.share_budget([100, 900, 600], per_file_limit=1000, total_limit=1000)
    assert budgets[0] == 100  # small file untouched
    assert budgets[1] == budgets[2] == 450  # the two large ones share the rest
    assert sum(budgets) <= 1000


def test_lossless_steps_palette_first_and_optimise_only_within_reach() -> None:
    assert plan.lossless_steps(True, 100, 90, palette_exact=True)[0].palette
    assert plan.lossless_steps(True, 130, 100, palette_exact=False) == (plan.ImageStep("PNG", None),)
    assert plan.lossless_steps(True, 300, 100, palette_exact=False) == ()
    assert plan.lossless_steps(False, 110, 100, palette_exact=True) == ()


def test_ladder_goes_webp_then_jpeg_by_decreasing_quality_then_down_in_scale() -> None:
    ladder = plan.lossy_ladder(4096, 4096)
    first_scale = [s for s in ladder if s.scale == 1.0]
    assert [s.format for s in first_scale] == ["WEBP", "WEBP", "WEBP", "JPEG", "JPEG"]
    assert [s.quality for s in first_scale if s.format == "WEBP"] == [85, 70, 55]
    scales = [s.scale for s in ladder]
    assert scales == sorted(scales, reverse=True)
    assert min(4096 * s.scale for s in ladder) >= plan.MIN_IMAGE_SIDE


def test_ladder_uses_jpeg_only_past_webps_size_limit() -> None:
    ladder = plan.lossy_ladder(20000, 1000)
    assert {s.format for s in ladder if s.scale == 1.0} == {"JPEG"}
    assert "WEBP" in {s.format for s in ladder if s.scale == 0.75}


def test_small_miss_tries_the_next_quality() -> None:
    ladder = plan.lossy_ladder(1000, 1000)
    assert plan.next_lossy_step(ladder, 0, produced=120, budget=100) == 1


def test_large_miss_jumps_to_a_scale_that_can_reach_the_budget() -> None:
    ladder = plan.lossy_ladder(4000, 4000)
    index = plan.next_lossy_step(ladder, 0, produced=400, budget=100)  # 4x too big: half the side
    assert index is not None
    assert ladder[index].scale == 0.5 and ladder[index].quality == 85


def test_ladder_ends_with_none() -> None:
    ladder = plan.lossy_ladder(1000, 1000)
    assert plan.next_lossy_step(ladder, len(ladder) - 1, produced=200, budget=100) is None


def test_video_bitrate_comes_from_budget_and_duration() -> None:
    src = VideoSource(1280, 720, duration=10.0, frames=300, has_audio=False)
    video_plan = plan.plan_video(src, 10 * MIB)
    assert video_plan is not None
    total_bits = video_plan.video_bitrate * src.duration
    assert total_bits <= 10 * MIB * 8 * plan.HEADROOM
    assert (video_plan.width, video_plan.height) == (1280, 720)


def test_video_bitrate_is_capped_for_short_clips() -> None:
    src = VideoSource(640, 360, duration=1.0, frames=24, has_audio=False)
    video_plan = plan.plan_video(src, 10 * MIB)
    assert video_plan is not None
    assert video_plan.video_bitrate <= max(640 * 360 * 24 * plan.QUALITY_BPP, 500_000)


def test_video_is_downscaled_to_even_dimensions_when_bits_per_pixel_are_too_few() -> None:
    src = VideoSource(1921, 1081, duration=120.0, frames=3600, has_audio=False)
    video_plan = plan.plan_video(src, 10 * MIB)
    assert video_plan is not None
    assert video_plan.width < 1921 and video_plan.height < 1081
    assert video_plan.width % 2 == 0 and video_plan.height % 2 == 0
    assert abs(video_plan.width / video_plan.height - 1921 / 1081) < 0.02


def test_audio_gets_a_low_bitrate_or_is_dropped_when_the_budget_is_tiny() -> None:
    roomy = plan.plan_video(VideoSource(640, 360, 10.0, 240, has_audio=True), 10 * MIB)
    tiny = plan.plan_video(VideoSource(640, 360, 60.0, 1440, has_audio=True), 1 * MIB)
    assert roomy is not None and 0 < roomy.audio_bitrate <= 128_000
    assert tiny is not None and tiny.drops_audio


def test_nothing_watchable_fits_gives_none() -> None:
    assert plan.plan_video(VideoSource(1920, 1080, 3600.0, 86400, has_audio=False), 1 * MIB) is None
    assert plan.plan_video(VideoSource(1920, 1080, 1.0, 24, has_audio=False), 10 * 1024) is None


def test_retry_aims_lower_than_the_miss() -> None:
    assert plan.retry_shrink(1.0, produced=120, budget=100) < 100 / 120
    assert plan.retry_shrink(1.0, produced=101, budget=100) <= 0.9


def test_frame_delays_follow_browsers() -> None:
    assert plan.frame_delay_ms(None) == 100
    assert plan.frame_delay_ms(0) == 100
    assert plan.frame_delay_ms(40) == 40


def test_output_names_keep_the_stem_take_the_new_extension_and_are_unique() -> None:
    taken: set[str] = set()
    first = plan.output_name("ComfyUI_0001_.png", "WEBP", taken)
    taken.add(first)
    assert first == "ComfyUI_0001_.webp"
    assert plan.output_name("ComfyUI_0001_.gif", "WEBP", taken) == "ComfyUI_0001__2.webp"


def test_sizes_and_limits_read_naturally() -> None:
    assert plan.format_size(10 * MIB) == "10 MiB"
    assert plan.format_size(int(9.5 * MIB)) == "9.5 MiB"
    assert plan.limit_phrase(10 * MIB, 10 * MIB) == "Discord's 10 MiB upload limit"
    assert "share" in plan.limit_phrase(3 * MIB, 10 * MIB)


def test_mime_type_from_magic_then_extension() -> None:
    assert plan.mime_type("a.bin", b"\x89PNG\r\n\x1a\n") == "image/png"
    assert plan.mime_type("a.webm", b"\x1a\x45\xdf\xa3") == "video/webm"
    assert plan.mime_type("a.xyz", b"") == "application/octet-stream"
