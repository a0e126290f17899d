"""The emulator's rate limits keyed as Discord keys them: a bucket per interaction token, per channel for bot-token
message routes, the global limit on bot-token calls (interaction routes exempt), and the switchable shared limit."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.peers.discord import DiscordEmulator, InteractionRecord, SharedLimit
from tests.peers.discord.raw_client import Answer, RawBot

GENERATE = {"name": "generate", "description": "Make an image"}


@pytest.fixture
async def bot(discord_emulator: DiscordEmulator, session: aiohttp.ClientSession) -> AsyncIterator[RawBot]:
    """A raw bot: identified on the gateway (interactions reach the bot there), with /generate in the guild."""
    emu = discord_emulator
    bot = RawBot(emu, session)
    await bot.connect()
    path = f"/applications/{emu.application_id}/guilds/{emu.guild.id}/commands"
    answer = await bot.call("PUT", path, json_body=[GENERATE])
    assert answer.status == 200, answer.body
    yield bot
    assert bot.gateway is not None
    await bot.gateway.close()


async def deferred(bot: RawBot, channel: str = "general") -> InteractionRecord:
    """A /generate in ``channel`` answered with "thinking…" (the callback counts against nothing shared)."""
    interaction = await bot.emulator.send_slash_command("alice", channel, "generate")
    assert (await bot.callback(interaction.id, interaction.token, {"type": 5}, auth=False)).status == 204
    return interaction


async def edit_original(bot: RawBot, interaction: InteractionRecord, content: str) -> Answer:
    """Interaction routes take no bot token: the webhook token is the credential."""
    path = bot.webhook(interaction.token, "/messages/@original")
    return await bot.call("PATCH", path, json_body={"content": content}, auth=False)


async def channel_message(bot: RawBot, channel: str = "general") -> str:
    """A new bot message in ``channel``; returns its path for edits."""
    channel_id = bot.emulator.channels[channel].id
    created = await bot.call("POST", f"/channels/{channel_id}/messages", json_body={"content": "v0"})
    assert created.status == 200, created.body
    return f"/channels/{channel_id}/messages/{created.body['id']}"


def statuses(answers: list[Answer]) -> list[int]:
    return [answer.status for answer in answers]


def header(answer: Answer, name: str) -> str:
    return answer.headers[f"X-RateLimit-{name}"]


async def test_each_interaction_token_has_a_full_bucket_of_its_own_under_one_bucket_hash(bot: RawBot) -> None:
    emu = bot.emulator
    emu.config.webhook_bucket_limit = 2
    first, second = await deferred(bot), await deferred(bot)

    firsts = [await edit_original(bot, first, f"a{i}") for i in range(3)]
    seconds = [await edit_original(bot, second, f"b{i}") for i in range(2)]

    assert statuses(firsts) == [200, 200, 429] and statuses(seconds) == [200, 200]
    assert [header(a, "Remaining") for a in firsts] == ["1", "0", "0"]
    assert [header(a, "Remaining") for a in seconds] == ["1", "0"]
    assert firsts[2].headers["X-RateLimit-Scope"] == "user" and firsts[2].body["global"] is False
    # One route, one bucket hash, counted per webhook id + token (the hash leaves top-level resources out).
    assert len({header(a, "Bucket") for a in firsts + seconds}) == 1
    records = emu.find_requests("PATCH", "/webhooks/*/messages/@original")
    assert {r.bucket_resource for r in records} == {
        f"webhook:{emu.application_id}:{first.token}",
        f"webhook:{emu.application_id}:{second.token}",
    }
    assert [r.ratelimit_scope for r in records] == [None, None, "user", None, None]


async def test_every_route_of_one_interaction_token_shares_its_bucket(bot: RawBot) -> None:
    emu = bot.emulator
    emu.config.webhook_bucket_limit = 3
    interaction = await deferred(bot)

    answers = [
        await edit_original(bot, interaction, "edited"),
        await bot.call("GET", bot.webhook(interaction.token, "/messages/@original"), auth=False),
        await bot.call("POST", bot.webhook(interaction.token), json_body={"content": "follow-up"}, auth=False),
        await edit_original(bot, interaction, "too many"),
    ]

    assert statuses(answers) == [200, 200, 204, 429]
    assert len({header(a, "Bucket") for a in answers}) == 1


async def test_channel_route_edits_in_one_channel_share_one_bucket_whatever_the_message(bot: RawBot) -> None:
    emu = bot.emulator
    emu.config.channel_edit_bucket_limit = 2
    one, two, elsewhere = await channel_message(bot), await channel_message(bot), await channel_message(bot, "renders")
    interaction = await deferred(bot)

    edits = [await bot.call("PATCH", path, json_body={"content": "v1"}) for path in (one, two, one)]
    # Other channels, new messages and interaction webhook edits in this channel are other buckets.
    others = [
        await bot.call("PATCH", elsewhere, json_body={"content": "v1"}),
        await bot.call("POST", f"/channels/{emu.channels['general'].id}/messages", json_body={"content": "new"}),
        await edit_original(bot, interaction, "still fine"),
    ]

    assert statuses(edits) == [200, 200, 429] and statuses(others) == [200, 200, 200]
    assert header(edits[0], "Bucket") == header(edits[1], "Bucket") == header(others[0], "Bucket")
    assert header(others[1], "Bucket") != header(edits[0], "Bucket") != header(others[2], "Bucket")
    assert [r.bucket_resource for r in emu.find_requests("PATCH", "/channels/*")] == [
        f"channel:{emu.channels['general'].id}"
    ] * 3 + [f"channel:{emu.channels['renders'].id}"]


async def test_the_global_limit_refuses_the_51st_bot_token_request_in_a_second_but_not_interaction_routes(
    bot: RawBot,
) -> None:
    emu = bot.emulator
    assert (emu.config.global_limit, emu.config.global_period) == (50, 1.0)
    interaction, late = await deferred(bot), await emu.send_slash_command("bob", "general", "generate")
    channel, guild = f"/channels/{emu.channels['general'].id}", f"/guilds/{emu.guild.id}"
    emu.state.buckets.clear()  # a fresh window for every limit: the setup's requests count no more
    started = time.monotonic()

    # Spread over routes, so that no route bucket (50 per second each) is what refuses.
    allowed = await asyncio.gather(*(bot.call("GET", path) for path in ["/users/@me", channel] * 25))
    refused = await bot.call("GET", guild)
    webhook = await edit_original(bot, interaction, "interaction routes are exempt")
    callback = await bot.callback(late.id, late.token, {"type": 4, "data": {"content": "so are callbacks"}})

    assert time.monotonic() - started < 1.0, "the test machine took longer than the global window"
    assert statuses(allowed) == [200] * 50 and refused.status == 429
    assert (webhook.status, callback.status) == (200, 204)
    assert refused.body["message"] == "You are being rate limited."
    assert refused.body["global"] is True and 0 < refused.body["retry_after"] <= 1.0
    assert refused.headers["X-RateLimit-Global"] == "true" and refused.headers["X-RateLimit-Scope"] == "global"
    assert refused.headers["Via"] and float(refused.headers["Retry-After"]) >= refused.body["retry_after"]
    # The route's own bucket is untouched, and says so.
    assert (header(refused, "Limit"), header(refused, "Remaining")) == ("50", "50")
    assert emu.requests[-3].ratelimit_scope == "global"


async def test_the_shared_limit_answers_429_shared_while_the_headers_still_show_room(bot: RawBot) -> None:
    emu = bot.emulator
    emu.config.shared_limit = (2, 5.0)  # two message writes per channel per 5 s, announced nowhere
    first, second, renders = await deferred(bot), await deferred(bot), await deferred(bot, "renders")

    answers = [
        await edit_original(bot, first, "1"),
        await edit_original(bot, second, "2"),
        await edit_original(bot, first, "3"),
        await edit_original(bot, renders, "elsewhere"),
    ]

    assert statuses(answers) == [200, 200, 429, 200]
    refused = answers[2]
    assert refused.headers["X-RateLimit-Scope"] == "shared" and "X-RateLimit-Global" not in refused.headers
    assert refused.body["message"] == "The resource is being rate limited." and refused.body["global"] is False
    assert 0 < refused.body["retry_after"] <= 5.0
    assert refused.headers["Retry-After"] == str(math.ceil(refused.body["retry_after"]))
    assert (header(refused, "Limit"), header(refused, "Remaining")) == ("5", "4")  # room, as far as it says
    assert header(refused, "Bucket") == header(answers[0], "Bucket")
    assert [r.ratelimit_scope for r in emu.requests[-4:]] == [None, None, "shared", None]
    # The refused request counted against nothing: once the shared window is over, the bucket has 4 left.
    emu.config.shared_limit = None
    assert header(await edit_original(bot, first, "4"), "Remaining") == "3"


async def test_the_shared_limit_counts_every_message_write_in_the_channel(bot: RawBot) -> None:
    emu = bot.emulator
    emu.config.shared_limit = SharedLimit(2, 5.0)
    path, interaction = await channel_message(bot), await deferred(bot)  # the POST counts (the callback not)

    answers = [
        await bot.call("PATCH", path, json_body={"content": "v1"}),
        await bot.call("POST", bot.webhook(interaction.token), json_body={"content": "follow-up"}, auth=False),
        await bot.call("GET", path),  # reads are not writes
    ]

    assert statuses(answers) == [200, 429, 200]
    assert answers[1].headers["X-RateLimit-Scope"] == "shared"


async def test_a_per_message_shared_limit_spares_the_other_messages_of_the_channel(bot: RawBot) -> None:
    emu = bot.emulator
    emu.config.shared_limit = SharedLimit(1, 5.0, per="message")
    first, second = await deferred(bot), await deferred(bot)

    answers = [await edit_original(bot, i, c) for i, c in ((first, "1"), (first, "2"), (second, "3"))]

    assert statuses(answers) == [200, 429, 200]


async def test_an_injected_shared_429_shows_the_bucket_as_it_is(bot: RawBot) -> None:
    emu = bot.emulator
    interaction = await deferred(bot)
    await edit_original(bot, interaction, "1")
    rule = emu.faults.rate_limit("/webhooks/*/messages/@original", scope="shared", retry_after=3.0)

    refused = await edit_original(bot, interaction, "2")

    assert refused.status == 429 and refused.headers["X-RateLimit-Scope"] == "shared" and rule.hits
    assert (refused.body["retry_after"], refused.headers["Retry-After"]) == (3.0, "3")
    assert header(refused, "Remaining") == "4" and emu.requests[-1].ratelimit_scope == "shared"


async def test_the_old_edit_bucket_knobs_set_both_edit_buckets(discord_emulator: DiscordEmulator) -> None:
    config = discord_emulator.config

    config.edit_bucket_limit, config.edit_bucket_period = 1, 0.5

    assert (config.webhook_bucket_limit, config.webhook_bucket_period) == (1, 0.5)
    assert (config.channel_edit_bucket_limit, config.channel_edit_bucket_period) == (1, 0.5)
    assert (config.edit_bucket_limit, config.edit_bucket_period) == (1, 0.5)


def assert_consistent(answer: Answer, time_scale: float) -> None:
    """Reset and Reset-After name one instant; a 429's Retry-After covers its retry_after in scaled seconds."""
    reset_after = float(header(answer, "Reset-After"))
    assert float(header(answer, "Reset")) - time.time() == pytest.approx(reset_after, abs=0.05)
    if answer.status == 429:
        retry_after = answer.body["retry_after"]
        assert retry_after <= float(answer.headers["Retry-After"]) < retry_after + time_scale


@pytest.mark.discord_time_scale(0.05)
async def test_under_a_time_scale_every_limit_and_header_runs_on_the_scaled_clock(bot: RawBot) -> None:
    emu = bot.emulator
    emu.config.webhook_bucket_limit = 2  # per 2 Discord seconds: 0.1 s here
    interaction = await deferred(bot)

    answers = [await edit_original(bot, interaction, str(i)) for i in range(3)]

    assert statuses(answers) == [200, 200, 429]
    assert 0 < answers[2].body["retry_after"] <= 0.1
    for answer in answers:
        assert 0 < float(header(answer, "Reset-After")) <= 0.1
        assert_consistent(answer, 0.05)
    await asyncio.sleep(max(float(header(answers[2], "Reset")) - time.time(), 0.0))
    assert (await edit_original(bot, interaction, "after the reset")).status == 200

    emu.config.shared_limit = (1, 4.0)  # 0.2 s here
    other = await deferred(bot)
    shared = [await edit_original(bot, other, str(i)) for i in range(2)]
    assert statuses(shared) == [200, 429] and shared[1].headers["X-RateLimit-Scope"] == "shared"
    assert 0 < shared[1].body["retry_after"] <= 0.2 and header(shared[1], "Remaining") == "1"
    assert_consistent(shared[1], 0.05)
    await asyncio.sleep(shared[1].body["retry_after"])
    assert (await edit_original(bot, other, "after the shared window")).status == 200
