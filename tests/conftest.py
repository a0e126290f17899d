"""Shared test setup: the two loopback test peers are pytest plugins of their own; a few common fixtures."""

from collections.abc import AsyncIterator

import aiohttp
import pytest

from discomfy.config import DEFAULT_MODELS
from discomfy.workflows import Registry, load_workflows
from tests.support import WORKFLOWS

pytest_plugins = [
    "tests.peers.discord.fixtures",
    "tests.peers.comfyui.fixtures",
]


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The shipped workflows with the default model names."""
    return load_workflows(WORKFLOWS, DEFAULT_MODELS)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
