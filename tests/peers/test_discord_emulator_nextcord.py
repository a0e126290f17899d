"""The real nextcord client against the Discord emulator: login, commands, interactions, components, modals."""

from __future__ import annotations

import asyncio
import io
import os
from typing import Any

import aiohttp
import nextcord
import pytest

from tests.peers.discord import DiscordEmulator, NextcordRunner
from tests.peers.discord.interactions import ResponseType

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def make_client(emu: DiscordEmulator, *, members: bool = False) -> nextcord.Client:
    intents = nextcord.Intents.none()
    intents.guilds = True
    intents.members = members
    return nextcord.Client(intents=intents, default_guild_ids=[emu.guild.id])


def future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


class ResultView(nextcord.ui.View):
    """A persistent view like the bot's result buttons: custom ids only, no timeout."""

    def __init__(self, clicks: asyncio.Future[Any] | None = None) -> None:
        super().__init__(timeout=None)
        self.clicks = clicks

    @nextcord.ui.button(label="Upscale", custom_id="job:42:upscale")
    async def upscale(self, button: nextcord.ui.Button[Any], interaction: nextcord.Interaction) -> None:
        await interaction.response.send_message("upscaling", ephemeral=True)
        if self.clicks is not None and not self.clicks.done():
            self.clicks.set_result((interaction.user.name, button.custom_id))

    @nextcord.ui.button(label="Reroll", custom_id="job:42:reroll")
    async def reroll(self, button: nextcord.ui.Button[Any], interaction: nextcord.Interaction) -> None:
        await interaction.response.defer()


async def test_login_sees_guild_channels_and_members(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = await run_nextcord(make_client(emu, members=True))

    guild = client.get_guild(emu.guild.id)
    assert guild is not None
    assert sorted(channel.name for channel in guild.text_channels) == ["general", "renders"]
    await emu.wait_for(lambda: len(guild.members) == 4, description="members chunked")
    assert sorted(member.name for member in guild.members) == ["alice", "bob", "carol", "discomfy"]
    alice = guild.get_member(emu.users["alice"].id)
    assert alice is not None and alice.guild_permissions.manage_messages
    bob = guild.get_member(emu.users["bob"].id)
    assert bob is not None and not bob.guild_permissions.manage_messages
    assert client.user is not None and client.user.id == emu.bot_user.id
    assert client.application_id == emu.application_id


async def test_global_and_guild_commands_are_registered(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = make_client(emu)

    @client.slash_command(description="Make an image")
    async def generate(
        interaction: nextcord.Interaction,
        prompt: str,
        steps: int = nextcord.SlashOption(min_value=1, max_value=50, default=20),
        image: nextcord.Attachment | None = None,
    ) -> None: ...

    @client.slash_command(description="Bot status", force_global=True, guild_ids=[])
    async def status(interaction: nextcord.Interaction) -> None: ...

    await run_nextcord(client)

    assert [c["name"] for c in emu.commands()] == ["status"]
    (registered,) = emu.commands(emu.guild)
    assert registered["name"] == "generate" and registered["guild_id"] == str(emu.guild.id)
    assert [(o["name"], o["type"]) for o in registered["options"]] == [("prompt", 3), ("steps", 4), ("image", 11)]


async def test_slash_command_options_of_every_type_reach_the_callback(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = make_client(emu)
    received = future()

    @client.slash_command(description="Everything")
    async def everything(
        interaction: nextcord.Interaction,
        text: str,
        count: int,
        ratio: float,
        flag: bool,
        who: nextcord.Member,
        where: nextcord.TextChannel,
        role: nextcord.Role,
        image: nextcord.Attachment,
    ) -> None:
        await interaction.response.send_message("ok", ephemeral=True)
        received.set_result((text, count, ratio, flag, who, where, role, image, interaction))

    await run_nextcord(client)
    upload = emu.add_upload("cat.png", PNG_BYTES)
    options = {
        "text": "a cat",
        "count": 3,
        "ratio": 1.5,
        "flag": True,
        "who": emu.users["bob"],
        "where": emu.channels["renders"],
        "role": emu.roles["Moderator"],
        "image": upload,
    }
    await emu.send_slash_command("alice", "general", "everything", options)

    text, count, ratio, flag, who, where, role, image, interaction = await asyncio.wait_for(received, 5)
    assert (text, count, ratio, flag) == ("a cat", 3, 1.5, True)
    assert who.id == emu.users["bob"].id and where.id == emu.channels["renders"].id
    assert role.id == emu.roles["Moderator"].id
    assert (image.filename, image.size, image.content_type) == ("cat.png", len(PNG_BYTES), "image/png")
    assert interaction.user.id == emu.users["alice"].id and interaction.permissions.manage_messages
    assert interaction.app_permissions.attach_files and interaction.locale == "en-US"


async def test_added_member_runs_commands_as_themselves(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = make_client(emu)
    received = future()

    @client.slash_command(description="Who am I")
    async def whoami(interaction: nextcord.Interaction) -> None:
        await interaction.response.send_message("ok", ephemeral=True)
        received.set_result(interaction)

    await run_nextcord(client)
    dave = emu.add_member("dave", roles=[emu.roles["Moderator"]])
    await emu.send_slash_command("dave", "general", "whoami")

    interaction = await asyncio.wait_for(received, 5)
    assert interaction.user.id == dave.id and interaction.user.name == "dave"
    assert interaction.permissions.manage_messages


async def test_attachment_option_is_downloaded_by_the_client(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = make_client(emu)
    downloaded = future()

    @client.slash_command(description="Upscale an image")
    async def upscale(interaction: nextcord.Interaction, image: nextcord.Attachment) -> None:
        await interaction.response.defer()
        downloaded.set_result(await image.read())

    await run_nextcord(client)
    await emu.send_slash_command("bob", "general", "upscale", attachments={"image": ("in.png", PNG_BYTES)})

    assert await asyncio.wait_for(downloaded, 5) == PNG_BYTES
    assert emu.find_requests("GET", "/cdn/ephemeral-attachments/*/in.png")[0].status == 200


async def test_deferred_command_edits_original_with_file_and_buttons(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = make_client(emu)

    @client.slash_command(description="Make an image")
    async def generate(interaction: nextcord.Interaction, prompt: str) -> None:
        await interaction.response.defer()
        await asyncio.sleep(0.05)
        await interaction.edit_original_message(
            content=f"**{prompt}**", file=nextcord.File(io.BytesIO(PNG_BYTES), "result.png"), view=ResultView()
        )

    await run_nextcord(client)
    interaction = await emu.send_slash_command("alice", "general", "generate", {"prompt": "a cat"})
    await emu.wait_for(lambda: (m := emu.original_message(interaction)) is not None and m.edit_count == 1)

    assert interaction.response_type == ResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert interaction.response is not None and interaction.response.time - interaction.created < 3
    message = emu.original_message(interaction)
    assert message is not None and message.content == "**a cat**" and not message.loading
    assert message.history[0].flags & (1 << 7)  # it was "thinking…" first
    assert [b["custom_id"] for b in message.buttons] == ["job:42:upscale", "job:42:reroll"]
    (attachment,) = message.attachments
    assert (attachment.filename, attachment.size, attachment.content_type) == (
        "result.png",
        len(PNG_BYTES),
        "image/png",
    )
    async with aiohttp.ClientSession() as session, session.get(attachment.url) as response:
        assert response.status == 200
        assert await response.read() == PNG_BYTES
    assert emu.messages("general") == [message]


async def test_button_click_reaches_persistent_view(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = make_client(emu)
    clicks = future()
    client.add_view(ResultView(clicks))

    @client.slash_command(description="Make an image")
    async def generate(interaction: nextcord.Interaction) -> None:
        # The same view again, as the bot does (it replaces the persistent one in nextcord's store).
        await interaction.response.send_message("done", view=ResultView(clicks))

    await run_nextcord(client)
    command = await emu.send_slash_command("alice", "general", "generate")
    await emu.wait_for_response(command)
    result_message = emu.original_message(command)
    assert result_message is not None

    click = await emu.click_button("carol", result_message, "job:42:upscale")

    assert await asyncio.wait_for(clicks, 5) == ("carol", "job:42:upscale")
    await emu.wait_for_response(click)
    assert click.response_type == ResponseType.CHANNEL_MESSAGE_WITH_SOURCE
    reply = emu.original_message(click)
    assert reply is not None and reply.content == "upscaling" and reply.ephemeral


async def test_select_menu_choice_reaches_the_callback(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = make_client(emu)
    chosen = future()

    class SamplerView(nextcord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @nextcord.ui.select(
            custom_id="sampler",
            options=[nextcord.SelectOption(label=name, value=name) for name in ("euler", "dpmpp_2m", "ddim")],
        )
        async def sampler(self, select: nextcord.ui.StringSelect[Any], interaction: nextcord.Interaction) -> None:
            await interaction.response.edit_message(content=f"sampler: {select.values[0]}")
            chosen.set_result(list(select.values))

    @client.slash_command(description="Settings")
    async def settings(interaction: nextcord.Interaction) -> None:
        await interaction.response.send_message("pick a sampler", view=SamplerView())

    await run_nextcord(client)
    command = await emu.send_slash_command("bob", "general", "settings")
    await emu.wait_for_response(command)
    message = emu.original_message(command)
    assert message is not None

    choice = await emu.select("bob", message, "sampler", ["ddim"])

    assert await asyncio.wait_for(chosen, 5) == ["ddim"]
    await emu.wait_for_response(choice)
    assert choice.response_type == ResponseType.UPDATE_MESSAGE
    assert message.content == "sampler: ddim" and message.edit_count == 1


async def test_modal_opened_from_a_button_is_submitted_to_its_callback(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = make_client(emu)
    submitted = future()

    class PromptModal(nextcord.ui.Modal):
        def __init__(self) -> None:
            super().__init__("Edit prompt", custom_id="prompt-modal", timeout=None)
            self.prompt = nextcord.ui.TextInput("Prompt", custom_id="prompt", max_length=200)
            self.negative = nextcord.ui.TextInput("Negative", custom_id="negative", required=False)
            self.add_item(self.prompt)
            self.add_item(self.negative)

        async def callback(self, interaction: nextcord.Interaction) -> None:
            await interaction.response.send_message("queued", ephemeral=True)
            submitted.set_result((self.prompt.value, self.negative.value))

    class EditView(nextcord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @nextcord.ui.button(label="Edit", custom_id="job:7:edit")
        async def edit(self, button: nextcord.ui.Button[Any], interaction: nextcord.Interaction) -> None:
            await interaction.response.send_modal(PromptModal())

    client.add_view(EditView())

    @client.slash_command(description="Make an image")
    async def generate(interaction: nextcord.Interaction) -> None:
        await interaction.response.send_message("result", view=EditView())

    await run_nextcord(client)
    command = await emu.send_slash_command("alice", "general", "generate")
    await emu.wait_for_response(command)
    message = emu.original_message(command)
    assert message is not None
    click = await emu.click_button("alice", message, "job:7:edit")
    await emu.wait_for_response(click)
    assert click.modal is not None and click.modal["title"] == "Edit prompt"

    submit = await emu.submit_modal("alice", click, "prompt-modal", {"prompt": "a dog"})

    assert await asyncio.wait_for(submitted, 5) == ("a dog", "")
    assert submit.payload["message"]["id"] == str(message.id)


async def test_autocomplete_choices_are_recorded(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = make_client(emu)

    @client.slash_command(description="Make an image")
    async def generate(interaction: nextcord.Interaction, model: str) -> None: ...

    @generate.on_autocomplete("model")
    async def models(interaction: nextcord.Interaction, model: str) -> None:
        names = ["sd15-tiny", "sdxl-base", "flux-dev"]
        await interaction.response.send_autocomplete([n for n in names if n.startswith(model)])

    await run_nextcord(client)
    typing = await emu.autocomplete("bob", "general", "generate", {"model": "sd"}, focused="model")
    await emu.wait_for_response(typing)

    assert typing.autocomplete_choices == [
        {"name": "sd15-tiny", "value": "sd15-tiny"},
        {"name": "sdxl-base", "value": "sdxl-base"},
    ]


@pytest.mark.parametrize("ephemeral", [False, True])
async def test_first_followup_after_defer_fills_the_thinking_message(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, ephemeral: bool
) -> None:
    emu = discord_emulator
    client = make_client(emu)

    @client.slash_command(description="Status")
    async def status(interaction: nextcord.Interaction) -> None:
        await interaction.response.defer(ephemeral=ephemeral)
        await interaction.followup.send("all good")
        await interaction.followup.send("and more")

    await run_nextcord(client)
    interaction = await emu.send_slash_command("carol", "general", "status")
    await emu.wait_for(lambda: len(interaction.followup_ids) == 1)

    original = emu.original_message(interaction)
    assert original is not None and original.content == "all good" and original.ephemeral is ephemeral
    assert [m.content for m in emu.followups(interaction)] == ["and more"]


async def test_deferred_update_then_edit_changes_the_clicked_message(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = make_client(emu)
    edited = future()

    class RerollView(nextcord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @nextcord.ui.button(label="Reroll", custom_id="job:9:reroll")
        async def reroll(self, button: nextcord.ui.Button[Any], interaction: nextcord.Interaction) -> None:
            await interaction.response.defer()
            await interaction.edit_original_message(content="rerolling…", view=None)
            edited.set_result(None)

    client.add_view(RerollView())
    await run_nextcord(client)
    channel = client.get_channel(emu.channels["renders"].id)
    assert isinstance(channel, nextcord.TextChannel)
    sent = await channel.send("result", view=RerollView())

    click = await emu.click_button("bob", sent.id, "job:9:reroll")
    await asyncio.wait_for(edited, 5)

    assert click.response_type == ResponseType.DEFERRED_UPDATE_MESSAGE
    message = emu.message(sent.id)
    assert (message.content, message.components) == ("rerolling…", [])
    assert emu.original_message(click) is message


async def test_reply_keeps_its_message_reference(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = await run_nextcord(make_client(emu))
    channel = client.get_channel(emu.channels["general"].id)
    assert isinstance(channel, nextcord.TextChannel)
    first = await channel.send("original")

    reply = await first.reply("answer")

    stored = emu.message(reply.id)
    assert stored.type == 19 and stored.message_reference is not None
    assert stored.message_reference["message_id"] == str(first.id)
    assert reply.reference is not None and reply.reference.message_id == first.id


async def test_runner_closes_its_clients_and_restores_route_base(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    base = nextcord.http.Route.BASE
    client = await run_nextcord(make_client(discord_emulator))
    assert discord_emulator.api_base == nextcord.http.Route.BASE

    await run_nextcord.aclose()

    assert client.is_closed() and base == nextcord.http.Route.BASE
    nextcord_dir = os.path.dirname(nextcord.__file__)
    running = [t.get_coro() for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert [c for c in running if getattr(c, "cr_code", None) and c.cr_code.co_filename.startswith(nextcord_dir)] == []
    assert not discord_emulator.gateway.connected
