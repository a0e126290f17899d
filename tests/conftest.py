"""Shared test setup: the two loopback test peers are pytest plugins of their own; a few common fixtures."""

import sys

# Some machines (these among them) set PYTHONDONTWRITEBYTECODE: then every xdist worker compiles every module and
# rewrites every test module's asserts again on every run, about 4 s of CPU each. Keep them in __pycache__.
sys.dont_write_bytecode = False

import subprocess  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from pathlib import Path  # noqa: E402

import aiohttp  # noqa: E402
import pytest  # noqa: E402

from discomfy.config import DEFAULT_MODELS  # noqa: E402
from discomfy.workflows import Registry, load_workflows  # noqa: E402
from tests.support import E2E_DISCORD_TIME_SCALE, WORKFLOWS  # noqa: E402

pytest_plugins = [
    "tests.peers.discord.fixtures",
    "tests.peers.comfyui.fixtures",
]


#: Folders whose tests run the whole bot: Discord's rate-limit time is scaled there unless a test says otherwise.
WHOLE_BOT_FOLDERS = ("tests/e2e/", "tests/security/")


def pytest_configure(config: pytest.Config) -> None:
    """On a fresh checkout, before xdist starts its workers: one collection fills __pycache__ (compiled modules,
    rewritten test modules), so the workers load them instead of each compiling everything at once."""
    workers = getattr(config.option, "numprocesses", None)
    tests = Path(__file__).parent
    if hasattr(config, "workerinput") or not workers or any(tests.glob("__pycache__/*-pytest-*.pyc")):
        return
    subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", "-o", "addopts=", str(tests)],
        cwd=tests.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        timeout=300,
    )


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
