from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.studio import E2E_DISCORD_TIME_SCALE, Studio, studio_settings
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every end-to-end test runs on a tenth of Discord's rate-limit time unless it says otherwise: the bot reads
    its limits from the emulator's headers, so it paces itself by the scaled windows as it would by Discord's."""
    for item in items:
        if "tests/e2e/" in str(item.path).replace("\\", "/") and item.get_closest_marker("discord_time_scale") is None:
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
    s = Studio(discord_emulator, comfy, run_nextcord, studio_settings(discord_emulator, comfy, tmp_path / "data"))
    yield s
    await s.stop()
