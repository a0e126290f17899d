"""The real bot end to end for hostile clients: the ``studio`` of ``tests/e2e`` (nextcord against the Discord
emulator, the ComfyUI emulator behind), with roomy limits so that a refusal is the rule under test, not the rate
limit, and Discord's rate-limit time scaled as in ``tests/e2e``."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.studio import E2E_DISCORD_TIME_SCALE, Studio, studio_settings
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path).replace("\\", "/")
        if "tests/security/" in path and item.get_closest_marker("discord_time_scale") is None:
            item.add_marker(pytest.mark.discord_time_scale(E2E_DISCORD_TIME_SCALE))


@pytest.fixture
async def comfy() -> AsyncIterator[ComfyEmulator]:
    emu = ComfyEmulator(step_duration=0.01)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()
    assert not emu.errors, f"the ComfyUI emulator raised: {emu.errors!r}"


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
