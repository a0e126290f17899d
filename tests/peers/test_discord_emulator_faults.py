"""nextcord against the emulator's limits and faults: 429s honoured, 5xx retried, Discord's error codes raised.

The 429 tests run twice: on a tenth of Discord's time (nextcord waiting exactly until ``X-RateLimit-Reset``),
and, marked ``slow``, on Discord's time with nextcord's default pacing (it waits at least a second for any
bucket). nextcord retries a 5xx after a fixed ``asyncio.sleep(1 + 2 * retry)``, which no header shortens.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import nextcord
import pytest

from tests.peers.discord import DiscordEmulator, NextcordRunner

#: Real seconds per Discord second, as test parameters: the fast run, and Discord's own time (slow).
CLOCKS = [
    pytest.param(0.1, marks=pytest.mark.discord_time_scale(0.1), id="scaled"),
    pytest.param(1.0, marks=pytest.mark.slow, id="discord-time"),
]


def make_client(emu: DiscordEmulator) -> nextcord.Client:
    intents = nextcord.Intents.none()
    intents.guilds = True
    return nextcord.Client(intents=intents, default_guild_ids=[emu.guild.id])


def future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


async def general_channel(emu: DiscordEmulator, run_nextcord: NextcordRunner) -> nextcord.TextChannel:
    client = await run_nextcord(make_client(emu))
    channel = client.get_channel(emu.channels["general"].id)
    assert isinstance(channel, nextcord.TextChannel)
    return channel


@pytest.mark.parametrize("time_scale", CLOCKS)
async def test_rate_limit_on_a_channel_edit_is_waited_out_then_retried(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, time_scale: float
) -> None:
    emu = discord_emulator
    assert emu.config.time_scale == time_scale
    channel = await general_channel(emu, run_nextcord)
    message = await channel.send("step 1")
    # Retry-After is given in Discord seconds: 2 of them are 0.2 real seconds on a tenth of Discord's time.
    rule = emu.faults.rate_limit("/channels/*/messages/*", method="PATCH", retry_after=0.2 / time_scale)

    await message.edit(content="step 2")

    limited, retried = emu.find_requests("PATCH", "/channels/*/messages/*")
    assert (limited.status, limited.fault, retried.status) == (429, "rate_limit", 200)
    assert rule.retry_after == pytest.approx(0.2) and limited.response["retry_after"] == 0.2
    assert retried.time - limited.end_time >= 0.19
    assert emu.message(message.id).content == "step 2"


@pytest.mark.parametrize("time_scale", CLOCKS)
async def test_a_webhook_bucket_429_on_an_interaction_edit_is_waited_out_then_retried(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession, time_scale: float
) -> None:
    emu = discord_emulator
    # The three requests must fall in one window: half a second (5 Discord seconds) leaves room on a busy machine;
    # on Discord's time, nextcord waits a second for a bucket anyway, so the window may as well be that long.
    emu.config.webhook_bucket_limit, emu.config.webhook_bucket_period = 2, 5.0 if time_scale < 1 else 1.0
    client = make_client(emu)
    done = future()

    @client.slash_command(description="Make an image")
    async def generate(interaction: nextcord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.edit_original_message(content="10%")
        # Someone else with this token (here the test) spends the bucket's last request behind nextcord's back.
        url = f"{emu.api_base}/webhooks/{emu.application_id}/{interaction.token}/messages/@original"
        async with session.get(url) as peek:
            assert peek.status == 200 and peek.headers["X-RateLimit-Remaining"] == "0"
        await interaction.edit_original_message(content="100%")
        done.set_result(None)

    await run_nextcord(client)
    interaction = await emu.send_slash_command("alice", "general", "generate")
    await asyncio.wait_for(done, 5)

    first, limited, retried = emu.find_requests("PATCH", "/webhooks/*/messages/@original")
    assert (first.status, limited.status, retried.status) == (200, 429, 200)
    assert limited.ratelimit_scope == "user"
    assert retried.time - limited.end_time >= limited.response["retry_after"] - 0.01
    message = emu.original_message(interaction)
    assert message is not None and [s.content for s in message.history] == ["", "10%", "100%"]


@pytest.mark.discord_time_scale(0.1)
async def test_nextcord_waits_out_a_shared_429_on_an_interaction_edit(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    emu.config.shared_limit = (1, 2.0)  # one message write per channel per 2 Discord seconds: 0.2 s here
    client = make_client(emu)
    done = future()

    @client.slash_command(description="Make an image")
    async def generate(interaction: nextcord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.edit_original_message(content="10%")
        await interaction.edit_original_message(content="100%")
        done.set_result(None)

    await run_nextcord(client)
    interaction = await emu.send_slash_command("alice", "general", "generate")
    await asyncio.wait_for(done, 5)

    first, limited, retried = emu.find_requests("PATCH", "/webhooks/*/messages/@original")
    assert (first.status, limited.status, retried.status) == (200, 429, 200)
    assert limited.ratelimit_scope == "shared" and 0 < limited.response["retry_after"] <= 0.2
    # nextcord's webhook client sleeps the body's retry_after (the headers said there was room).
    assert retried.time - limited.end_time >= limited.response["retry_after"] - 0.01
    message = emu.original_message(interaction)
    assert message is not None and message.content == "100%"


@pytest.mark.discord_time_scale(0.1)
async def test_nextcords_bot_token_client_retries_a_shared_429_at_once_and_gives_up(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    """What a shared limit does to nextcord's HTTPClient (channel routes): it paces itself by the headers only,
    which still show room, so it retries at once, five times, and raises. A caller that meets shared limits on
    bot-token routes has to wait out ``retry_after`` itself."""
    emu = discord_emulator
    emu.config.shared_limit = (1, 50.0)
    channel = await general_channel(emu, run_nextcord)
    message = await channel.send("step 1")

    with pytest.raises(nextcord.HTTPException) as raised:
        await message.edit(content="step 2")

    assert raised.value.status == 429
    edits = emu.find_requests("PATCH", "/channels/*/messages/*")
    assert [r.ratelimit_scope for r in edits] == ["shared"] * 5
    assert edits[-1].time - edits[0].time < 1.0


@pytest.mark.slow  # nextcord sleeps 1 s before retrying a 5xx, whatever the emulator's time scale
async def test_server_error_is_retried_by_nextcord(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    channel = await general_channel(emu, run_nextcord)
    emu.faults.server_error("/channels/*/messages", method="POST", status=500)

    await channel.send("hello")

    failed, succeeded = emu.find_requests("POST", "/channels/*/messages")
    assert (failed.status, succeeded.status) == (500, 200)
    assert [m.content for m in emu.messages("general")] == ["hello"]


async def test_expired_token_edit_raises_invalid_webhook_token(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    client = make_client(emu)
    expired = asyncio.Event()
    outcome = future()

    @client.slash_command(description="A long job")
    async def generate(interaction: nextcord.Interaction) -> None:
        await interaction.response.defer()
        await expired.wait()
        try:
            await interaction.edit_original_message(content="done")
        except nextcord.HTTPException as exc:
            outcome.set_result(exc)

    await run_nextcord(client)
    interaction = await emu.send_slash_command("alice", "general", "generate")
    await emu.wait_for_response(interaction)
    emu.faults.expire_token(interaction)
    expired.set()

    exc = await asyncio.wait_for(outcome, 5)
    assert (exc.status, exc.code) == (401, 50027)


async def test_late_first_response_raises_unknown_interaction(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    emu.config.response_deadline = 0.05
    client = make_client(emu)
    outcome = future()

    @client.slash_command(description="Slow")
    async def slow(interaction: nextcord.Interaction) -> None:
        await asyncio.sleep(0.1)  # counted from when nextcord got it: later than the emulator's deadline
        try:
            await interaction.response.defer()
        except nextcord.NotFound as exc:
            outcome.set_result(exc)

    await run_nextcord(client)
    interaction = await emu.send_slash_command("bob", "general", "slow")

    exc = await asyncio.wait_for(outcome, 5)
    assert (exc.status, exc.code) == (404, 10062)
    assert interaction.refusals == [10062] and not interaction.responded


async def test_content_over_2000_characters_raises_invalid_form_body(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    channel = await general_channel(discord_emulator, run_nextcord)

    try:
        await channel.send("x" * 2001)
    except nextcord.HTTPException as exc:
        assert (exc.status, exc.code) == (400, 50035)
        assert "In content: Must be 2000 or fewer in length." in exc.text
    else:
        raise AssertionError("the emulator accepted 2001 characters")
    assert discord_emulator.messages("general") == []


async def test_file_over_the_upload_limit_raises_request_entity_too_large(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    emu.config.upload_limit = 4096
    channel = await general_channel(emu, run_nextcord)

    try:
        await channel.send(file=nextcord.File(io.BytesIO(b"\0" * 4097), "big.bin"))
    except nextcord.HTTPException as exc:
        assert (exc.status, exc.code) == (413, 40005)
    else:
        raise AssertionError("the emulator accepted a file over the upload limit")
    (request,) = emu.find_requests("POST", "/channels/*/messages")
    assert request.files[0].size == 4097
