"""The emulator's REST side driven straight over HTTP: Discord's headers, error bodies, limits and faults."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.peers.discord import DiscordEmulator, InteractionRecord
from tests.peers.discord.raw_client import Answer, RawBot

GENERATE = {
    "name": "generate",
    "description": "Make an image",
    "options": [
        {"type": 3, "name": "prompt", "description": "What to draw", "required": True},
        {"type": 4, "name": "steps", "description": "Sampler steps", "min_value": 1, "max_value": 50},
    ],
}
BUTTON = {"type": 2, "style": 1, "label": "Go", "custom_id": "go"}


@pytest.fixture
async def bot(discord_emulator: DiscordEmulator) -> AsyncIterator[RawBot]:
    """A raw bot: identified on the gateway, with /generate registered in the guild."""
    emu = discord_emulator
    async with aiohttp.ClientSession() as session:
        bot = RawBot(emu, session)
        await bot.connect()
        answer = await bot.call(
            "PUT", f"/applications/{emu.application_id}/guilds/{emu.guild.id}/commands", json_body=[GENERATE]
        )
        assert answer.status == 200, answer.body
        yield bot
        assert bot.gateway is not None
        await bot.gateway.close()


async def command(emu: DiscordEmulator) -> InteractionRecord:
    return await emu.send_slash_command("alice", "general", "generate", {"prompt": "a cat"})


async def post_message(bot: RawBot, payload: dict[str, Any], **kw: Any) -> Answer:
    return await bot.call("POST", f"/channels/{bot.emulator.channels['general'].id}/messages", json_body=payload, **kw)


def first_error(body: dict[str, Any], *path: str | int) -> str:
    node = body["errors"]
    for key in path:
        node = node[str(key)]
    return str(node["_errors"][0]["code"])


async def test_json_answers_are_exactly_application_json_with_ratelimit_headers(bot: RawBot) -> None:
    answer = await bot.call("GET", "/users/@me")

    assert answer.status == 200 and answer.body["id"] == str(bot.emulator.bot_user.id)
    assert answer.headers["Content-Type"] == "application/json"
    for header in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
        assert f"X-RateLimit-{header}" in answer.headers


async def test_unknown_route_is_a_json_404(bot: RawBot) -> None:
    answer = await bot.call("GET", "/no/such/route")

    assert (answer.status, answer.body) == (404, {"message": "404: Not Found", "code": 0})
    assert bot.emulator.requests[-1].route is None


async def test_missing_bot_token_is_401(bot: RawBot) -> None:
    answer = await bot.call("GET", "/users/@me", auth=False)

    assert (answer.status, answer.body) == (401, {"message": "401: Unauthorized", "code": 0})


async def test_gateway_discovery_points_at_the_emulator(bot: RawBot) -> None:
    plain, for_bots = await bot.call("GET", "/gateway"), await bot.call("GET", "/gateway/bot")

    assert plain.body["url"] == for_bots.body["url"] == bot.emulator.gateway_url
    assert for_bots.body["shards"] == 1 and for_bots.body["session_start_limit"]["max_concurrency"] == 1


async def test_bulk_overwrite_keeps_the_ids_of_surviving_commands(bot: RawBot) -> None:
    emu = bot.emulator
    path = f"/applications/{emu.application_id}/guilds/{emu.guild.id}/commands"
    (before,) = emu.commands(emu.guild)

    answer = await bot.call("PUT", path, json_body=[GENERATE, {"name": "status", "description": "Bot status"}])

    assert answer.status == 200
    assert [c["name"] for c in emu.commands(emu.guild)] == ["generate", "status"]
    assert emu.commands(emu.guild)[0]["id"] == before["id"]


async def test_posting_an_existing_command_updates_it_in_place(bot: RawBot) -> None:
    emu = bot.emulator
    path = f"/applications/{emu.application_id}/commands"
    created = await bot.call("POST", path, json_body={"name": "ping", "description": "Ping"})

    updated = await bot.call("POST", path, json_body={"name": "ping", "description": "Ping!"})

    assert (created.status, updated.status) == (201, 200)
    assert updated.body["id"] == created.body["id"] and updated.body["version"] != created.body["version"]
    assert [c["description"] for c in emu.commands()] == ["Ping!"]


async def test_invalid_command_name_is_invalid_form_body(bot: RawBot) -> None:
    path = f"/applications/{bot.emulator.application_id}/commands"

    answer = await bot.call("POST", path, json_body={"name": "Bad Name", "description": "x"})

    assert (answer.status, answer.body["code"]) == (400, 50035)
    assert first_error(answer.body, "name") == "APPLICATION_COMMAND_INVALID_NAME"


async def test_second_callback_is_already_acknowledged(bot: RawBot) -> None:
    interaction = await command(bot.emulator)
    first = await bot.callback(interaction.id, interaction.token, {"type": 5})

    second = await bot.callback(interaction.id, interaction.token, {"type": 4, "data": {"content": "hi"}})

    assert first.status == 204
    assert (second.status, second.body) == (
        400,
        {"message": "Interaction has already been acknowledged.", "code": 40060},
    )


async def test_callback_after_the_deadline_is_unknown_interaction(bot: RawBot) -> None:
    bot.emulator.config.response_deadline = 0.05
    interaction = await command(bot.emulator)
    await asyncio.sleep(0.1)

    answer = await bot.callback(interaction.id, interaction.token, {"type": 5})

    assert (answer.status, answer.body) == (404, {"message": "Unknown interaction", "code": 10062})


async def test_autocomplete_result_to_a_command_is_invalid_form_body(bot: RawBot) -> None:
    interaction = await command(bot.emulator)

    answer = await bot.callback(interaction.id, interaction.token, {"type": 8, "data": {"choices": []}})

    assert (answer.status, answer.body["code"]) == (400, 50035)
    assert not interaction.responded


async def test_callback_content_over_2000_is_reported_under_data(bot: RawBot) -> None:
    interaction = await command(bot.emulator)

    answer = await bot.callback(interaction.id, interaction.token, {"type": 4, "data": {"content": "x" * 2001}})

    assert (answer.status, answer.body["code"]) == (400, 50035)
    assert answer.body["errors"]["data"]["content"]["_errors"] == [
        {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}
    ]


@pytest.mark.parametrize(
    ("components", "path", "code"),
    [
        ([{"type": 1, "components": [BUTTON | {"custom_id": f"r{i}"}]} for i in range(6)], (), "BASE_TYPE_MAX_LENGTH"),
        (
            [{"type": 1, "components": [BUTTON | {"custom_id": f"b{i}"} for i in range(6)]}],
            (0, "components"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            [
                {
                    "type": 1,
                    "components": [
                        BUTTON,
                        {"type": 3, "custom_id": "pick", "options": [{"label": "a", "value": "a"}]},
                    ],
                }
            ],
            (0, "components"),
            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
        ),
        (
            [{"type": 1, "components": [BUTTON | {"custom_id": "x" * 101}]}],
            (0, "components", 0, "custom_id"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            [
                {
                    "type": 1,
                    "components": [
                        {
                            "type": 3,
                            "custom_id": "pick",
                            "options": [{"label": str(i), "value": str(i)} for i in range(26)],
                        }
                    ],
                }
            ],
            (0, "components", 0, "options"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        ([{"type": 1, "components": [BUTTON, BUTTON]}], (), "COMPONENT_CUSTOM_ID_DUPLICATED"),
    ],
    ids=["six-rows", "six-buttons", "select-with-a-button", "long-custom-id", "26-options", "duplicate-ids"],
)
async def test_component_limits_are_invalid_form_body(
    bot: RawBot, components: list[dict[str, Any]], path: tuple[str | int, ...], code: str
) -> None:
    answer = await post_message(bot, {"content": "x", "components": components})

    assert (answer.status, answer.body["code"]) == (400, 50035)
    assert first_error(answer.body, "components", *path) == code


@pytest.mark.parametrize(
    ("embeds", "path", "code"),
    [
        ([{"description": "x" * 4097}], (0, "description"), "BASE_TYPE_MAX_LENGTH"),
        ([{"title": "x" * 257}], (0, "title"), "BASE_TYPE_MAX_LENGTH"),
        ([{"title": "x"}] * 11, (), "BASE_TYPE_MAX_LENGTH"),
        ([{"fields": [{"name": "n", "value": "v"}] * 26}], (0, "fields"), "BASE_TYPE_MAX_LENGTH"),
        ([{"fields": [{"name": "n", "value": "v" * 1025}]}], (0, "fields", 0, "value"), "BASE_TYPE_MAX_LENGTH"),
        ([{"footer": {"text": "x" * 2049}}], (0, "footer", "text"), "BASE_TYPE_MAX_LENGTH"),
        ([{"description": "x" * 4000}, {"description": "x" * 2001}], (), "MAX_EMBED_SIZE_EXCEEDED"),
    ],
    ids=["description", "title", "eleven-embeds", "26-fields", "field-value", "footer", "total-6000"],
)
async def test_embed_limits_are_invalid_form_body(
    bot: RawBot, embeds: list[dict[str, Any]], path: tuple[str | int, ...], code: str
) -> None:
    answer = await post_message(bot, {"embeds": embeds})

    assert (answer.status, answer.body["code"]) == (400, 50035)
    assert first_error(answer.body, "embeds", *path) == code


async def test_modal_with_six_inputs_is_invalid_form_body(bot: RawBot) -> None:
    interaction = await command(bot.emulator)
    rows = [{"type": 1, "components": [{"type": 4, "custom_id": f"in{i}", "label": "L", "style": 1}]} for i in range(6)]

    modal = {"type": 9, "data": {"title": "Too long", "custom_id": "m", "components": rows}}
    answer = await bot.callback(interaction.id, interaction.token, modal)

    assert (answer.status, first_error(answer.body, "data", "components")) == (400, "BASE_TYPE_BAD_LENGTH")


async def test_empty_message_is_refused(bot: RawBot) -> None:
    answer = await post_message(bot, {"content": ""})

    assert (answer.status, answer.body) == (400, {"message": "Cannot send an empty message", "code": 50006})


async def test_file_over_the_upload_limit_is_request_entity_too_large(bot: RawBot) -> None:
    bot.emulator.config.upload_limit = 1000

    answer = await post_message(bot, {"content": "big"}, files=[("big.png", b"\0" * 1001)])

    assert (answer.status, answer.body) == (413, {"message": "Request entity too large", "code": 40005})
    assert bot.emulator.messages("general") == []


async def test_webhook_call_after_the_token_lifetime_is_invalid_webhook_token(bot: RawBot) -> None:
    emu = bot.emulator
    interaction = await command(emu)
    await bot.callback(interaction.id, interaction.token, {"type": 5})
    emu.faults.set_token_lifetime(0.05)
    await asyncio.sleep(0.1)

    answer = await bot.call("PATCH", bot.webhook(interaction.token, "/messages/@original"), json_body={"content": "x"})

    assert (answer.status, answer.body) == (401, {"message": "Invalid Webhook Token", "code": 50027})


async def test_followup_before_any_response_is_unknown_webhook(bot: RawBot) -> None:
    interaction = await command(bot.emulator)

    answer = await bot.call("POST", bot.webhook(interaction.token), json_body={"content": "too early"})

    assert (answer.status, answer.body["code"]) == (404, 10015)


async def test_edit_bucket_refusal_has_discords_429_body_and_headers(bot: RawBot) -> None:
    emu = bot.emulator
    emu.config.channel_edit_bucket_limit, emu.config.channel_edit_bucket_period = 2, 2.0
    created = await post_message(bot, {"content": "v0"})
    path = f"/channels/{emu.channels['general'].id}/messages/{created.body['id']}"

    answers = [await bot.call("PATCH", path, json_body={"content": f"v{i}"}) for i in (1, 2, 3)]

    assert [a.status for a in answers] == [200, 200, 429]
    limited = answers[2]
    assert limited.body["message"] == "You are being rate limited." and limited.body["global"] is False
    assert 0 < limited.body["retry_after"] <= 2.0
    headers = limited.headers
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("2", "0")
    assert headers["Retry-After"] == str(math.ceil(limited.body["retry_after"]))
    assert headers["X-RateLimit-Scope"] == "user" and headers["Via"]
    assert float(headers["X-RateLimit-Reset-After"]) == pytest.approx(limited.body["retry_after"], abs=0.01)
    assert headers["X-RateLimit-Bucket"] == answers[0].headers["X-RateLimit-Bucket"]
    assert answers[1].headers["X-RateLimit-Remaining"] == "0"
    assert emu.message(int(created.body["id"])).content == "v2"


async def test_rate_limit_storm_lasts_for_its_duration(bot: RawBot) -> None:
    storm = bot.emulator.faults.rate_limit("/users/@me", count=None, duration=0.25, retry_after=0.1)

    during = [await bot.call("GET", "/users/@me") for _ in range(2)]
    assert storm.until is not None
    await asyncio.sleep(storm.until - time.monotonic() + 0.01)
    after = await bot.call("GET", "/users/@me")

    assert [a.status for a in during] == [429, 429] and after.status == 200
    assert len(storm.hits) == 2 and during[0].headers["Via"]


@pytest.mark.discord_time_scale(0.05)
async def test_a_time_scale_shrinks_the_window_and_every_header_that_describes_it(bot: RawBot) -> None:
    emu = bot.emulator
    emu.config.channel_edit_bucket_limit = 2  # per 5 Discord seconds: 0.25 s here
    created = await post_message(bot, {"content": "v0"})
    path = f"/channels/{emu.channels['general'].id}/messages/{created.body['id']}"

    answers = [await bot.call("PATCH", path, json_body={"content": f"v{i}"}) for i in (1, 2, 3)]

    assert [a.status for a in answers] == [200, 200, 429]
    limited = answers[2]
    retry_after = limited.body["retry_after"]
    assert 0 < retry_after <= 0.25
    assert float(limited.headers["X-RateLimit-Reset-After"]) == retry_after
    assert float(limited.headers["Retry-After"]) == pytest.approx(math.ceil(round(retry_after / 0.05, 6)) * 0.05)
    reset_at = float(limited.headers["X-RateLimit-Reset"])
    assert reset_at - time.time() <= retry_after + 0.002  # both rounded up to the millisecond
    await asyncio.sleep(max(reset_at - time.time(), 0.0))
    assert (await bot.call("PATCH", path, json_body={"content": "v4"})).status == 200

    emu.faults.rate_limit("/users/@me", retry_after=6.0)
    injected = await bot.call("GET", "/users/@me")
    assert (injected.body["retry_after"], injected.headers["Retry-After"]) == (0.3, "0.3")
    storm = emu.faults.rate_limit("/users/@me", count=None, duration=2.0)
    assert storm.until is not None and storm.until - time.monotonic() <= 0.1


async def test_global_rate_limit_fault_says_so(bot: RawBot) -> None:
    bot.emulator.faults.rate_limit("/users/@me", is_global=True)

    answer = await bot.call("GET", "/users/@me")

    assert answer.status == 429 and answer.body["global"] is True
    assert answer.headers["X-RateLimit-Global"] == "true" and answer.headers["X-RateLimit-Scope"] == "global"


async def test_server_error_fault_answers_the_next_requests_only(bot: RawBot) -> None:
    bot.emulator.faults.server_error("/users/*", count=2, status=503)

    statuses = [(await bot.call("GET", "/users/@me")).status for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert [r.fault for r in bot.emulator.find_requests("GET", "/users/@me")][-3:] == ["server_error"] * 2 + [None]


async def test_edit_keeps_only_the_attachments_it_lists(bot: RawBot) -> None:
    emu = bot.emulator
    created = await post_message(bot, {"content": "two"}, files=[("a.png", b"A"), ("b.png", b"B")])
    first_id = created.body["attachments"][0]["id"]
    path = f"/channels/{emu.channels['general'].id}/messages/{created.body['id']}"

    edited = await bot.call("PATCH", path, json_body={"attachments": [{"id": first_id}]}, files=[("c.png", b"C")])
    untouched = await bot.call("PATCH", path, json_body={"content": "still"})

    assert [a["filename"] for a in edited.body["attachments"]] == ["a.png", "c.png"]
    assert [a["filename"] for a in untouched.body["attachments"]] == ["a.png", "c.png"]
    message = emu.message(int(created.body["id"]))
    assert [a.data for a in message.attachments] == [b"A", b"C"]
    async with bot.session.get(message.attachments[1].proxy_url) as response:
        assert await response.read() == b"C"


async def test_ephemeral_messages_are_invisible_to_channel_routes(bot: RawBot) -> None:
    emu = bot.emulator
    interaction = await command(emu)
    await bot.callback(interaction.id, interaction.token, {"type": 4, "data": {"content": "psst", "flags": 64}})
    message = emu.original_message(interaction)
    assert message is not None and message.ephemeral

    listed = await bot.call("GET", f"/channels/{emu.channels['general'].id}/messages")
    fetched = await bot.call("GET", f"/channels/{emu.channels['general'].id}/messages/{message.id}")
    via_webhook = await bot.call("GET", bot.webhook(interaction.token, "/messages/@original"))

    assert listed.body == [] and fetched.status == 404
    assert via_webhook.status == 200 and via_webhook.body["flags"] == 64


async def test_command_can_be_fetched_edited_and_deleted_by_id(bot: RawBot) -> None:
    emu = bot.emulator
    (registered,) = emu.commands(emu.guild)
    path = f"/applications/{emu.application_id}/guilds/{emu.guild.id}/commands/{registered['id']}"

    fetched = await bot.call("GET", path)
    edited = await bot.call("PATCH", path, json_body={"description": "Draw"})
    deleted = await bot.call("DELETE", path)
    gone = await bot.call("GET", path)

    assert fetched.body == registered and edited.body["description"] == "Draw"
    assert deleted.status == 204 and emu.commands(emu.guild) == []
    assert (gone.status, gone.body["code"]) == (404, 10063)


async def test_followup_can_be_fetched_edited_and_deleted_by_id(bot: RawBot) -> None:
    emu = bot.emulator
    interaction = await command(emu)
    await bot.callback(interaction.id, interaction.token, {"type": 4, "data": {"content": "first"}})
    followup = await bot.call("POST", bot.webhook(interaction.token) + "?wait=true", json_body={"content": "more"})
    path = bot.webhook(interaction.token, f"/messages/{followup.body['id']}")

    fetched = await bot.call("GET", path)
    edited = await bot.call("PATCH", path, json_body={"content": "more!"})
    deleted = await bot.call("DELETE", path)
    original_deleted = await bot.call("DELETE", bot.webhook(interaction.token, "/messages/@original"))

    assert fetched.body["content"] == "more" and edited.body["content"] == "more!"
    assert (deleted.status, original_deleted.status) == (204, 204)
    assert emu.messages("general") == []
    assert [m.content for m in emu.messages("general", include_deleted=True)] == ["first", "more!"]


async def test_attachment_downloads_can_fail_too(bot: RawBot) -> None:
    upload = bot.emulator.add_upload("in.png", b"png")
    bot.emulator.faults.server_error("/cdn/*", status=502)

    async with bot.session.get(upload.url) as failed, bot.session.get(upload.url) as served:
        assert (failed.status, served.status) == (502, 200)
        assert await served.read() == b"png"
