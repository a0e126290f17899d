"""/help and /status through the real nextcord client and the Discord emulator."""

from pathlib import Path

from discomfy.app import App
from discomfy.config import ComfySettings, DiscordSettings, Settings, StorageSettings
from tests.peers.discord import DiscordEmulator, NextcordRunner
from tests.peers.discord.interactions import ResponseType


def settings_for(emu: DiscordEmulator, tmp_path: Path, servers: tuple[str, ...]) -> Settings:
    return Settings(
        discord=DiscordSettings(token=emu.bot_token, api_base=emu.api_base, guild_ids=(emu.guild.id,)),
        comfyui=ComfySettings(servers=servers, request_timeout=2.0),
        storage=StorageSettings(data_dir=tmp_path / "data"),
    )


async def test_help_answers_ephemerally_with_commands_and_limits(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, tmp_path: Path
) -> None:
    emu = discord_emulator
    await run_nextcord(App(settings_for(emu, tmp_path, ("http://127.0.0.1:9",))).bot)
    interaction = await emu.send_slash_command("bob", "general", "help")
    response = await emu.wait_for_response(interaction)
    assert response.type is ResponseType.CHANNEL_MESSAGE_WITH_SOURCE
    message = emu.original_message(interaction)
    assert message is not None and message.ephemeral
    text = str(message.embeds)
    assert "/generate" in text and "Your limits" in text


async def test_status_answers_at_once_from_the_pool_and_reports_an_unreachable_server_as_down(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, tmp_path: Path
) -> None:
    emu = discord_emulator
    await run_nextcord(App(settings_for(emu, tmp_path, ("http://127.0.0.1:9",))).bot)
    interaction = await emu.send_slash_command("bob", "general", "status")
    response = await emu.wait_for_response(interaction)
    # The pool already knows each server's health: nothing is probed, so no defer is needed.
    assert response.type is ResponseType.CHANNEL_MESSAGE_WITH_SOURCE
    message = await emu.wait_for(lambda: (m := emu.original_message(interaction)) and m.embeds and m)
    assert message.ephemeral
    assert "**0/1** ComfyUI servers up" in message.embeds[0]["description"]
    assert "not reachable" in message.embeds[0]["fields"][0]["value"]
    assert "127.0.0.1:9" not in str(message.embeds)
