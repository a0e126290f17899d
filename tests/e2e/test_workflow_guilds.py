"""/workflow across Discord servers: an upload belongs to the server it was added in, and nowhere else exists.

The real nextcord client against the Discord emulator, the ComfyUI emulator behind. ``dana`` has Manage Server in
the default guild (A). The second guild (B, ``other_guild``: a channel ``lobby``, every human a member) is where
``carol`` gets Manage Server: a real admin, but of B. Interactions from B are delivered as Discord would, with
B's member and permissions (``deliver``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.jobs.presets import PresetStore
from tests.e2e.studio import Studio
from tests.e2e.test_buttons import delivered, job_id_of, job_of
from tests.e2e.test_workflow_add import add_admin, answer, control, scaled_export, text_of, upload
from tests.peers.discord import DiscordEmulator
from tests.peers.discord.interactions import (
    InteractionRecord,
    InteractionType,
    Place,
    command_data,
    deliver,
    forge_command,
    other_guild,
)
from tests.peers.discord.models import EVERYONE_PERMISSIONS, Member, Permission, Role

pytestmark = pytest.mark.timeout(60)


def guild_b_with_admin(emu: DiscordEmulator, name: str = "carol") -> Place:
    """Guild B, where ``name`` holds a role with Manage Server."""
    place = other_guild(emu)
    assert place.guild is not None
    role = Role(emu.state.ids.next(), "B admin", int(EVERYONE_PERMISSIONS | Permission.MANAGE_GUILD), 1)
    place.guild.roles.append(role)
    user = emu.users[name]
    members = place.guild.members
    index = next(i for i, m in enumerate(members) if m.user.id == user.id)
    members[index] = Member(user, (*members[index].role_ids, role.id), members[index].joined_at)
    return place


async def in_place(
    studio: Studio, user: str, name: str, options: dict[str, Any], place: Place, focused: str | None = None
) -> InteractionRecord:
    """``/name`` (``"workflow remove"``) sent from ``place``, typed as Discord's client would."""
    interaction = await forge_command(studio.discord, user, name, options, place, focused)
    await studio.discord.wait_for_response(interaction)
    return interaction


async def said(studio: Studio, interaction: InteractionRecord) -> str:
    message = await answer(studio, interaction)
    assert message.ephemeral, message
    parts = [text_of(message)]
    for embed in message.embeds:
        parts += [f"{f.get('name', '')} {f.get('value', '')}" for f in embed.get("fields", [])]
    return "\n".join(parts)


async def add_in_a(studio: Studio, name: str = "x") -> Path:
    """``dana`` adds ``name`` in guild A and confirms; its folder."""
    emu = studio.discord
    summary = await answer(studio, await upload(studio, "dana", name, scaled_export()))
    await emu.click_button("dana", summary, control(summary, ComponentAction.WF_CONFIRM))
    await studio.until(lambda: f"Added `{name}`" in (emu.message(summary.id).content or ""), 20.0, "added")
    return studio.settings.storage.uploaded_workflows_dir / str(emu.guild.id)


async def test_an_upload_of_guild_a_does_not_exist_in_guild_b(studio: Studio) -> None:
    emu = studio.discord
    add_admin(emu)
    b = guild_b_with_admin(emu)
    await studio.start()
    folder = await add_in_a(studio)
    assert (folder / "x.json").exists() and (folder / "x.toml").exists()

    # /generate in B: not offered, and refused as unknown when typed anyway.
    typed = await in_place(studio, "bob", "generate", {"prompt": "p", "workflow": "x"}, b, focused="workflow")
    offered = [c["value"] for c in typed.autocomplete_choices or []]
    assert "x" not in offered
    every = await in_place(studio, "bob", "generate", {"prompt": "p", "workflow": ""}, b, focused="workflow")
    assert "txt2img" in [c["value"] for c in every.autocomplete_choices or []]
    assert "x" not in [c["value"] for c in every.autocomplete_choices or []]
    refusal = await said(studio, await in_place(studio, "bob", "generate", {"prompt": "p", "workflow": "x"}, b))
    assert "There is no image workflow called 'x'" in refusal and "txt2img" in refusal
    prompts = [r for r in studio.comfy.requests if r.method == "POST" and r.route.endswith("/prompt")]
    assert prompts == []

    # /workflow list and info in B do not know it; A's list does.
    listed_b = await said(studio, await in_place(studio, "bob", "workflow list", {}, b))
    assert "**txt2img**" in listed_b and "**x**" not in listed_b
    info_b = await said(studio, await in_place(studio, "bob", "workflow info", {"name": "x"}, b))
    assert "There is no such workflow `x`" in info_b
    listed_a = await said(studio, await emu.send_slash_command("bob", "general", "workflow list"))
    assert "**x** (image · added from Discord)" in listed_a

    # B's Manage-Server member can neither see it to remove, nor remove it, nor take its name.
    choices = await in_place(studio, "carol", "workflow remove", {"name": ""}, b, focused="name")
    assert choices.autocomplete_choices == []
    removed = await said(studio, await in_place(studio, "carol", "workflow remove", {"name": "x"}, b))
    assert "There is no such workflow `x`" in removed
    assert (folder / "x.json").exists() and (folder / "x.toml").exists()
    assert "x" in studio.stack.service.registry.workflows
    options = emu._options({"name": "x"}, {"file": ("workflow_api.json", b"{}")})
    data = command_data(emu._command("workflow"), ["add"], options, guild=emu.guild, user=emu.users["carol"])
    taken = await said(studio, await deliver(emu, InteractionType.APPLICATION_COMMAND, data, "carol", b))
    assert "The name `x` is taken" in taken


async def test_a_result_made_with_an_upload_rerolls_in_its_own_guild(studio: Studio) -> None:
    emu = studio.discord
    add_admin(emu)
    await studio.start()
    await add_in_a(studio)
    options = {"prompt": "a lighthouse", "workflow": "x", "steps": 2, "width": 320}
    source = await delivered(studio, await emu.send_slash_command("bob", "general", "generate", options))
    press = await emu.click_button("carol", source, encode(ComponentAction.REROLL, job_id_of(source)))
    rerolled = await delivered(studio, press)
    old, new = await job_of(studio, source), await job_of(studio, rerolled)
    assert new.id != old.id and new.workflow == old.workflow == "x"


async def test_a_preset_naming_another_guilds_upload_is_not_found(studio: Studio) -> None:
    emu = studio.discord
    add_admin(emu)
    b = guild_b_with_admin(emu)
    await studio.start()
    await add_in_a(studio)
    assert b.guild is not None
    presets = PresetStore(studio.stack.store)
    await presets.save(b.guild.id, emu.users["bob"].id, "copied", "x", {"prompt": "p"}, most=10)
    text = await said(studio, await in_place(studio, "bob", "preset use", {"name": "copied"}, b))
    assert "uses the workflow 'x', which is not installed any more" in text
    prompts = [r for r in studio.comfy.requests if r.method == "POST" and r.route.endswith("/prompt")]
    assert prompts == []


async def test_a_draft_press_is_refused_once_the_uploader_is_no_longer_an_admin(studio: Studio) -> None:
    emu = studio.discord
    add_admin(emu)
    await studio.start()
    summary = await answer(studio, await upload(studio, "dana", "mine", scaled_export()))
    dana = emu.users["dana"]
    members = emu.guild.members
    index = next(i for i, m in enumerate(members) if m.user.id == dana.id)
    members[index] = Member(dana, (), members[index].joined_at)  # the admin role taken away

    for action in (ComponentAction.WF_ADJUST, ComponentAction.WF_CONFIRM):
        press = await emu.click_button("dana", summary, control(summary, action))
        assert "Only members with Manage Server can add workflows" in text_of(await answer(studio, press))
    assert "mine" not in studio.stack.service.registry.workflows
    assert not (studio.settings.storage.uploaded_workflows_dir / str(emu.guild.id) / "mine.json").exists()


async def test_two_workflow_lists_read_each_servers_object_info_once(studio: Studio) -> None:
    emu = studio.discord
    await studio.start()

    def object_info_gets() -> int:
        return len([r for r in studio.comfy.requests if r.method == "GET" and r.route == "/object_info"])

    before = object_info_gets()
    first = await said(studio, await emu.send_slash_command("bob", "general", "workflow list"))
    second = await said(studio, await emu.send_slash_command("bob", "general", "workflow list"))
    assert first == second and "**txt2img**" in first
    assert object_info_gets() == before + 1

    add_admin(emu)
    reloaded = await said(studio, await emu.send_slash_command("dana", "general", "workflow reload"))
    assert "Workflows reloaded" in reloaded
    after_reload = object_info_gets()  # the reload reads a server's /object_info itself, to check the files
    await said(studio, await emu.send_slash_command("bob", "general", "workflow list"))
    assert object_info_gets() == after_reload + 1  # a reload forgets what /workflow kept
