"""The emulator's permission routes, as Discord serves them (its docs: Resources → User → Get Current User Guilds,
Resources → Channel → Get Channel and the Overwrite Object, Topics → Permissions), checked raw and against the
real nextcord client's own permission computation — an oracle independent of ours and of the emulator's."""

from __future__ import annotations

from typing import Any

import aiohttp
import nextcord

from discomfy.bot import permissions as ours
from tests.peers.discord import DiscordEmulator, NextcordRunner, Overwrite, Permission


async def get(session: aiohttp.ClientSession, emu: DiscordEmulator, path: str, token: str) -> tuple[int, Any]:
    async with session.get(emu.api_base + path, headers={"Authorization": f"Bot {token}"}) as response:
        return response.status, await response.json()


async def test_current_user_guilds_lists_the_guild_with_the_bots_base_permissions(
    discord_emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    status, guilds = await get(session, emu, "/users/@me/guilds", emu.bot_token)
    assert status == 200
    [guild] = guilds
    assert guild["id"] == str(emu.guild.id) and guild["name"] == emu.guild.name and guild["owner"] is False
    assert int(guild["permissions"]) == emu.guild.permissions_for(emu.bot_user.id)


async def test_a_wrong_token_gets_discords_401_body(
    discord_emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    for path in ("/users/@me", "/users/@me/guilds", f"/channels/{discord_emulator.channels['general'].id}"):
        assert await get(session, discord_emulator, path, "wrong") == (401, {"message": "401: Unauthorized", "code": 0})


async def test_a_channel_serves_its_overwrites_and_refuses_a_bot_that_cannot_view_it(
    discord_emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    emu.set_overwrites("general", Overwrite.role(emu.roles["discomfy"], allow=Permission.ATTACH_FILES))
    status, channel = await get(session, emu, f"/channels/{emu.channels['general'].id}", emu.bot_token)
    assert status == 200
    expected = {"id": str(emu.roles["discomfy"].id), "type": 0, "allow": str(int(Permission.ATTACH_FILES)), "deny": "0"}
    assert channel["permission_overwrites"] == [expected]
    emu.set_overwrites("renders", Overwrite.member(emu.bot_user, deny=Permission.VIEW_CHANNEL))
    status, body = await get(session, emu, f"/channels/{emu.channels['renders'].id}", emu.bot_token)
    assert (status, body) == (403, {"message": "Missing Access", "code": 50001})


async def test_roles_and_member_changes_are_served(
    discord_emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    painter = emu.add_role("Painter", Permission.ATTACH_FILES)
    emu.set_member_roles(emu.bot_user, [painter])
    emu.set_role_permissions("@everyone", Permission.VIEW_CHANNEL)
    _, roles = await get(session, emu, f"/guilds/{emu.guild.id}/roles", emu.bot_token)
    assert {r["name"]: int(r["permissions"]) for r in roles}["Painter"] == Permission.ATTACH_FILES
    assert {r["name"]: int(r["permissions"]) for r in roles}["@everyone"] == Permission.VIEW_CHANNEL
    _, member = await get(session, emu, f"/guilds/{emu.guild.id}/members/{emu.bot_user.id}", emu.bot_token)
    assert member["roles"] == [str(painter.id)]


async def test_nextcord_computes_the_same_channel_permissions_as_discomfy(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    bot_role = emu.roles["discomfy"]
    emu.set_role_permissions("@everyone", Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.EMBED_LINKS)
    emu.set_overwrites(
        "renders",
        Overwrite.role(emu.guild.id, deny=Permission.ATTACH_FILES | Permission.EMBED_LINKS),
        Overwrite.role(bot_role, allow=Permission.ATTACH_FILES),
        Overwrite.member(emu.bot_user, deny=Permission.READ_MESSAGE_HISTORY),
    )
    emu.set_overwrites(
        "general",
        Overwrite.role(emu.guild.id, deny=Permission.VIEW_CHANNEL),
        Overwrite.member(emu.bot_user, allow=Permission.VIEW_CHANNEL),
    )
    intents = nextcord.Intents.none()
    intents.guilds = True
    client = await run_nextcord(nextcord.Client(intents=intents))  # the world above arrives in GUILD_CREATE
    guild = client.get_guild(emu.guild.id)
    assert guild is not None
    role_permissions = {role.id: role.permissions.value for role in guild.roles}
    member_roles = [role.id for role in guild.me.roles if role.id != guild.id]
    base = ours.base_permissions(
        guild_id=guild.id,
        owner_id=emu.guild.owner_id,
        user_id=emu.bot_user.id,
        role_permissions=role_permissions,
        member_roles=member_roles,
    )
    for name in ("general", "renders"):
        channel = guild.get_channel(emu.channels[name].id)
        assert isinstance(channel, nextcord.TextChannel)
        raw = [
            {"id": t.id, "type": 0 if isinstance(t, nextcord.Role) else 1, "allow": a.value, "deny": d.value}
            for t, o in channel.overwrites.items()
            for a, d in [o.pair()]
        ]
        mine = ours.channel_permissions(
            base, ours.parse_overwrites(raw), guild_id=guild.id, user_id=emu.bot_user.id, member_roles=member_roles
        )
        theirs = channel.permissions_for(guild.me).value
        wanted = int(ours.REQUIRED_BITS)
        assert mine & wanted == theirs & wanted, name
        assert mine == emu.guild.channel_permissions_for(emu.bot_user.id, emu.channels[name]), name
