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
    studio.comfy.config.step_duration = 0.25
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
