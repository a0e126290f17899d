"""The emulator's gateway and interaction payloads, seen by a raw client; and what its drivers refuse."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.peers.discord import DiscordEmulator
from tests.peers.discord.raw_client import RawBot, RawGateway
from tests.peers.discord.snowflake import snowflake_unix_time

EVERYTHING = {
    "name": "everything",
    "description": "All option types",
    "options": [
        {"type": 3, "name": "text", "description": "d", "required": True, "choices": [{"name": "A", "value": "a"}]},
        {"type": 4, "name": "count", "description": "d", "min_value": 1, "max_value": 4},
        {"type": 10, "name": "ratio", "description": "d"},
        {"type": 5, "name": "flag", "description": "d"},
        {"type": 6, "name": "who", "description": "d"},
        {"type": 7, "name": "where", "description": "d"},
        {"type": 8, "name": "role", "description": "d"},
        {"type": 11, "name": "image", "description": "d"},
        {"type": 3, "name": "model", "description": "d", "autocomplete": True},
    ],
}
ADMIN = {
    "name": "admin",
    "description": "Admin",
    "options": [
        {
            "type": 2,
            "name": "queue",
            "description": "Queue",
            "options": [
                {
                    "type": 1,
                    "name": "clear",
                    "description": "Clear",
                    "options": [{"type": 6, "name": "user", "description": "d"}],
                }
            ],
        }
    ],
}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def bot(discord_emulator: DiscordEmulator, session: aiohttp.ClientSession) -> AsyncIterator[RawBot]:
    emu = discord_emulator
    bot = RawBot(emu, session)
    await bot.connect()
    path = f"/applications/{emu.application_id}/guilds/{emu.guild.id}/commands"
    assert (await bot.call("PUT", path, json_body=[EVERYTHING, ADMIN])).status == 200
    yield bot
    assert bot.gateway is not None
    await bot.gateway.close()


async def test_zlib_stream_gateway_sends_ready_then_the_full_guild(
    discord_emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    gateway = await RawGateway.connect(session, emu.gateway_url, compress=True)

    ready = await gateway.identify(emu.bot_token)
    guild_create = await gateway.dispatch("GUILD_CREATE")
    await gateway.close()

    assert isinstance(gateway.ws, aiohttp.ClientWebSocketResponse)
    data = ready["d"]
    assert data["application"]["id"] == str(emu.application_id) and data["session_id"]
    assert data["resume_gateway_url"].startswith("ws://127.0.0.1:") and data["user"]["bot"] is True
    assert (ready["s"], guild_create["s"]) == (1, 2)
    guild = guild_create["d"]
    assert [c["name"] for c in guild["channels"]] == ["general", "renders"]
    assert [r["name"] for r in guild["roles"]] == ["@everyone", "Moderator", "discomfy"]
    assert {m["user"]["username"] for m in guild["members"]} == {"alice", "bob", "carol", "discomfy"}


async def test_uncompressed_gateway_sends_text_frames_and_acks_heartbeats(
    discord_emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    gateway = await RawGateway.connect(session, discord_emulator.gateway_url, compress=False)
    hello = await gateway.receive()

    await gateway.send(1, None)
    ack = await gateway.receive()
    await gateway.close()

    assert hello == {"op": 10, "d": hello["d"], "s": None, "t": None}
    assert hello["d"]["heartbeat_interval"] == 41250
    assert ack == {"op": 11, "d": None, "s": None, "t": None}


async def test_identify_with_a_wrong_token_is_closed_with_4004(
    discord_emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    gateway = await RawGateway.connect(session, discord_emulator.gateway_url)

    with pytest.raises(ConnectionError):
        await gateway.identify("not-the-token")

    assert gateway.ws.close_code == 4004
    await gateway.close()


async def test_resume_replays_the_dispatches_missed_since_seq(
    discord_emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    first = await RawGateway.connect(session, emu.gateway_url)
    ready = await first.identify(emu.bot_token)
    await first.dispatch("GUILD_CREATE")
    await first.close()
    await emu.wait_for(lambda: not emu.gateway.connected)
    missed = [await emu.dispatch("CUSTOM_EVENT", {"n": n}) for n in (1, 2)]

    second = await RawGateway.connect(session, ready["d"]["resume_gateway_url"])
    await second.receive()  # HELLO
    await second.send(6, {"token": emu.bot_token, "session_id": ready["d"]["session_id"], "seq": 2})
    frames = [await second.receive() for _ in range(3)]
    await second.close()

    assert [(f["t"], f["s"]) for f in frames] == [("CUSTOM_EVENT", 3), ("CUSTOM_EVENT", 4), ("RESUMED", 5)]
    assert missed == [3, 4]


async def test_resume_of_an_unknown_session_is_an_invalid_session(
    discord_emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    gateway = await RawGateway.connect(session, emu.gateway_url)
    await gateway.receive()

    await gateway.send(6, {"token": emu.bot_token, "session_id": "nope", "seq": 3})
    answer = await gateway.receive()
    await gateway.close()

    assert answer == {"op": 9, "d": False, "s": None, "t": None}


async def test_slash_command_payload_has_discords_fields(bot: RawBot) -> None:
    emu = bot.emulator
    upload = emu.add_upload("in.png", b"png")
    options = {
        "text": "a",
        "count": 2,
        "ratio": 0.5,
        "flag": False,
        "who": emu.users["carol"],
        "where": emu.channels["renders"],
        "role": emu.roles["Moderator"],
        "image": upload,
    }

    interaction = await emu.send_slash_command("alice", "general", "everything", options)
    assert bot.gateway is not None
    frame = await bot.gateway.dispatch("INTERACTION_CREATE")

    payload = frame["d"]
    assert payload == interaction.payload
    assert abs(snowflake_unix_time(int(payload["id"])) - time.time()) < 5
    assert payload["token"] == interaction.token and payload["type"] == 2 and payload["version"] == 1
    assert payload["attachment_size_limit"] == 10 * 1024 * 1024
    assert (payload["locale"], payload["guild_locale"]) == ("en-US", "en-US")
    assert payload["member"]["user"]["username"] == "alice"
    assert int(payload["member"]["permissions"]) & (1 << 13)  # Manage Messages, from the Moderator role
    assert int(payload["app_permissions"]) & (1 << 15)  # Attach Files
    data = payload["data"]
    assert [(o["name"], o["type"], o["value"]) for o in data["options"]] == [
        ("text", 3, "a"),
        ("count", 4, 2),
        ("ratio", 10, 0.5),
        ("flag", 5, False),
        ("who", 6, str(emu.users["carol"].id)),
        ("where", 7, str(emu.channels["renders"].id)),
        ("role", 8, str(emu.roles["Moderator"].id)),
        ("image", 11, str(upload.id)),
    ]
    resolved = data["resolved"]
    assert set(resolved) == {"users", "members", "channels", "roles", "attachments"}
    assert resolved["attachments"][str(upload.id)]["url"] == upload.url


async def test_subcommand_options_are_nested(bot: RawBot) -> None:
    emu = bot.emulator

    interaction = await emu.send_slash_command("alice", "general", "admin queue clear", {"user": emu.users["bob"]})

    (group,) = interaction.data["options"]
    (sub,) = group["options"]
    assert (group["name"], group["type"], sub["name"], sub["type"]) == ("queue", 2, "clear", 1)
    assert sub["options"] == [{"name": "user", "type": 6, "value": str(emu.users["bob"].id)}]


async def test_autocomplete_marks_the_focused_option(bot: RawBot) -> None:
    interaction = await bot.emulator.autocomplete("bob", "general", "everything", {"model": "sd"}, focused="model")

    assert interaction.payload["type"] == 4
    assert interaction.data["options"] == [{"name": "model", "type": 3, "value": "sd", "focused": True}]


async def test_attachment_size_limit_follows_the_config(bot: RawBot) -> None:
    bot.emulator.config.attachment_size_limit = 25 * 1024 * 1024

    interaction = await bot.emulator.send_slash_command("bob", "general", "everything", {"text": "a"})

    assert interaction.payload["attachment_size_limit"] == 25 * 1024 * 1024


@pytest.mark.parametrize(
    "options",
    [{"count": 2}, {"text": "b"}, {"text": "a", "count": 9}, {"text": "a", "nope": 1}, {"text": "a", "flag": "yes"}],
    ids=["missing-required", "not-a-choice", "over-max", "unknown-option", "wrong-type"],
)
async def test_driver_refuses_options_discords_client_would_not_send(bot: RawBot, options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        await bot.emulator.send_slash_command("alice", "general", "everything", options)


async def test_driver_refuses_a_click_on_a_button_the_message_lacks(bot: RawBot) -> None:
    emu = bot.emulator
    button = {"type": 2, "style": 1, "label": "Go", "custom_id": "go"}
    created = await bot.call(
        "POST",
        f"/channels/{emu.channels['general'].id}/messages",
        json_body={"content": "x", "components": [{"type": 1, "components": [button]}]},
    )
    message = emu.message(int(created.body["id"]))

    with pytest.raises(ValueError, match="no such component 'stop'"):
        await emu.click_button("bob", message, "stop")


async def test_component_interaction_carries_the_message_it_is_on(bot: RawBot) -> None:
    emu = bot.emulator
    select = {"type": 3, "custom_id": "pick", "options": [{"label": "A", "value": "a"}, {"label": "B", "value": "b"}]}
    created = await bot.call(
        "POST",
        f"/channels/{emu.channels['renders'].id}/messages",
        json_body={"content": "choose", "components": [{"type": 1, "components": [select]}]},
    )

    interaction = await emu.select("carol", int(created.body["id"]), "pick", ["b"])

    assert interaction.data == {"custom_id": "pick", "component_type": 3, "values": ["b"]}
    assert interaction.payload["message"]["id"] == created.body["id"]
    assert interaction.payload["channel_id"] == str(emu.channels["renders"].id)


async def test_guild_messages_intent_gets_message_create(
    discord_emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    bot = RawBot(emu, session)
    bot.gateway = await RawGateway.connect(session, emu.gateway_url)
    await bot.gateway.identify(emu.bot_token, intents=(1 << 0) | (1 << 9))

    created = await bot.call("POST", f"/channels/{emu.channels['general'].id}/messages", json_body={"content": "hi"})
    event = await bot.gateway.dispatch("MESSAGE_CREATE")
    await bot.gateway.close()

    assert event["d"]["id"] == created.body["id"] and event["d"]["content"] == "hi"
