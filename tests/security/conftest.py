"""The real bot end to end for hostile clients: the ``studio`` of ``tests/e2e`` (nextcord against the Discord
emulator, the ComfyUI emulator behind), with roomy limits so that a refusal is the rule under test, not the rate
limit, and Discord's rate-limit time scaled as in ``tests/e2e``."""

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
    settings = studio_settings(
        discord_emulator, comfy, tmp_path / "data", commands_per_minute=200, max_jobs_per_user=10
    )
    s = Studio(discord_emulator, comfy, run_nextcord, settings)
    yield s
    await s.stop()
