"""/workflow end to end: an admin adds a workflow from Discord, adjusts a binding, confirms; users generate with it.

The real nextcord client against the Discord emulator, the ComfyUI emulator behind. ``dana`` holds a role with
Manage Server (the default workflow admin); ``alice`` (Moderator: Manage Messages) and ``bob`` do not. The
uploaded graph is ComfyUI's default SD1.5 export (``tests/workflows/community``) with an ImageScale before the
save: nodes the ComfyUI emulator runs.
"""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from discomfy.bot.custom_ids import ComponentAction
from discomfy.config import WorkflowUploadSettings
from tests.e2e.studio import Studio, studio_settings
from tests.peers.discord import DiscordEmulator
from tests.peers.discord.interactions import InteractionRecord, ResponseType
from tests.peers.discord.messages import StoredMessage
from tests.peers.discord.models import EVERYONE_PERMISSIONS, Permission, Role

pytestmark = pytest.mark.timeout(60)

COMMUNITY = Path(__file__).resolve().parents[1] / "workflows" / "community"


def add_admin(emu: DiscordEmulator, name: str = "dana") -> None:
    role = Role(emu.state.ids.next(), "Studio admin", int(EVERYONE_PERMISSIONS | Permission.MANAGE_GUILD), 1)
    emu.guild.roles.append(role)
    emu.add_member(name, [role])


def scaled_export() -> dict[str, Any]:
    """The SD1.5 export with an ImageScale (the final size) between the decoder and the save."""
    graph: dict[str, Any] = json.loads((COMMUNITY / "sd15_txt2img.json").read_text(encoding="utf-8"))
    graph["10"] = {
        "class_type": "ImageScale",
        "inputs": {"upscale_method": "lanczos", "width": 768, "height": 768, "crop": "disabled", "image": ["8", 0]},
        "_meta": {"title": "Final size"},
    }
    graph["9"]["inputs"]["images"] = ["10", 0]
    return graph


async def upload(
    studio: Studio, user: str, name: str, data: bytes | dict[str, Any], filename: str = "workflow_api.json"
) -> InteractionRecord:
    body = json.dumps(data).encode() if isinstance(data, dict) else data
    interaction = await studio.discord.send_slash_command(
        user, "general", "workflow add", {"name": name}, attachments={"file": (filename, body)}
    )
    await studio.discord.wait_for_response(interaction)
    return interaction


async def answer(studio: Studio, interaction: InteractionRecord) -> StoredMessage:
    def ready() -> StoredMessage | None:
        message = studio.discord.original_message(interaction)
        return message if message is not None and not message.loading else None

    return await studio.until(ready, 20.0, "an answer")


def text_of(message: StoredMessage) -> str:
    return (message.content or "") + " ".join(str(e.get("description", "")) for e in message.embeds)


def control(message: StoredMessage, action: ComponentAction) -> str:
    ids = [str(c.get("custom_id", "")) for c in message.all_components()]
    found = [i for i in ids if i.startswith(f"dc1:{action}:")]
    assert found, (action, message.all_components())
    return str(found[0])


def downloads(emu: DiscordEmulator) -> int:
    """GETs of an uploaded attachment from the emulator's CDN."""
    return len([r for r in emu.requests if r.method == "GET" and "attachments/" in r.path])


async def refused(studio: Studio, user: str, name: str, data: bytes | dict[str, Any]) -> str:
    message = await answer(studio, await upload(studio, user, name, data))
    assert message.ephemeral and not message.components, message
    return text_of(message)


async def test_an_admin_adds_adjusts_and_confirms_and_a_user_generates_with_it(studio: Studio) -> None:
    emu = studio.discord
    add_admin(emu)
    await studio.start()
    interaction = await upload(studio, "dana", "scaled", scaled_export())
    summary = await answer(studio, interaction)
    assert summary.ephemeral and "Add workflow `scaled`?" in str(summary.embeds)
    assert downloads(emu) == 1
    assert "**width** → node 5" in text_of(summary)  # detected on the empty latent

    # Adjust: width → node 10 (Final size) → its input "width".
    steps = [(ComponentAction.WF_PARAM, "width"), (ComponentAction.WF_NODE, "10"), (ComponentAction.WF_INPUT, "width")]
    press = await emu.click_button("dana", summary, control(summary, ComponentAction.WF_ADJUST))
    await emu.wait_for_response(press)
    assert press.response_type is ResponseType.UPDATE_MESSAGE, press.refusals
    for action, value in steps:
        current = emu.message(summary.id)
        pick = await emu.select("dana", current, control(current, action), [value])
        await emu.wait_for_response(pick)
        assert pick.response_type is ResponseType.UPDATE_MESSAGE, (pick.refusals, text_of(emu.message(summary.id)))
    adjusted = emu.message(summary.id)
    assert "**width** → node 10 Final size (ImageScale) · `width`" in text_of(adjusted)

    confirm = await emu.click_button("dana", adjusted, control(adjusted, ComponentAction.WF_CONFIRM))
    await emu.wait_for_response(confirm)
    done = await studio.until(lambda: "Added `scaled`" in (emu.message(summary.id).content or ""), 20.0, "added")
    assert done
    saved = studio.settings.storage.uploaded_workflows_dir / str(emu.guild.id)  # the server's own folder
    assert stat.S_IMODE((saved / "scaled.json").stat().st_mode) == 0o600
    assert 'input = "width"' in (saved / "scaled.toml").read_text()

    # At once in /generate's choices, and it runs with the adjusted binding.
    typed = await emu.autocomplete("bob", "general", "generate", {"prompt": "x", "workflow": "sca"}, "workflow")
    await emu.wait_for_response(typed)
    assert [c["value"] for c in typed.autocomplete_choices or []] == ["scaled"]
    job = await emu.send_slash_command(
        "bob", "general", "generate", {"prompt": "a lighthouse", "workflow": "scaled", "steps": 2, "width": 320}
    )
    await studio.result(job)
    prompts = [r.json["prompt"] for r in studio.comfy.requests if r.method == "POST" and r.route.endswith("/prompt")]
    assert prompts[-1]["10"]["inputs"]["width"] == 320
    assert prompts[-1]["5"]["inputs"]["width"] == 512  # the latent keeps the file's size
    assert prompts[-1]["6"]["inputs"]["text"] == "a lighthouse"


async def test_another_admin_cannot_confirm_someone_elses_upload(studio: Studio) -> None:
    add_admin(studio.discord, "dana")
    add_admin(studio.discord, "erin")
    await studio.start()
    summary = await answer(studio, await upload(studio, "dana", "mine", scaled_export()))
    press = await studio.discord.click_button("erin", summary, control(summary, ComponentAction.WF_CONFIRM))
    reply = await answer(studio, press)
    assert "Only the admin who uploaded" in text_of(reply)
    assert "mine" not in studio.stack.service.registry.workflows


async def test_a_non_admins_upload_is_refused(studio: Studio) -> None:
    await studio.start()
    text = await refused(studio, "alice", "mine", scaled_export())
    assert "Only members with Manage Server can add workflows" in text
    assert not studio.settings.storage.uploaded_workflows_dir.exists()


async def test_a_node_outside_the_allow_list_is_refused(studio: Studio) -> None:
    add_admin(studio.discord)
    await studio.start()
    graph = scaled_export()
    graph["11"] = {"class_type": "VHS_LoadVideoPath", "inputs": {"video": "clip.mp4"}}
    text = await refused(studio, "dana", "mine", graph)
    assert "`VHS_LoadVideoPath`" in text and "not a built-in node" in text and "extra_nodes" in text


async def test_a_ui_format_file_gets_how_to_export_the_api_format(studio: Studio) -> None:
    add_admin(studio.discord)
    await studio.start()
    ui = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler", "widgets_values": [1]}], "links": []}
    text = await refused(studio, "dana", "mine", ui)
    assert "UI format" in text and "Workflow → Export (API)" in text


async def test_a_10_mb_file_is_refused_before_it_is_downloaded(studio: Studio) -> None:
    add_admin(studio.discord)
    await studio.start()
    big = b"{" + b" " * (10 * 1024 * 1024) + b"}"
    text = await refused(studio, "dana", "big", big)
    assert "a workflow export may be at most 512 KiB" in text
    assert downloads(studio.discord) == 0


@pytest.mark.parametrize("name", ["../x", "Big Name", "a.json"])
async def test_a_name_that_is_not_plain_is_refused(studio: Studio, name: str) -> None:
    add_admin(studio.discord)
    await studio.start()
    text = await refused(studio, "dana", name, scaled_export())
    assert "1 to 32 lowercase letters" in text


async def test_list_info_remove_and_reload(studio: Studio) -> None:
    emu = studio.discord
    add_admin(emu)
    await studio.start()
    summary = await answer(studio, await upload(studio, "dana", "scaled", scaled_export()))
    await emu.click_button("dana", summary, control(summary, ComponentAction.WF_CONFIRM))
    await studio.until(lambda: "scaled" in studio.stack.service.registry.workflows, 20.0, "added")

    listed = text_of(await answer(studio, await emu.send_slash_command("bob", "general", "workflow list")))
    assert "**scaled** (image · added from Discord)" in listed and "**txt2img** (image)" in listed
    info = await answer(studio, await emu.send_slash_command("bob", "general", "workflow info", {"name": "scaled"}))
    fields = {f["name"]: f["value"] for f in info.embeds[0]["fields"]}
    assert fields["Models it needs"] == "`v1-5-pruned-emaonly.safetensors`"
    assert "**steps** → node 3 KSampler (KSampler) · `steps` (1–150, default 20)" in fields["Parameters"]
    assert fields["Runs on"] == studio.comfy.url

    async def remove(user: str, name: str) -> str:
        command = await emu.send_slash_command(user, "general", "workflow remove", {"name": name})
        return text_of(await answer(studio, command))

    assert "Only members with Manage Server" in await remove("bob", "scaled")
    assert "ships with the bot" in await remove("dana", "txt2img")
    assert "Removed `scaled`" in await remove("dana", "scaled")
    assert "scaled" not in studio.stack.service.registry.workflows
    assert not (studio.settings.storage.uploaded_workflows_dir / str(emu.guild.id) / "scaled.json").exists()

    reload = await answer(studio, await emu.send_slash_command("dana", "general", "workflow reload"))
    assert "Workflows reloaded: img2vid" in text_of(reload)


async def test_configured_admin_roles_replace_manage_server(
    discord_emulator: DiscordEmulator, comfy: Any, run_nextcord: Any, tmp_path: Path
) -> None:
    add_admin(discord_emulator, "dana")  # Manage Server, but not the configured role
    moderator = discord_emulator.roles["Moderator"].id
    settings = studio_settings(discord_emulator, comfy, tmp_path / "data")
    settings = replace(settings, workflow_uploads=WorkflowUploadSettings(admin_roles=(moderator,)))
    studio = Studio(discord_emulator, comfy, run_nextcord, settings)
    try:
        await studio.start()
        assert "workflow admin role" in await refused(studio, "dana", "mine", scaled_export())
        summary = await answer(studio, await upload(studio, "alice", "mine", scaled_export()))
        assert "Add workflow `mine`?" in str(summary.embeds)
    finally:
        await studio.stop()


async def test_an_upload_with_wider_bounds_widens_what_discord_lets_users_type_at_once(studio: Studio) -> None:
    """/generate is registered with the union of the image workflows' bounds (shipped: 1–60 steps). An upload
    allowing 150 must re-register it, or Discord's client keeps refusing 100 steps until a restart."""
    emu = studio.discord
    add_admin(emu)
    await studio.start()
    with pytest.raises(ValueError, match="outside"):
        await emu.send_slash_command("bob", "general", "generate", {"prompt": "x", "steps": 100})

    summary = await answer(studio, await upload(studio, "dana", "wide", scaled_export()))
    assert "**steps**" in text_of(summary)
    confirm = await emu.click_button("dana", summary, control(summary, ComponentAction.WF_CONFIRM))
    await emu.wait_for_response(confirm)
    await studio.until(lambda: "Added `wide`" in (emu.message(summary.id).content or ""), 20.0, "added")

    # The commands are registered again before the admin is told "Added": Discord now lets 61 steps through.
    job = await emu.send_slash_command(
        "bob", "general", "generate", {"prompt": "x", "workflow": "wide", "steps": 61, "width": 320}
    )
    await emu.wait_for_response(job)

    def posted() -> list[dict[str, Any]]:
        return [r.json["prompt"] for r in studio.comfy.requests if r.method == "POST" and r.route.endswith("/prompt")]

    prompts = await studio.until(posted, 20.0, "the job sent to ComfyUI")
    assert prompts[-1]["3"]["inputs"]["steps"] == 61


def reading_a_server_file() -> dict[str, Any]:
    """The SD1.5 export with a picture read from the server's input folder by name (someone else's upload), beside
    the LoadImage the user's picture goes to: ComfyUI would hand that file to whoever runs the workflow."""
    graph = scaled_export()
    graph["20"] = {"class_type": "LoadImage", "inputs": {"image": "user.png"}, "_meta": {"title": "Your picture"}}
    graph["21"] = {"class_type": "LoadImage", "inputs": {"image": "alice_private.png"}, "_meta": {"title": "Other"}}
    graph["22"] = {
        "class_type": "ImageScale",
        "inputs": {"upscale_method": "lanczos", "width": 64, "height": 64, "crop": "disabled", "image": ["21", 0]},
    }
    graph["23"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "leak", "images": ["22", 0]}}
    graph["24"] = {
        "class_type": "ImageScale",
        "inputs": {"upscale_method": "lanczos", "width": 64, "height": 64, "crop": "disabled", "image": ["20", 0]},
    }
    graph["25"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "mine", "images": ["24", 0]}}
    return graph


async def test_moving_the_picture_off_a_loadimage_with_adjust_is_refused_at_confirm(studio: Studio) -> None:
    """Detection gives every LoadImage a picture parameter (a file's own name never reaches ComfyUI); an Adjust
    that leaves one reading its file by name is refused at Confirm, nothing added."""
    emu = studio.discord
    add_admin(emu)
    await studio.start()
    summary = await answer(studio, await upload(studio, "dana", "leak", reading_a_server_file()))
    assert "**image** → node 20" in text_of(summary) and "**image_2** → node 21" in text_of(summary)

    # Both pictures on node 21: node 20 would read its file ("user.png") by name.
    steps = [(ComponentAction.WF_PARAM, "image"), (ComponentAction.WF_NODE, "21"), (ComponentAction.WF_INPUT, "image")]
    press = await emu.click_button("dana", summary, control(summary, ComponentAction.WF_ADJUST))
    await emu.wait_for_response(press)
    for action, value in steps:
        current = emu.message(summary.id)
        pick = await emu.select("dana", current, control(current, action), [value])
        await emu.wait_for_response(pick)
    adjusted = emu.message(summary.id)
    confirm = await emu.click_button("dana", adjusted, control(adjusted, ComponentAction.WF_CONFIRM))
    await emu.wait_for_response(confirm)
    said = text_of(await answer(studio, confirm)) + " ".join(text_of(m) for m in emu.followups(confirm))

    assert "reads a file already on the server" in said and "node 20 (LoadImage)" in said
    assert "leak" not in studio.stack.service.registry.workflows
    assert not (studio.settings.storage.uploaded_workflows_dir / str(emu.guild.id) / "leak.json").exists()
