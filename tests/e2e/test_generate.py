"""/generate end to end: deferred at once, a live progress message, the result with its buttons."""

from __future__ import annotations

import pytest

from tests.e2e.studio import Studio
from tests.peers.discord.interactions import ResponseType

pytestmark = pytest.mark.timeout(60)


def percents(message) -> list[int]:  # type: ignore[no-untyped-def]
    import re

    values = []
    for snapshot in message.history:
        for embed in snapshot.embeds:
            found = re.search(r"\*\*(\d+)%\*\*", embed.get("description", ""))
            if found:
                values.append(int(found.group(1)))
    return values


async def test_generate_shows_live_progress_then_the_png_with_buttons(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.05
    await studio.start()
    emu = studio.discord
    interaction = await emu.send_slash_command(
        "alice", "general", "generate", {"prompt": "a fox in the snow", "steps": 20, "width": 256, "height": 256}
    )
    response = await emu.wait_for_response(interaction)
    assert response.type is ResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert interaction.refusals == []
    message = await studio.result(interaction)
    seen = percents(message)
    assert len(seen) >= 3, seen
    assert seen == sorted(seen)
    assert message.attachments[0].filename.endswith(".png")
    assert message.attachments[0].data.startswith(b"\x89PNG")
    labels = [c["label"] for row in message.components for c in row["components"]]
    assert {"Upscale", "Animate", "Reroll", "Info", "Delete"} <= set(labels)
    assert studio.responses_429() == []
    # The live preview: a small JPEG attached to a progress edit and shown in its embed.
    assert any("attachment://preview.jpg" in str(snapshot.embeds) for snapshot in message.history)
    previews = [r for r in emu.requests if r.files and any(f.filename == "preview.jpg" for f in r.files)]
    assert previews and all(f.data[:2] == b"\xff\xd8" and len(f.data) < 200_000 for r in previews for f in r.files)


async def test_a_result_over_the_guilds_upload_limit_is_compressed_to_fit_and_says_so(studio: Studio) -> None:
    emu = studio.discord
    emu.config.upload_limit = 300_000  # a guild whose interactions say: 300 kB per message
    studio.comfy.config.noisy_pictures = True  # a ~1 MB PNG
    await studio.start()
    interaction = await emu.send_slash_command(
        "bob", "general", "generate", {"prompt": "static", "steps": 2, "width": 576, "height": 576}
    )
    message = await studio.result(interaction)
    assert sum(a.size for a in message.attachments) <= 300_000
    assert not message.attachments[0].filename.endswith(".png")  # re-encoded
    assert "fit" in str(message.embeds)  # the note says why
    assert [r for r in emu.requests if r.status == 413] == []


async def test_generate_is_registered_with_the_bounds_and_defaults_of_the_image_workflows(studio: Studio) -> None:
    await studio.start()
    registered = next(c for c in studio.discord.commands(guild=studio.discord.guild.id) if c["name"] == "generate")
    options = {o["name"]: o for o in registered["options"]}
    assert (options["steps"]["min_value"], options["steps"]["max_value"]) == (1, 60)  # txt2img.toml
    assert (options["width"]["min_value"], options["width"]["max_value"]) == (256, 1024)
    assert options["steps"]["description"] == "Sampling steps (20 by default)"
