"""The emulator's pure parts: limit checks, rate limit windows and headers, snowflakes, command registry."""

from __future__ import annotations

import ast
import inspect
import time

import pytest

from tests.peers.discord import buckets, commands, limits, ratelimit, snowflake
from tests.peers.discord.buckets import RequestLimits, SharedLimit, limits_for
from tests.peers.discord.limits import FormErrors, Limits, check_message, check_modal, is_empty_message
from tests.peers.discord.ratelimit import (
    BucketTable,
    Decision,
    FixedWindow,
    Limit,
    Verdict,
    ratelimit_headers,
    too_many_requests,
)
from tests.peers.discord.snowflake import SnowflakeGenerator, snowflake_unix_time
from tests.peers.discord.state import EmulatorConfig


@pytest.mark.parametrize("module", [limits, ratelimit, buckets, snowflake, commands])
def test_pure_modules_import_no_io_libraries(module: object) -> None:
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"asyncio", "aiohttp", "nextcord", "websockets"}


def test_message_within_limits_has_no_errors() -> None:
    form = FormErrors()
    embed = {"title": "t" * 256, "description": "d" * 4096, "fields": [{"name": "n", "value": "v"}] * 25}
    rows = [
        {"type": 1, "components": [{"type": 2, "style": 1, "custom_id": f"{r}-{b}"} for b in range(5)]}
        for r in range(5)
    ]

    check_message({"content": "c" * 2000, "embeds": [embed], "components": rows}, Limits(), form)

    assert not form and form.tree == {}


def test_errors_nest_like_discords_form_body() -> None:
    form = FormErrors()

    check_message({"content": "c" * 11, "embeds": [{}, {"title": "t" * 6}]}, Limits(content=10, embed_title=5), form)

    assert form.tree == {
        "content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 10 or fewer in length."}]},
        "embeds": {
            "1": {"title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 5 or fewer in length."}]}}
        },
    }


def test_link_buttons_need_a_url_not_a_custom_id() -> None:
    form = FormErrors()
    rows = [{"type": 1, "components": [{"type": 2, "style": 5, "label": "Open"}]}]

    check_message({"components": rows}, Limits(), form)

    assert (
        form.tree["components"]["0"]["components"]["0"]["url"]["_errors"][0]["code"] == "BUTTON_COMPONENT_URL_REQUIRED"
    )


def test_modal_needs_a_title() -> None:
    form = FormErrors()
    row = {"type": 1, "components": [{"type": 4, "custom_id": "p", "label": "Prompt", "style": 1}]}

    check_modal({"custom_id": "m", "components": [row]}, Limits(), form)

    assert list(form.tree["data"]) == ["title"]


def test_only_files_count_against_an_empty_message() -> None:
    assert is_empty_message({"content": ""}, 0)
    assert not is_empty_message({"content": ""}, 1)
    assert not is_empty_message({"embeds": [{"title": "x"}]}, 0)


def test_fixed_window_refuses_past_its_limit_until_it_resets() -> None:
    window = FixedWindow()

    decisions = [window.hit(now, limit=2, period=5.0) for now in (10.0, 11.0, 12.0)]
    after_reset = window.hit(15.0, limit=2, period=5.0)

    assert decisions == [Decision(True, 2, 1, 5.0), Decision(True, 2, 0, 4.0), Decision(False, 2, 0, 3.0)]
    assert after_reset == Decision(True, 2, 1, 5.0)


def test_a_window_can_be_looked_at_without_counting() -> None:
    window = FixedWindow()

    fresh = window.state(10.0, limit=2, period=5.0)
    taken = window.take(10.0, limit=2, period=5.0)

    assert fresh == Decision(True, 2, 2, 5.0) and taken == Decision(True, 2, 1, 5.0)
    assert window.state(12.0, limit=2, period=5.0) == Decision(True, 2, 1, 3.0) == window.state(12.0, 2, 5.0)


def test_admit_checks_global_then_route_then_shared_and_a_refusal_counts_nowhere() -> None:
    table = BucketTable()
    route, other_route = Limit("r", "channel:1", 5, 5.0), Limit("r", "channel:2", 5, 5.0)
    global_limit, shared = Limit("global", "bot", 2, 1.0), Limit("shared", "channel:1", 1, 10.0)

    verdicts = [
        table.admit(route, 0.0, global_limit=global_limit, shared=shared),
        table.admit(route, 0.1, global_limit=global_limit, shared=shared),  # shared refuses
        table.admit(other_route, 0.2, global_limit=global_limit, shared=None),
        table.admit(route, 0.3, global_limit=global_limit, shared=shared),  # global refuses
        table.admit(route, 1.0, global_limit=None, shared=None),
    ]

    assert verdicts == [
        Verdict(Decision(True, 5, 4, 5.0)),
        Verdict(Decision(True, 5, 4, 4.9), "shared", 9.9),
        Verdict(Decision(True, 5, 4, 5.0)),
        Verdict(Decision(True, 5, 4, 4.7), "global", 0.7),
        Verdict(Decision(True, 5, 3, 4.0)),
    ]


def test_buckets_are_keyed_by_webhook_token_or_channel_and_interaction_routes_skip_the_global_limit() -> None:
    config = EmulatorConfig(time_scale=0.5, shared_limit=(3, 4.0))
    webhook = "/webhooks/{application_id}/{token}/messages/@original"

    def limits(method: str, route: str, **params: str) -> RequestLimits:
        return limits_for(config, method, route, params, authorized_as="t", target=lambda: (7, 8))

    one = limits("PATCH", webhook, application_id="1", token="a")
    two = limits("PATCH", webhook, application_id="1", token="b")
    edit = limits("PATCH", "/channels/{channel_id}/messages/{message_id}", channel_id="7", message_id="8")
    send = limits("POST", "/channels/{channel_id}/messages", channel_id="7")
    callback = limits("POST", "/interactions/{interaction_id}/{token}/callback", interaction_id="9", token="a")

    assert (one.route.bucket, one.route.resource, one.route.period) == (two.route.bucket, "webhook:1:a", 1.0)
    assert two.route.resource == "webhook:1:b" and one.global_limit is None is callback.global_limit
    assert (edit.route.resource, edit.route.limit, edit.route.period) == ("channel:7", 5, 2.5)
    assert send.route.bucket != edit.route.bucket != one.route.bucket and send.route.resource == "channel:7"
    assert edit.global_limit == Limit("global", "bot:t", 50, 0.5) == send.global_limit
    assert one.shared == edit.shared == Limit("shared", "channel:7", 3, 2.0) and callback.shared is None
    config.shared_limit = SharedLimit(1, 4.0, per="message")
    assert limits("PATCH", webhook, application_id="1", token="a").shared == Limit("shared", "message:8", 1, 2.0)


def test_a_shared_429_keeps_the_route_headers_as_they_are() -> None:
    headers, body = too_many_requests(Decision(True, 10, 9, 64.57), "abcd", 1000.0, scope="shared", retry_after=1336.57)

    assert body == {"message": "The resource is being rate limited.", "retry_after": 1336.57, "global": False}
    assert (headers["X-RateLimit-Remaining"], headers["X-RateLimit-Reset-After"]) == ("9", "64.570")
    assert (headers["Retry-After"], headers["X-RateLimit-Scope"]) == ("1337", "shared")
    assert "X-RateLimit-Global" not in headers


def test_a_global_429_says_global_in_body_and_headers() -> None:
    headers, body = too_many_requests(Decision(True, 5, 5, 5.0), "b", 0.0, scope="global", retry_after=0.25)

    assert body == {"message": "You are being rate limited.", "retry_after": 0.25, "global": True}
    assert (headers["X-RateLimit-Global"], headers["X-RateLimit-Scope"]) == ("true", "global")
    assert headers["Retry-After"] == "1"


def test_429_carries_retry_after_via_and_scope() -> None:
    headers, body = too_many_requests(Decision(False, 5, 0, 1.2345), "abc", wall_now=1000.0)

    # Rounded up to the millisecond: a client told to wait 1.234 s would come back 0.5 ms too early.
    assert body == {"message": "You are being rate limited.", "retry_after": 1.235, "global": False}
    assert headers == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1001.235",
        "X-RateLimit-Reset-After": "1.235",
        "X-RateLimit-Bucket": "abc",
        "Retry-After": "2",
        "X-RateLimit-Scope": "user",
        "Via": "1.1 google",
    }


def test_ratelimit_headers_describe_the_bucket() -> None:
    assert ratelimit_headers(Decision(True, 5, 3, 2.5), "b", wall_now=10.0)["X-RateLimit-Reset"] == "12.500"


@pytest.mark.parametrize(
    ("retry_after", "time_scale", "header"),
    [(64.57, 1.0, "65"), (0.2, 1.0, "1"), (3.0, 1.0, "3"), (0.35, 0.1, "0.4"), (0.3, 0.1, "0.3"), (0.01, 0.1, "0.1")],
)
def test_retry_after_header_is_whole_discord_seconds_scaled(retry_after: float, time_scale: float, header: str) -> None:
    headers, body = too_many_requests(Decision(False, 5, 0, retry_after), "b", 0.0, time_scale=time_scale)

    assert headers["Retry-After"] == header and body["retry_after"] == retry_after
    assert float(headers["X-RateLimit-Reset-After"]) == retry_after <= float(header)


def test_snowflakes_are_current_and_increasing() -> None:
    generator = SnowflakeGenerator()

    ids = [generator.next() for _ in range(5000)]

    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert abs(snowflake_unix_time(ids[0]) - time.time()) < 2


def test_snowflake_time_uses_the_discord_epoch() -> None:
    assert snowflake_unix_time(175928847299117063) == pytest.approx(1462015105.796)


def test_registry_overwrite_drops_unlisted_commands() -> None:
    registry = commands.CommandRegistry(SnowflakeGenerator(), application_id=1)
    registry.upsert(None, {"name": "a", "description": "A"})
    registry.upsert(None, {"name": "b", "description": "B"})

    registry.overwrite(None, [{"name": "b", "description": "B2"}])

    assert [(c["name"], c["description"]) for c in registry.in_scope(None)] == [("b", "B2")]
    assert registry.find("a", None) is None
