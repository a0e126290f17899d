"""Run the doctor (``python run.py --check``, as a real process) against the two test emulators and print what it
says: the output shown in the README for a healthy setup.

    python scripts/doctor_demo.py
    python scripts/doctor_demo.py --comfyui http://127.0.0.1:8188 --checkpoint tiny_sd15_random.safetensors

With ``--comfyui`` the doctor checks that (real) ComfyUI server instead of the emulator (see
``../shared/comfyui-real/README.md``); ``--checkpoint`` sets ``[models] checkpoint`` for it.

The Discord emulator has one server with the channels ``general`` and ``renders`` (both listed in
``permissions.allowed_channels``), the ComfyUI emulator the SD 1.5, SVD and RealESRGAN models (not Wan 2.2 or
LTX-Video: their lines are warnings, and /animate falls back to SVD).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.peers.comfyui import ComfyEmulator  # noqa: E402
from tests.peers.discord import DiscordEmulator  # noqa: E402


async def main(comfyui: str | None, checkpoint: str | None) -> int:
    async with DiscordEmulator() as discord, ComfyEmulator() as comfy:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "discomfy.toml"
            channels = ", ".join(str(c.id) for c in discord.channels.values())
            models = f'\n[models]\ncheckpoint = "{checkpoint}"\n' if checkpoint else ""
            config.write_text(f"[permissions]\nallowed_channels = [{channels}]\n{models}", encoding="utf-8")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DISCOMFY_", "COMFYUI_"))}
            env.update(
                DISCORD_TOKEN=discord.bot_token,
                DISCORD_API_BASE=discord.api_base,
                DISCORD_GUILD_IDS=str(discord.guild.id),
                COMFYUI_URL=comfyui or comfy.url,
                DISCOMFY_CONFIG=str(config),
                DISCOMFY_DATA_DIR="data",  # the doctor writes nothing there
                DISCOMFY_WORKFLOWS_DIR=str(REPO / "workflows"),
            )
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(REPO / "run.py"),
                "--check",
                cwd=tmp,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await process.communicate()
    print("$ python run.py --check")
    print(out.decode().rstrip())
    print(f"(exit status {process.returncode})")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", help="a ComfyUI server to check instead of the emulator")
    parser.add_argument("--checkpoint", help="[models] checkpoint for that server")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.comfyui, args.checkpoint)))
