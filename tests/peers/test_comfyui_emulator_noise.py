"""The emulator's ``noisy_pictures`` knob: VAEDecode draws seeded noise, so its PNGs are as big as their pixels."""

from __future__ import annotations

from typing import Any

import pytest

from tests.peers.comfyui import ComfyEmulator
from tests.peers.comfyui.replay import Client

pytestmark = pytest.mark.timeout(30)


def txt2img(size: int, seed: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": seed,
                "steps": 1,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "noise"}},
    }


async def saved_png(c: Client, size: int, seed: int) -> bytes:
    status, reply = await c.queue(txt2img(size, seed))
    assert status == 200, reply
    await c.wait_done(reply["prompt_id"])
    _, history = await c.http("GET", f"/history/{reply['prompt_id']}")
    image = history[reply["prompt_id"]]["outputs"]["7"]["images"][0]
    status, data = await c.http("GET", "/view", params=image)
    assert status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n"
    return bytes(data)


async def test_noisy_pictures_make_pngs_as_big_as_their_pixels_and_stay_seeded(
    comfyui_emulator: ComfyEmulator,
) -> None:
    emu = comfyui_emulator
    async with Client(emu.url) as c:
        await c.connect()
        gradient = await saved_png(c, 576, 1)
        emu.config.noisy_pictures = True
        # Seed 3 between the two seed-2 runs: the emulator's per-node cache would otherwise reuse the picture.
        noisy, other_seed, again = await saved_png(c, 576, 2), await saved_png(c, 576, 3), await saved_png(c, 576, 2)
    assert len(gradient) < 100_000
    assert 3 * 576 * 576 <= len(noisy) < 1.01 * 3 * 576 * 576
    assert noisy == again and noisy != other_seed
