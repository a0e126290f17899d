"""By-hand check (not a test): the whole bot — real nextcord against the Discord emulator — in front of a real
ComfyUI server, e.g. the CPU one of ``../shared/comfyui-real/README.md`` with its tiny random SD1.5 checkpoint.

    python scripts/check_real_bot.py [--url http://127.0.0.1:8188] [--checkpoint tiny_sd15_random.safetensors]

Runs ``/generate`` (live progress with steps and a preview, then the PNG with buttons), then Upscale from the
result through its modal (a reply to the result; on a server without the upscale model the ``upscale_simple``
fallback is used, with a broken model file the message says so plainly). Prints what the message went through
and one line per check; exits 1 if a check failed. Run from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from discomfy.app import App  # noqa: E402
from discomfy.bot.custom_ids import ComponentAction, encode  # noqa: E402
from discomfy.config import DEFAULT_MODELS, ComfySettings, DiscordSettings, Settings, StorageSettings  # noqa: E402
from tests.peers.discord import DiscordEmulator, NextcordRunner  # noqa: E402
from tests.peers.discord.messages import StoredMessage  # noqa: E402


async def until[T](condition: Callable[[], T | None], timeout: float = 120.0) -> T | None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        await asyncio.sleep(0.1)
    return None


def title(message: StoredMessage) -> str:
    return str(message.embeds[0].get("title", "")) if message.embeds else ""


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8188")
    parser.add_argument("--checkpoint", default="tiny_sd15_random.safetensors")
    args = parser.parse_args()
    failures = 0

    def check(name: str, ok: bool, detail: str = "") -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")

    async with DiscordEmulator() as emu, NextcordRunner(emu) as run:
        settings = Settings(
            discord=DiscordSettings(token=emu.bot_token, api_base=emu.api_base, guild_ids=(emu.guild.id,)),
            comfyui=ComfySettings(servers=(args.url,), request_timeout=30.0, max_jobs_per_server=1),
            storage=StorageSettings(data_dir=Path(tempfile.mkdtemp(prefix="discomfy-check-"))),
            models={**DEFAULT_MODELS, "checkpoint": args.checkpoint},
            workflows_dir=REPO / "workflows",
        )
        await run(App(settings).bot, timeout=60)
        started = time.monotonic()
        options = {"prompt": "a lighthouse at dusk", "steps": 8, "width": 256, "height": 256}
        interaction = await emu.send_slash_command("bob", "general", "generate", options)

        def result() -> StoredMessage | None:
            message = emu.original_message(interaction)
            return message if message and "Done" in title(message) and message.attachments else None

        message = await until(result)
        check("/generate delivered a PNG", message is not None, f"in {time.monotonic() - started:.1f} s")
        if message is None:
            return 1
        for snapshot in message.history:
            line = snapshot.embeds[0].get("description", "") if snapshot.embeds else snapshot.content
            print("   ", title(message) if snapshot is message.history[-1] else "", line.replace("\n", " / ")[:140])
        descriptions = " ".join(str(s.embeds) for s in message.history)
        check("sampler steps were shown", "step " in descriptions)
        check("a preview was shown", "attachment://preview.jpg" in descriptions)
        check("the result has buttons", any(row["components"] for row in message.components))

        job_id = str(message.embeds[0]["footer"]["text"]).split()[-1]
        custom_id = encode(ComponentAction.UPSCALE, job_id, 0)
        press = await emu.click_button("carol", message, custom_id)
        await emu.wait_for_response(press)
        submit = await emu.submit_modal("carol", press, custom_id, {"scale": "2"})
        await emu.wait_for_response(submit)

        def reply() -> StoredMessage | None:
            replies = [m for m in emu.messages("general") if m.message_reference and not m.ephemeral]
            done = [m for m in replies if title(m).startswith(("✅", "❌"))]
            return done[-1] if done else None

        upscaled = await until(reply)
        ended = title(upscaled) if upscaled else "nothing"
        detail = upscaled.embeds[0].get("description", "")[:160].replace("\n", " / ") if upscaled else ""
        check("Upscale ended in a reply to the result", upscaled is not None, f"{ended}: {detail}")
        check("no 429 from the emulator", not [r for r in emu.requests if r.status == 429])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
