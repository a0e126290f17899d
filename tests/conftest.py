"""Shared test setup: the two loopback test peers are pytest plugins of their own; a few common fixtures."""

from collections.abc import AsyncIterator

import aiohttp
import pytest

from discomfy.config import DEFAULT_MODELS
from discomfy.workflows import Registry, load_workflows
from tests.support import E2E_DISCORD_TIME_SCALE, WORKFLOWS

pytest_plugins = [
    "tests.peers.discord.fixtures",
    "tests.peers.comfyui.fixtures",
]


#: Folders whose tests run the whole bot: Discord's rate-limit time is scaled there unless a test says otherwise.
WHOLE_BOT_FOLDERS = ("tests/e2e/", "tests/security/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every whole-bot test runs on a tenth of Discord's rate-limit time unless it says otherwise: the bot reads
    its limits from the emulator's headers, so it paces itself by the scaled windows as it would by Discord's."""
    for item in items:
        path = str(item.path).replace("\\", "/")
        if any(f in path for f in WHOLE_BOT_FOLDERS) and item.get_closest_marker("discord_time_scale") is None:
            item.add_marker(pytest.mark.discord_time_scale(E2E_DISCORD_TIME_SCALE))


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The shipped workflows with the default model names."""
    return load_workflows(WORKFLOWS, DEFAULT_MODELS)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
