"""The message editor with the real nextcord client against the Discord emulator.

Coalescing and spacing, files replacing files, token expiry, 5xx, a tight edit bucket (429s honoured), and a
message too old to edit (30046). The emulator has no 30046 fault yet, so that one test raises Discord's answer
from a thin wrapper around nextcord's ``HTTPClient.request`` (everything else is real).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import nextcord
import pytest

from discomfy.bot.editor import EditTarget, Failure, MessageEditError, MessageEditor, RouteKind, classify, route_for
from discomfy.bot.render_job import RenderedMessage
from tests.peers.discord import DiscordEmulator, InteractionRecord, NextcordRunner, RequestRecord

WEBHOOK_EDIT = "/webhooks/*/messages/@original"
CHANNEL_EDIT = "/channels/*/messages/*"
BUTTONS = ({"type": 1, "components": [{"type": 2, "style": 1, "label": "Reroll", "custom_id": "dc1:reroll:abc"}]},)
INTERVAL = 0.2
TOLERANCE = 0.03


def state(n: int, **fields: Any) -> RenderedMessage:
    return RenderedMessage(content=f"step {n}", **fields)


FINAL = RenderedMessage(
    content="done",
    embeds=({"title": "✅ Done", "description": "> a cat"},),
    components=BUTTONS,
    files=(("cat_0.png", b"\x89PNG one"), ("cat_1.png", b"\x89PNG two")),
)


@dataclass
class Started:
    client: nextcord.Client
    record: InteractionRecord
    target: EditTarget
    interactions: asyncio.Queue[nextcord.Interaction]


async def deferred_command(
    emu: DiscordEmulator, run_nextcord: NextcordRunner, *, exact_ratelimits: bool = True
) -> Started:
    """A real slash command answered with a defer, as /generate does; its token drives the editor.

    The buckets in these tests are Discord's, scaled down by hand: with ``exact_ratelimits`` nextcord waits for
    them exactly (by default it waits at least a second for any bucket)."""
    intents = nextcord.Intents.none()
    intents.guilds = True
    client = nextcord.Client(intents=intents, default_guild_ids=[emu.guild.id])
    interactions: asyncio.Queue[nextcord.Interaction] = asyncio.Queue()

    @client.slash_command(description="Make an image")
    async def generate(interaction: nextcord.Interaction) -> None:
        await interaction.response.defer()
        interactions.put_nowait(interaction)

    await run_nextcord(client, exact_ratelimits=exact_ratelimits)
    return await another_command(emu, Started(client, None, None, interactions))  # type: ignore[arg-type]


async def another_command(emu: DiscordEmulator, started: Started) -> Started:
    record = await emu.send_slash_command("alice", "general", "generate")
    interaction = await asyncio.wait_for(started.interactions.get(), 5)
    await emu.wait_for_response(record)
    assert interaction.channel_id is not None and interaction.token is not None
    target = EditTarget(
        channel_id=interaction.channel_id,
        message_id=None,
        application_id=interaction.application_id,
        token=interaction.token,
        token_created_at=interaction.created_at.timestamp(),
    )
    return Started(started.client, record, target, started.interactions)


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """For conditions on our side (the emulator's ``wait_for`` wakes only on its own events)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def edits(emu: DiscordEmulator) -> list[RequestRecord]:
    return [r for r in emu.state.requests if r.method in ("PATCH", "POST") and "/messages" in r.path]


def assert_spaced(requests: list[RequestRecord], interval: float) -> None:
    times = [r.time for r in requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= interval - TOLERANCE for gap in gaps), gaps


# --- pure decisions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "webhook", "expected"),
    [
        (None, 0, True, Failure.TRANSIENT),
        (500, 0, False, Failure.TRANSIENT),
        (503, 0, True, Failure.TRANSIENT),
        (429, 0, False, Failure.TRANSIENT),
        (401, 50027, True, Failure.TOKEN_DEAD),
        (404, 10015, True, Failure.TOKEN_DEAD),
        (400, 30046, False, Failure.MESSAGE_TOO_OLD),
        (404, 10008, False, Failure.MESSAGE_GONE),
        (400, 50035, False, Failure.PERMANENT),
        (403, 50013, False, Failure.PERMANENT),
        (401, 0, False, Failure.PERMANENT),
    ],
)
def test_classify_names_what_a_failure_means(status: int | None, code: int, webhook: bool, expected: Failure) -> None:
    assert classify(status, code, webhook=webhook) is expected


def test_route_rules() -> None:
    assert route_for(token_usable=True, token_dead=False, message_id=None, must_post=False) is RouteKind.WEBHOOK
    assert route_for(token_usable=False, token_dead=False, message_id=7, must_post=False) is RouteKind.CHANNEL
    assert route_for(token_usable=True, token_dead=True, message_id=7, must_post=False) is RouteKind.CHANNEL
    assert route_for(token_usable=False, token_dead=False, message_id=None, must_post=False) is RouteKind.WEBHOOK
    assert route_for(token_usable=True, token_dead=True, message_id=None, must_post=False) is RouteKind.NEW_MESSAGE
    assert route_for(token_usable=True, token_dead=False, message_id=7, must_post=True) is RouteKind.NEW_MESSAGE


# --- against the emulator --------------------------------------------------------------------------------------


async def test_rapid_updates_coalesce_into_spaced_edits_and_the_final_state_lands(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    # Discord's 5 edits / 5 s against our 1 per 1.5 s, scaled down: 5 / 0.9 s against 1 per 0.2 s.
    emu.config.edit_bucket_limit, emu.config.edit_bucket_period = 5, 0.9
    # nextcord's default pacing: after five edits it holds the bucket for a whole second, and that is what spaces
    # the final edit (which does not wait out the editor's interval) from the last progress edit.
    started = await deferred_command(emu, run_nextcord, exact_ratelimits=False)
    editor = MessageEditor(started.client, started.target, min_interval=INTERVAL)
    before = len(emu.state.requests)

    slowest = 0.0
    for n in range(30):
        t = time.perf_counter()
        editor.update(state(n))
        slowest = max(slowest, time.perf_counter() - t)
        await asyncio.sleep(0.03)
    message_id = await editor.finish(FINAL)
    await editor.close()

    sent = edits(emu)[0:]
    assert all(r.index >= before for r in sent)
    assert 3 <= len(sent) <= 8, [r.json for r in sent]
    assert_spaced(sent, INTERVAL)
    assert [r.status for r in emu.state.requests[before:]] == [200] * len(emu.state.requests[before:])
    assert slowest < 0.005
    message = emu.message(message_id)
    assert message is emu.original_message(started.record)
    assert message.content == "done" and [b["custom_id"] for b in message.buttons] == ["dc1:reroll:abc"]
    assert [(a.filename, a.data) for a in message.attachments] == list(FINAL.files)
    assert [s.content for s in message.history][-1] == "done"
    contents = [s.content for s in message.history[1:-1]]
    assert contents == sorted(contents, key=lambda c: int(c.split()[1]))  # only ever forward, never a stale state
    assert all(r.json["allowed_mentions"] == {"parse": []} for r in sent)


async def test_a_new_preview_replaces_the_old_and_the_result_replaces_the_preview(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    emu.config.edit_bucket_period = 0.3
    started = await deferred_command(emu, run_nextcord)
    editor = MessageEditor(started.client, started.target, min_interval=0.05)
    message = emu.original_message(started.record)
    assert message is not None

    async def show(rendered: RenderedMessage) -> None:
        count = message.edit_count
        editor.update(rendered)
        await emu.wait_for(lambda: message.edit_count > count)

    await show(state(1, files=(("preview.jpg", b"first"),)))
    await show(state(2, files=(("preview.jpg", b"second"),)))
    assert [a.data for a in message.attachments] == [b"second"]
    await show(state(3, files=(("preview.jpg", b"second"),)))  # the same picture: not uploaded again
    assert edits(emu)[-1].files == () and [a.data for a in message.attachments] == [b"second"]
    await show(state(4, files=(("note.txt", b"kept too"),), keep_attachments=True))
    assert [a.data for a in message.attachments] == [b"second", b"kept too"]
    await show(state(5))  # no files, keep_attachments False: the preview goes
    assert message.attachments == []
    await editor.finish(FINAL)
    await editor.close()
    assert [a.filename for a in message.attachments] == ["cat_0.png", "cat_1.png"]


async def test_an_expired_token_switches_to_the_channel_route(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord)
    ids: list[int] = []
    editor = MessageEditor(started.client, started.target, min_interval=0.05, on_message_id=ids.append)
    editor.update(state(1))
    await until(lambda: editor.message_id is not None)

    emu.faults.expire_token(started.record)
    editor.update(state(2))
    message_id = await editor.finish(FINAL)
    await editor.close()

    routes = [(r.route, r.status) for r in edits(emu)]
    assert routes[0][1] == 200 and routes[1][1] == 401
    assert all(route.startswith("/channels/") and status == 200 for route, status in routes[2:])
    assert ids == [message_id] and message_id == started.record.original_message_id
    message = emu.message(message_id)
    assert message.content == "done" and len(message.attachments) == 2 and message.buttons


async def test_a_short_token_lifetime_is_survived(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    emu.faults.set_token_lifetime(0.4)
    emu.config.edit_bucket_period = 0.5
    started = await deferred_command(emu, run_nextcord)
    editor = MessageEditor(started.client, started.target, min_interval=0.1)
    for n in range(10):
        editor.update(state(n))
        await asyncio.sleep(0.08)
    message_id = await editor.finish(FINAL)
    await editor.close()
    assert message_id == started.record.original_message_id
    assert emu.message(message_id).content == "done"
    assert any(r.status == 401 for r in edits(emu)) and edits(emu)[-1].route.startswith("/channels/")


async def test_a_token_near_its_end_is_not_used_when_the_message_id_is_known(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord)
    target = EditTarget(
        channel_id=started.target.channel_id,
        message_id=started.record.original_message_id,
        application_id=started.target.application_id,
        token=started.target.token,
        token_created_at=time.time() - 15 * 60 + 30,  # 30 s left, inside the 60 s margin
    )
    editor = MessageEditor(started.client, target, min_interval=0.05)
    editor.update(state(1))
    await until(lambda: editor.edits == 1)
    await editor.finish(FINAL)
    await editor.close()
    assert [r.route for r in edits(emu)] == ["/channels/{channel_id}/messages/{message_id}"] * 2


async def test_a_token_dead_before_the_id_was_known_posts_a_fresh_message(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord)
    emu.faults.expire_token(started.record)
    moved: list[int] = []
    editor = MessageEditor(started.client, started.target, min_interval=0.05, on_message_moved=moved.append)

    message_id = await editor.finish(FINAL)
    await editor.close()

    assert moved == [message_id] and message_id != started.record.original_message_id
    message = emu.message(message_id)
    assert message.content == "done" and [a.data for a in message.attachments] == [b"\x89PNG one", b"\x89PNG two"]


async def test_server_errors_on_the_edit_route_are_retried_and_the_final_state_delivered(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord)
    emu.faults.server_error(WEBHOOK_EDIT, method="PATCH", count=3, status=503)
    editor = MessageEditor(started.client, started.target, min_interval=0.05, retry_base=0.05)

    message_id = await editor.finish(FINAL)
    await editor.close()

    assert [r.status for r in edits(emu)] == [503, 503, 503, 200]
    assert emu.message(message_id).content == "done"


async def test_a_progress_update_that_hit_a_5xx_is_sent_again_unless_a_newer_one_came(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord)
    emu.faults.server_error(WEBHOOK_EDIT, method="PATCH", count=1, status=503)
    editor = MessageEditor(started.client, started.target, min_interval=0.05)
    editor.update(state(1))
    await until(lambda: editor.edits == 1)
    await editor.close()
    assert [r.status for r in edits(emu)] == [503, 200]
    assert emu.original_message(started.record).content == "step 1"  # type: ignore[union-attr]


# Also with nextcord's default pacing (the bot's), which waits at least a second per bucket: slow.
@pytest.mark.parametrize("exact_ratelimits", [True, pytest.param(False, marks=pytest.mark.slow)])
async def test_a_tight_edit_bucket_shared_by_two_jobs_delays_edits_but_loses_nothing(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, exact_ratelimits: bool
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, exact_ratelimits=exact_ratelimits)
    other = await another_command(emu, started)
    # Two messages in one channel share its edit bucket: nextcord learns that from X-RateLimit-Bucket and
    # paces both (no 429 at all, usually); any 429 that still happens must be waited out.
    emu.config.edit_bucket_limit, emu.config.edit_bucket_period = 1, 0.15
    editors = [MessageEditor(s.client, s.target, min_interval=0.05) for s in (started, other)]
    for n in range(12):
        for editor in editors:
            editor.update(state(n))
        await asyncio.sleep(0.05)
    finals = [RenderedMessage(content=f"done {i}", components=BUTTONS) for i in range(2)]
    ids = await asyncio.gather(*(e.finish(f) for e, f in zip(editors, finals, strict=True)))
    for editor in editors:
        await editor.close()

    sent = edits(emu)
    for refused in [r for r in sent if r.status == 429]:
        retry = next(r for r in sent if r.index > refused.index and r.path == refused.path)
        assert retry.time - refused.end_time >= refused.response["retry_after"] - TOLERANCE
    assert [emu.message(i).content for i in ids] == ["done 0", "done 1"]
    assert_spaced(sorted(sent, key=lambda r: r.time), 0.15)  # the bucket's pace, across both editors
    assert all(emu.message(i).buttons for i in ids)


async def test_an_injected_429_storm_is_waited_out(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord)
    emu.faults.rate_limit(WEBHOOK_EDIT, method="PATCH", count=2, retry_after=0.1)
    editor = MessageEditor(started.client, started.target, min_interval=0.05)
    message_id = await editor.finish(FINAL)
    await editor.close()
    assert [r.status for r in edits(emu)] == [429, 429, 200]
    assert emu.message(message_id).content == "done"


async def test_a_message_too_old_to_edit_moves_to_a_fresh_message(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord)
    http = started.client.http
    real_request: Callable[..., Awaitable[Any]] = http.request
    refused: list[str] = []

    async def request(route: nextcord.http.Route, **kwargs: Any) -> Any:
        # Discord's answer to an edit of a message older than an hour that used up its edits.
        if route.method == "PATCH" and route.path.startswith("/channels/") and not refused:
            refused.append(route.path)
            response = SimpleNamespace(status=400, reason="Bad Request")
            raise nextcord.HTTPException(response, {"code": 30046, "message": "Maximum number of edits reached"})  # type: ignore[arg-type]
        return await real_request(route, **kwargs)

    http.request = request  # type: ignore[method-assign]
    old_id = started.record.original_message_id
    target = EditTarget(started.target.channel_id, old_id, started.target.application_id, None, 0.0)
    moved: list[int] = []
    editor = MessageEditor(started.client, target, min_interval=0.05, on_message_moved=moved.append)
    editor.update(state(1, files=(("preview.jpg", b"p"),)))
    await until(lambda: bool(moved))
    editor.update(state(2, files=(("preview.jpg", b"p"),)))
    await until(lambda: editor.edits == 2)
    message_id = await editor.finish(FINAL)
    await editor.close()

    assert refused and moved == [message_id] and message_id != old_id
    fresh = emu.message(message_id)
    assert fresh.message_reference is not None and fresh.message_reference["message_id"] == str(old_id)
    assert [s.content for s in fresh.history] == ["step 1", "step 2", "done"]
    assert [r.route for r in edits(emu)[-2:]] == ["/channels/{channel_id}/messages/{message_id}"] * 2


async def test_update_after_finish_is_ignored_and_finish_after_close_raises(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord)
    editor = MessageEditor(started.client, started.target, min_interval=0.05)
    message_id = await editor.finish(FINAL)
    assert await editor.finish(state(9)) == message_id  # the first final stands
    editor.update(state(10))
    await asyncio.sleep(0.1)
    await editor.close()
    assert emu.message(message_id).content == "done" and len(edits(emu)) == 1
    closed = MessageEditor(started.client, started.target)
    await closed.close()
    with pytest.raises(MessageEditError):
        await closed.finish(FINAL)
