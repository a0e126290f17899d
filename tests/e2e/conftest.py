from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.studio import Studio, studio_settings
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner


@pytest.fixture
async def studio(
    discord_emulator: DiscordEmulator, comfy: ComfyEmulator, run_nextcord: NextcordRunner, tmp_path: Path
) -> AsyncIterator[Studio]:
    s = Studio(discord_emulator, comfy, run_nextcord, studio_settings(discord_emulator, comfy, tmp_path / "data"))
    yield s
    await s.stop()
