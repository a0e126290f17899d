"""Bad input to /generate: a clear ephemeral message naming the problem, and nothing queued anywhere.

"Nothing queued" is checked on both sides: no job row in our store and no ``POST /prompt`` at ComfyUI. The
attachment cases use ``tests/e2e/workflows/img2img`` (a test-only workflow with an image option) next to the
shipped workflows.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.studio import WORKFLOWS, Studio
from tests.peers.discord.interactions import InteractionRecord, ResponseType
from tests.peers.discord.messages import StoredMessage

pytestmark = pytest.mark.timeout(60)

TEST_WORKFLOWS = Path(__file__).resolve().parent / "workflows"


@pytest.fixture
async def bad_input_studio(studio: Studio, tmp_path: Path) -> Studio:
    workflows = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, workflows)
    for file in TEST_WORKFLOWS.iterdir():
        shutil.copy(file, workflows / file.name)
    studio.settings = replace(studio.settings, workflows_dir=workflows)
    await studio.start()
    return studio


def text_of(message: StoredMessage) -> str:
    parts = [message.content or ""]
    for embed in message.embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
    return "\n".join(parts)


async def told(studio: Studio, interaction: InteractionRecord) -> str:
    """The one ephemeral message the user got (a first response, or a follow-up after a defer)."""

    def ephemeral() -> list[StoredMessage]:
        emu = studio.discord
        messages = [emu.original_message(interaction), *emu.followups(interaction)]
        return [m for m in messages if m is not None and m.ephemeral and not m.deleted]

    found = await studio.until(ephemeral, what="an ephemeral answer")
    assert len(found) == 1, [text_of(m) for m in found]
    return text_of(found[0])


async def assert_nothing_queued(studio: Studio) -> None:
    for user in studio.discord.users.values():
        assert await studio.stack.store.by_owner(user.id, active_only=False) == []
    assert [r for r in studio.comfy.requests if r.method == "POST" and r.path.endswith("/prompt")] == []
    assert not [m for m in studio.discord.messages("general") if not m.ephemeral and not m.deleted]


async def generate(studio: Studio, options: dict[str, Any], **attachments: tuple[str, bytes]) -> InteractionRecord:
    interaction = await studio.discord.send_slash_command(
        "carol", "general", "generate", options, attachments=attachments or None
    )
    await studio.discord.wait_for_response(interaction)
    return interaction


def png(width: int = 64, height: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


async def test_steps_beyond_every_workflow_are_refused_by_discord_itself(bad_input_studio: Studio) -> None:
    # /generate is registered with the union of the image workflows' bounds (1–60 steps here), so Discord's
    # client does not even send 500; the emulator refuses it as Discord would.
    with pytest.raises(ValueError, match="outside"):
        await generate(bad_input_studio, {"prompt": "a cat", "steps": 500})
    await assert_nothing_queued(bad_input_studio)


async def test_steps_out_of_the_chosen_workflows_range_names_the_option_and_its_range(
    bad_input_studio: Studio,
) -> None:
    upload = bad_input_studio.discord.add_upload("cat.png", png())
    options = {"prompt": "a cat", "workflow": "img2img", "steps": 45, "image": upload}
    interaction = await generate(bad_input_studio, options)

    text = await told(bad_input_studio, interaction)

    assert interaction.response_type is ResponseType.CHANNEL_MESSAGE_WITH_SOURCE
    assert "steps" in text and "1" in text and "30" in text and "45" in text
    await assert_nothing_queued(bad_input_studio)


async def test_a_non_image_attachment_is_refused_by_name(bad_input_studio: Studio) -> None:
    upload = bad_input_studio.discord.add_upload("notes.txt", b"remember the milk\n")
    interaction = await generate(bad_input_studio, {"prompt": "a cat", "workflow": "img2img", "image": upload})

    text = await told(bad_input_studio, interaction)

    assert interaction.response_type is ResponseType.CHANNEL_MESSAGE_WITH_SOURCE
    assert "notes.txt" in text and "picture" in text
    await assert_nothing_queued(bad_input_studio)


async def test_a_prompt_over_the_length_limit_says_how_long_it_may_be(bad_input_studio: Studio) -> None:
    limit = bad_input_studio.settings.limits.max_prompt_length
    interaction = await generate(bad_input_studio, {"prompt": "a very long prompt " * 100})

    text = await told(bad_input_studio, interaction)

    assert str(limit) in text and "prompt" in text.lower()
    await assert_nothing_queued(bad_input_studio)


async def test_an_unknown_workflow_is_refused_with_the_ones_there_are(bad_input_studio: Studio) -> None:
    interaction = await generate(bad_input_studio, {"prompt": "a cat", "workflow": "txt2imgg"})

    text = await told(bad_input_studio, interaction)

    assert "txt2imgg" in text and "txt2img" in text.replace("txt2imgg", "")
    await assert_nothing_queued(bad_input_studio)


async def test_a_corrupt_png_is_refused_after_the_defer_and_the_thinking_message_removed(
    bad_input_studio: Studio,
) -> None:
    broken = png()[:40] + b"\x00" * 200  # a PNG signature and header, then garbage
    upload = bad_input_studio.discord.add_upload("cat.png", broken, "image/png")
    interaction = await generate(bad_input_studio, {"prompt": "a cat", "workflow": "img2img", "image": upload})

    text = await told(bad_input_studio, interaction)

    assert interaction.response_type is ResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert "could not be read as a picture" in text
    thinking = bad_input_studio.discord.original_message(interaction)
    assert thinking is not None and thinking.deleted
    await assert_nothing_queued(bad_input_studio)


async def test_a_good_picture_goes_through_the_test_workflow(bad_input_studio: Studio) -> None:
    """The control case: the same path with a real PNG makes a job (so the refusals above are the input's)."""
    upload = bad_input_studio.discord.add_upload("cat.png", png(), "image/png")
    interaction = await generate(bad_input_studio, {"prompt": "a cat", "workflow": "img2img", "image": upload})

    message = await bad_input_studio.result(interaction)

    assert message.attachments[0].filename.startswith("img2img_")


@pytest.mark.parametrize("typed", ["@everyone **not a job**", "0123456789abcdef0123456789abcdef"])
async def test_show_of_an_unknown_job_says_so_and_repeats_only_an_id_of_our_own_shape(
    bad_input_studio: Studio, typed: str
) -> None:
    interaction = await bad_input_studio.discord.send_slash_command("carol", "general", "show", {"job_id": typed})
    await bad_input_studio.discord.wait_for_response(interaction)

    text = await told(bad_input_studio, interaction)
    assert "can't find" in text
    if typed.startswith("@"):
        assert "everyone" not in text and "not a job" not in text
    else:
        assert typed in text
