"""Presets end to end: ``/preset save|use|list|share|unshare|delete`` and "Save preset" on a result's Info.

The real nextcord client against the Discord emulator, the ComfyUI emulator behind. The workflows folder is a copy
in ``tmp_path`` holding the shipped workflows and ``sketch`` (a copy of txt2img that is not the default), so a
test can change or remove a workflow and reload (what SIGHUP does) while presets refer to it. In the emulator
``alice`` is a Moderator (Manage Messages, not Manage Server); ``bob`` and ``carol`` are plain members; ``dana``
is added with a role that has Manage Server.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.config import PermissionSettings
from discomfy.jobs.presets import Preset, PresetStore
from discomfy.jobs.state import Job
from tests.e2e.studio import Studio, studio_settings
from tests.e2e.test_buttons import answer, delivered, job_id_of, job_of, modal_from, result_of
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner
from tests.peers.discord.interactions import (
    InteractionRecord,
    Place,
    dm_place,
    forge_command,
    forge_modal,
    other_guild,
)
from tests.peers.discord.messages import StoredMessage
from tests.peers.discord.models import EVERYONE_PERMISSIONS, Permission, Role
from tests.support import WORKFLOWS

pytestmark = pytest.mark.timeout(60)

SMALL = {"steps": 2, "width": 256, "height": 256}


@pytest.fixture
async def studio(
    discord_emulator: DiscordEmulator, comfy: ComfyEmulator, run_nextcord: NextcordRunner, tmp_path: Path
) -> AsyncIterator[Studio]:
    folder = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, folder)
    shutil.copy(folder / "txt2img.json", folder / "sketch.json")
    manifest = (folder / "txt2img.toml").read_text(encoding="utf-8").replace("default = true\n", "")
    (folder / "sketch.toml").write_text(manifest, encoding="utf-8")
    settings = studio_settings(
        discord_emulator, comfy, tmp_path / "data", commands_per_minute=200, max_jobs_per_user=10
    )
    s = Studio(discord_emulator, comfy, run_nextcord, replace(settings, workflows_dir=folder))
    yield s
    await s.stop()


# --- helpers -----------------------------------------------------------------------------------------------


async def command(studio: Studio, user: str, name: str, options: dict[str, Any] | None = None) -> InteractionRecord:
    interaction = await studio.discord.send_slash_command(user, "general", name, options or {})
    await studio.discord.wait_for_response(interaction)
    return interaction


async def forged(
    studio: Studio, user: str, name: str, options: dict[str, Any], place: Place, focused: str | None = None
) -> InteractionRecord:
    """``/name`` (``"preset use"``) sent from ``place`` (another guild, a DM), typed as Discord's client would."""
    interaction = await forge_command(studio.discord, user, name, options, place, focused)
    await studio.discord.wait_for_response(interaction)
    return interaction


def text_of(message: StoredMessage) -> str:
    parts = [message.content]
    for embed in message.embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f.get('name', '')} {f.get('value', '')}" for f in embed.get("fields", [])]
    return "\n".join(parts)


async def said(studio: Studio, interaction: InteractionRecord) -> str:
    """The ephemeral answer's text (a refusal or a confirmation)."""
    message = await answer(studio, interaction)
    assert message.ephemeral, message
    return text_of(message)


async def presets_of(studio: Studio, user: str) -> list[Preset]:
    presets = PresetStore(studio.stack.store)  # the bot's own store: the same database, connection and lock
    mine, _ = await presets.visible(studio.discord.guild.id, studio.discord.users[user].id)
    return mine


def graph_of(studio: Studio, job: Job) -> dict[str, Any]:
    assert job.prompt_id is not None
    graph: dict[str, Any] = studio.comfy.queue.history[job.prompt_id]["prompt"][2]
    return graph


async def save_from_info(studio: Studio, user: str, result: StoredMessage, values: dict[str, str]) -> str:
    """``user`` presses Info on ``result``, then "Save preset" on that private answer, and submits the form."""
    info = await studio.discord.click_button(user, result, encode(ComponentAction.INFO, job_id_of(result)))
    private = await answer(studio, info)
    assert private.ephemeral and "Save preset" in [c.get("label") for c in private.buttons]
    assert private.embeds[0]["footer"]["text"] == f"job {job_id_of(result)}"  # the id /preset save takes
    custom_id = encode(ComponentAction.PRESET, job_id_of(result))
    form = await modal_from(studio, user, private, custom_id)
    submit = await studio.discord.submit_modal(user, form, custom_id, values)
    await studio.discord.wait_for_response(submit)
    return await said(studio, submit)


# --- save, share, use --------------------------------------------------------------------------------------


async def test_a_preset_saved_from_info_is_shared_and_used_by_another_member_with_a_new_prompt(
    studio: Studio,
) -> None:
    await studio.start()
    source = await result_of(studio, "bob", prompt="a fox in the snow", cfg=5.5, seed=1234, **SMALL)

    saved = await save_from_info(studio, "bob", source, {"name": "Snow Fox", "keep_seed": ""})
    assert "Saved the preset **Snow Fox**" in saved and "new seed each time" in saved
    (preset,) = await presets_of(studio, "bob")
    assert preset.params["prompt"] == "a fox in the snow" and preset.params["cfg"] == 5.5
    assert "seed" not in preset.params and not preset.shared

    # Not shared yet: carol neither sees it offered nor can use it.
    hidden = await studio.discord.autocomplete("carol", "general", "preset use", {"name": "snow"}, "name")
    await studio.discord.wait_for_response(hidden)
    assert hidden.autocomplete_choices == []
    refused = await command(studio, "carol", "preset use", {"name": "Snow Fox"})
    assert "no preset called `Snow Fox`" in await said(studio, refused)

    shared = await command(studio, "bob", "preset share", {"name": "snow fox"})  # names ignore case
    assert "is shared" in await said(studio, shared)
    offered = await studio.discord.autocomplete("carol", "general", "preset use", {"name": "snow"}, "name")
    await studio.discord.wait_for_response(offered)
    assert offered.autocomplete_choices == [{"name": "Snow Fox", "value": "Snow Fox"}]

    used = await command(studio, "carol", "preset use", {"name": "Snow Fox", "prompt": "a blue whale"})
    result = await delivered(studio, used)
    job = await job_of(studio, result)
    assert job.owner_id == studio.discord.users["carol"].id and job.workflow == "txt2img"
    assert job.params["prompt"] == "a blue whale" and job.params["cfg"] == 5.5 and job.params["steps"] == 2
    assert job.seed != 1234  # the seed was not kept: a new one was chosen
    graph = graph_of(studio, job)
    assert graph["2"]["inputs"]["text"] == "a blue whale" and graph["5"]["inputs"]["cfg"] == 5.5
    assert "a blue whale" in result.embeds[0]["description"]


async def test_preset_save_takes_the_latest_result_and_can_keep_the_seed(studio: Studio) -> None:
    await studio.start()
    await result_of(studio, "bob", prompt="first", **SMALL)
    latest = await result_of(studio, "bob", prompt="second", seed=777, **SMALL)

    saved = await command(studio, "bob", "preset save", {"name": "again", "keep_seed": True})
    assert "with its seed" in await said(studio, saved)
    (preset,) = await presets_of(studio, "bob")
    assert preset.params["prompt"] == "second" and preset.params["seed"] == 777
    assert preset.source_job == job_id_of(latest)

    used = await command(studio, "bob", "preset use", {"name": "again"})
    job = await job_of(studio, await delivered(studio, used))
    assert job.seed == 777 and job.params["prompt"] == "second"


async def test_preset_save_by_job_id_and_the_refusals_of_names_and_duplicates(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, "bob", prompt="a lighthouse", **SMALL)
    job_id = job_id_of(source)

    bad = await command(studio, "carol", "preset save", {"name": "**bold** @everyone", "job": job_id})
    assert "letters, digits, spaces" in (text := await said(studio, bad)) and "@everyone" not in text
    # Info shows anyone a result's settings, so anyone here may keep them as their own preset.
    first = await command(studio, "carol", "preset save", {"name": "lighthouse", "job": job_id})
    assert "Saved" in await said(studio, first)
    again = await command(studio, "carol", "preset save", {"name": "LightHouse", "job": job_id})
    assert "already have a preset called `LightHouse`" in await said(studio, again)
    missing = await command(studio, "carol", "preset save", {"name": "x", "job": "0" * 32})
    assert "can't find job" in await said(studio, missing)
    garbage = await command(studio, "carol", "preset save", {"name": "x", "job": "@everyone [x](https://e.example)"})
    assert "not a job id" in (text := await said(studio, garbage)) and "@everyone" not in text


async def test_preset_list_shows_mine_and_the_shared_ones_escaped(studio: Studio) -> None:
    await studio.start()
    await result_of(studio, "bob", prompt="[click](https://evil.example/x) @everyone", **SMALL)
    await command(studio, "bob", "preset save", {"name": "evil"})
    await command(studio, "bob", "preset share", {"name": "evil"})
    await result_of(studio, "carol", prompt="a calm lake", **SMALL)
    await command(studio, "carol", "preset save", {"name": "lake"})

    listed = await command(studio, "carol", "preset list")
    message = await answer(studio, listed)
    assert message.ephemeral
    fields = {f["name"]: f["value"] for f in message.embeds[0]["fields"]}
    assert "**lake**" in fields["Yours"] and "a calm lake" in fields["Yours"]
    shared = fields["Shared in this server"]
    assert "**evil**" in shared and f"by <@{studio.discord.users['bob'].id}>" in shared
    assert "evil.example" in shared and "\\[click\\]\\(" in shared and "@everyone" not in shared


# --- delete ------------------------------------------------------------------------------------------------


async def test_the_owner_deletes_a_preset_and_another_member_is_refused(studio: Studio) -> None:
    await studio.start()
    await result_of(studio, "bob", **SMALL)
    await command(studio, "bob", "preset save", {"name": "mine"})
    await command(studio, "bob", "preset share", {"name": "mine"})

    refused = await command(studio, "carol", "preset delete", {"name": "mine"})
    assert "only its owner or a member with Manage Server can delete it" in await said(studio, refused)
    # Manage Messages (a moderator) is not Manage Server.
    moderator = await command(studio, "alice", "preset delete", {"name": "mine"})
    assert "only its owner" in await said(studio, moderator)
    assert [p.name for p in await presets_of(studio, "bob")] == ["mine"]

    deleted = await command(studio, "bob", "preset delete", {"name": "mine"})
    assert "Deleted the preset **mine**" in await said(studio, deleted)
    assert await presets_of(studio, "bob") == []
    gone = await command(studio, "carol", "preset use", {"name": "mine"})
    assert "no preset called `mine`" in await said(studio, gone)


async def test_a_member_with_manage_server_deletes_a_shared_preset_but_not_a_private_one(studio: Studio) -> None:
    emu = studio.discord
    admin = Role(emu.state.ids.next(), "Admin", int(EVERYONE_PERMISSIONS | Permission.MANAGE_GUILD), 3)
    emu.guild.roles.append(admin)
    emu.add_member("dana", roles=[admin])
    await studio.start()
    await result_of(studio, "bob", **SMALL)
    await command(studio, "bob", "preset save", {"name": "private"})
    await command(studio, "bob", "preset save", {"name": "public"})
    await command(studio, "bob", "preset share", {"name": "public"})

    kept = await command(studio, "dana", "preset delete", {"name": "private"})
    assert "no preset called `private`" in await said(studio, kept)
    removed = await command(studio, "dana", "preset delete", {"name": "public"})
    assert f"(shared by <@{emu.users['bob'].id}>)" in await said(studio, removed)
    assert [p.name for p in await presets_of(studio, "bob")] == ["private"]


# --- guilds ------------------------------------------------------------------------------------------------


async def test_a_preset_of_one_guild_is_invisible_and_unusable_from_another_or_a_dm(studio: Studio) -> None:
    await studio.start()
    await result_of(studio, "bob", prompt="guild fox", **SMALL)
    await command(studio, "bob", "preset save", {"name": "fox"})
    await command(studio, "bob", "preset share", {"name": "fox"})
    prompts_before = len(studio.comfy.queue.history)
    elsewhere = other_guild(studio.discord)

    used = await forged(studio, "bob", "preset use", {"name": "fox"}, elsewhere)
    assert "no preset called `fox`" in await said(studio, used)
    listed = await forged(studio, "bob", "preset list", {}, elsewhere)
    assert "fox" not in (text := await said(studio, listed)) and "none" in text
    offered = await forged(studio, "bob", "preset use", {"name": "f"}, elsewhere, focused="name")
    assert offered.autocomplete_choices == []
    deleted = await forged(studio, "bob", "preset delete", {"name": "fox"}, elsewhere)
    assert "no preset called `fox`" in await said(studio, deleted)
    in_dm = await forged(studio, "bob", "preset use", {"name": "fox"}, dm_place(studio.discord, "bob"))
    assert "Presets belong to a server" in await said(studio, in_dm)

    assert len(studio.comfy.queue.history) == prompts_before and not studio.comfy.queue.pending
    assert [p.name for p in await presets_of(studio, "bob")] == ["fox"]


async def test_a_result_of_one_guild_cannot_become_a_preset_in_another(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, "bob", **SMALL)

    saved = await forged(
        studio, "carol", "preset save", {"name": "stolen", "job": job_id_of(source)}, other_guild(studio.discord)
    )

    assert "another server" in await said(studio, saved)
    assert await presets_of(studio, "carol") == []


@pytest.mark.parametrize("where", ["dm", "other guild"])
async def test_a_forged_save_preset_form_from_elsewhere_saves_nothing(studio: Studio, where: str) -> None:
    await studio.start()
    source = await result_of(studio, "bob", **SMALL)
    place = dm_place(studio.discord, "carol") if where == "dm" else other_guild(studio.discord)
    custom_id = encode(ComponentAction.PRESET, job_id_of(source))

    submit = await forge_modal(studio.discord, "carol", source, custom_id, {"name": "stolen"}, place)
    await studio.discord.wait_for_response(submit)

    assert "server" in await said(studio, submit)
    assert await presets_of(studio, "carol") == []


async def test_info_on_a_picture_made_from_a_picture_offers_no_save_preset(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, "bob", **SMALL)
    press = await studio.discord.click_button("bob", source, encode(ComponentAction.UPSCALE, job_id_of(source), 0))
    await studio.discord.wait_for_response(press)
    assert press.modal is not None
    submit = await studio.discord.submit_modal("bob", press, press.modal["custom_id"], {"scale": "2"})
    upscaled = await delivered(studio, submit)

    info = await studio.discord.click_button("bob", upscaled, encode(ComponentAction.INFO, job_id_of(upscaled)))
    private = await answer(studio, info)
    assert private.ephemeral and private.embeds and not private.buttons  # an upscale needs a picture each time


# --- the workflow changed or went away ---------------------------------------------------------------------


async def test_a_preset_whose_workflow_was_removed_says_so_plainly(studio: Studio) -> None:
    await studio.start()
    await result_of(studio, "bob", prompt="a sketch", workflow="sketch", **SMALL)
    await command(studio, "bob", "preset save", {"name": "sketchy"})
    folder = studio.settings.workflows_dir
    (folder / "sketch.json").unlink()
    (folder / "sketch.toml").unlink()
    assert studio.app is not None
    await studio.app.reload_workflows()
    prompts_before = len(studio.comfy.queue.history)

    used = await command(studio, "bob", "preset use", {"name": "sketchy"})

    text = await said(studio, used)
    assert "uses the workflow 'sketch', which is not installed any more" in text and "/workflow list" in text
    assert len(studio.comfy.queue.history) == prompts_before


async def test_stored_values_now_outside_the_manifest_bounds_are_refused_naming_the_preset(studio: Studio) -> None:
    await studio.start()
    await result_of(studio, "bob", workflow="sketch", **SMALL)
    await command(studio, "bob", "preset save", {"name": "quick"})
    manifest = studio.settings.workflows_dir / "sketch.toml"
    text = manifest.read_text(encoding="utf-8").replace("default = 20\nmin = 1\n", "default = 20\nmin = 10\n")
    manifest.write_text(text, encoding="utf-8")
    assert studio.app is not None
    await studio.app.reload_workflows()
    prompts_before = len(studio.comfy.queue.history)

    used = await command(studio, "bob", "preset use", {"name": "quick", "prompt": "a new prompt"})

    refusal = await said(studio, used)
    assert "The preset `quick` no longer fits the sketch workflow" in refusal and "steps" in refusal
    assert len(studio.comfy.queue.history) == prompts_before and not studio.comfy.queue.pending


# --- the gate ----------------------------------------------------------------------------------------------


async def test_the_allow_lists_apply_to_preset_commands_and_their_autocomplete(studio: Studio) -> None:
    renders = studio.discord.channels["renders"].id
    studio.settings = replace(studio.settings, permissions=PermissionSettings(allowed_channels=(renders,)))
    await studio.start()
    made = await studio.discord.send_slash_command("bob", "renders", "generate", {"prompt": "a fox", **SMALL})
    await delivered(studio, made)
    saved = await studio.discord.send_slash_command("bob", "renders", "preset save", {"name": "fox"})
    await studio.discord.wait_for_response(saved)
    assert "Saved" in await said(studio, saved)

    listed = await command(studio, "bob", "preset list")  # in #general, outside the allow-list
    assert "I don't take requests in this channel" in await said(studio, listed)
    offered = await studio.discord.autocomplete("bob", "general", "preset use", {"name": "f"}, "name")
    await studio.discord.wait_for_response(offered)
    assert offered.autocomplete_choices == []
    there = await studio.discord.autocomplete("bob", "renders", "preset use", {"name": "f"}, "name")
    await studio.discord.wait_for_response(there)
    assert there.autocomplete_choices == [{"name": "fox", "value": "fox"}]
