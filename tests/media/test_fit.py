"""A message's files together: the total budget, refusals, unreadable files, and the event loop kept free."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from discomfy.media import fit_for_discord, images
from tests.media.makers import noise_image, png_bytes

MIB = 1024 * 1024


async def test_a_message_fits_its_total_squeezing_the_largest_first() -> None:
    tiny = png_bytes(noise_image(32, 32, seed=1))
    medium = png_bytes(noise_image(300, 300, seed=2))
    large = png_bytes(noise_image(600, 600, seed=3))
    total = len(tiny) + len(medium) + len(large) // 3
    files = [("large.png", large), ("tiny.png", tiny), ("medium.png", medium)]
    result = await fit_for_discord(files, per_file_limit=10 * MIB, total_limit=total)
    assert result.too_big == ()
    assert [u.original_filename for u in result.uploads] == ["large.png", "tiny.png", "medium.png"]
    assert sum(len(u.data) for u in result.uploads) <= total
    by_name = {u.original_filename: u for u in result.uploads}
    assert not by_name["tiny.png"].changed and by_name["tiny.png"].data == tiny
    assert by_name["large.png"].changed
    assert len(result.notes) == sum(u.changed for u in result.uploads)


async def test_without_a_total_each_file_only_meets_the_per_file_limit() -> None:
    files = [(f"f{i}.png", png_bytes(noise_image(100, 100, seed=i))) for i in range(3)]
    result = await fit_for_discord(files, per_file_limit=10 * MIB)
    assert [u.data for u in result.uploads] == [data for _, data in files]


async def test_nothing_fits_names_the_file_and_says_so_plainly() -> None:
    weights = os.urandom(300 * 1024)
    result = await fit_for_discord([("model.safetensors", weights)], per_file_limit=100 * 1024)
    assert result.uploads == () and result.too_big == ("model.safetensors",)
    (note,) = result.notes
    assert note.startswith("model.safetensors (300 KiB) could not be sent") and "100 KiB" in note


async def test_an_image_even_the_smallest_rendition_of_which_is_too_big_is_not_sent() -> None:
    data = png_bytes(noise_image(256, 256))
    result = await fit_for_discord([("noise.png", data), ("ok.txt", b"hello")], per_file_limit=300)
    assert result.too_big == ("noise.png",)
    assert [u.filename for u in result.uploads] == ["ok.txt"]
    assert "even compressed" in result.notes[0]


async def test_an_unreadable_image_too_large_is_reported_not_raised() -> None:
    garbage = b"\x89PNG\r\n\x1a\n" + os.urandom(50 * 1024)
    result = await fit_for_discord([("broken.png", garbage)], per_file_limit=10 * 1024)
    assert result.too_big == ("broken.png",)
    assert "could not be read" in result.notes[0]


async def test_an_unreadable_file_that_fits_is_sent_as_is() -> None:
    garbage = b"\0\0\0\x18ftypisom" + os.urandom(1000)
    result = await fit_for_discord([("broken.mp4", garbage)], per_file_limit=10 * 1024)
    assert result.uploads[0].data == garbage and not result.uploads[0].changed


async def test_duplicate_names_stay_unique_in_one_message() -> None:
    data = png_bytes(noise_image(16, 16))
    result = await fit_for_discord([("a.png", data), ("a.png", data)], per_file_limit=10 * MIB)
    assert [u.filename for u in result.uploads] == ["a.png", "a_2.png"]


async def test_the_work_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real = images.fit_still

    def spy(data: bytes, budget: int) -> images.Encoded | None:
        threads.append(threading.current_thread().name)
        return real(data, budget)

    monkeypatch.setattr(images, "fit_still", spy)
    data = png_bytes(noise_image(1500, 1500))
    longest = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    result = await fit_for_discord([("noise.png", data)], per_file_limit=len(data) // 3)
    elapsed = time.perf_counter() - started
    done.set()
    await task
    assert result.uploads[0].changed
    assert threads and all(name.startswith("discomfy-media") for name in threads)
    assert threading.current_thread().name not in threads
    # Reported, not asserted: shared machines are noisy. Run with -s to see it.
    print(f"\nfit took {elapsed * 1000:.0f} ms; the event loop's longest gap was {longest * 1000:.1f} ms")
