"""Pytest plugin for the ComfyUI emulator (registered in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .server import ComfyEmulator


@pytest.fixture
async def comfyui_emulator() -> AsyncIterator[ComfyEmulator]:
    """A started emulator with default settings; stopped after the test, which fails if the emulator raised."""
    emu = ComfyEmulator()
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()
    if emu.errors:
        pytest.fail(f"the ComfyUI emulator raised: {emu.errors!r}")


@pytest.fixture
async def comfy() -> AsyncIterator[ComfyEmulator]:
    """An emulator with quick steps (10 ms), for the whole-bot tests (the ``studio`` fixtures)."""
    emu = ComfyEmulator(step_duration=0.01)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()
    assert not emu.errors, f"the ComfyUI emulator raised: {emu.errors!r}"
