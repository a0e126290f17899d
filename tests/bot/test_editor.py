"""The message editor against the Discord emulator: our own REST adapter paced by the bucket book.

A real nextcord client answers a slash command with a defer (as /generate does); the editor then edits that
message through ``DiscordRest`` and a ``Pacer``, as the bot does. Coalescing and spacing, drawing at send time,
identical edits skipped, files replacing files, token expiry, 5xx, a tight channel bucket shared by two messages
(paced, no 429), injected 429s obeyed, and a message too old to edit (30046: the emulator has no such fault, so
that one test raises Discord's answer from a thin wrapper around our own ``DiscordRest.send``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import nextcord
import pytest

from discomfy.bot.editor import EditTarget, Failure, MessageEditError, MessageEditor, RouteKind, classify, route_for
from discomfy.bot.pacing import Pacer
from discomfy.bot.ratelimits import BucketBook
from discomfy.bot.render_job import RenderedMessage
from discomfy.bot.rest import DiscordHTTPError, DiscordRest, Request
from tests.peers.discord import DiscordEmulator, InteractionRecord, NextcordRunner, RequestRecord

WEBHOOK_EDIT = "/webhooks/*/messages/@original"
CHANNEL_EDIT = "/channels/*/messages/*"
BUTTONS = ({"type": 1, "components": [{"type": 2, "style": 1, "label": "Reroll", "custom_id": "dc1:reroll:abc"}]},)
INTERVAL = 0.2
TOLERANCE = 0.03
#: Discord's buckets on a twentieth of its time: what the book learns from the headers scales with them.
pytestmark = pytest.mark.discord_time_scale(0.05)


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
    rest: DiscordRest
    pacer: Pacer

    def editor(self, target: EditTarget | None = None, **options: Any) -> MessageEditor:
        return MessageEditor(self.rest, target or self.target, pace=self.pacer.turn, **options)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def deferred_command(
    emu: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> Started:
    """A real slash command answered with a defer, as /generate does; its token drives the editor."""
    intents = nextcord.Intents.none()
    intents.guilds = True
    client = nextcord.Client(intents=intents, default_guild_ids=[emu.guild.id])
    interactions: asyncio.Queue[nextcord.Interaction] = asyncio.Queue()

    @client.slash_command(description="Make an image")
    async def generate(interaction: nextcord.Interaction) -> None:
        await interaction.response.defer()
        interactions.put_nowait(interaction)

    await run_nextcord(client)
    rest = DiscordRest(session, base=emu.api_base, token=emu.bot_token, book=BucketBook())
    first = Started(client, None, None, interactions, rest, Pacer(rest.book))  # type: ignore[arg-type]
    return await another_command(emu, first)


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
    return Started(started.client, record, target, started.interactions, started.rest, started.pacer)


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
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    editor = started.editor(min_interval=INTERVAL)
    before = len(emu.state.requests)

    slowest = 0.0
    for n in range(30):
        t = time.perf_counter()
        editor.update(state(n))
        slowest = max(slowest, time.perf_counter() - t)
        await asyncio.sleep(0.03)
    message_id = await editor.finish(FINAL)
    await editor.close()

    sent = edits(emu)
    assert all(r.index >= before for r in sent)
    assert 3 <= len(sent) <= 8, [r.json for r in sent]
    assert_spaced(sent[:-1], INTERVAL)  # progress keeps the message's pace; the final one goes at once
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
    assert editor.attachment_urls.keys() == {"cat_0.png", "cat_1.png"}  # from the answer: no read-back needed


async def test_the_state_is_drawn_when_its_edit_is_sent_not_when_it_was_posted(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    editor = started.editor(min_interval=0.3)
    drawn: list[float] = []

    async def draw() -> RenderedMessage:
        drawn.append(time.monotonic())
        return state(len(drawn))

    editor.update(state(0))
    await until(lambda: editor.edits == 1)
    posted = time.monotonic()
    editor.update(draw)  # must wait out the message's interval: drawn then, not now
    await until(lambda: editor.edits == 2)
    await editor.close()
    assert len(drawn) == 1 and drawn[0] - posted >= 0.3 - TOLERANCE - (posted - edits(emu)[0].time)


async def test_an_edit_identical_to_what_the_message_shows_is_skipped(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    editor = started.editor(min_interval=0.05)
    for _ in range(3):
        editor.update(state(1, files=(("preview.jpg", b"same"),)))
        await until(lambda: editor.edits + editor.skipped >= 1)
        await asyncio.sleep(0.08)
    editor.update(state(2))
    await until(lambda: editor.edits == 2)
    await editor.close()
    assert [r.json["content"] for r in edits(emu)] == ["step 1", "step 2"]
    assert editor.skipped == 2


async def test_a_new_preview_replaces_the_old_and_the_result_replaces_the_preview(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    editor = started.editor(min_interval=0.05)
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
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    ids: list[int] = []
    editor = started.editor(min_interval=0.05, on_message_id=ids.append)
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
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    emu.faults.set_token_lifetime(0.4)
    started = await deferred_command(emu, run_nextcord, session)
    editor = started.editor(min_interval=0.1)
    for n in range(10):
        editor.update(state(n))
        await asyncio.sleep(0.08)
    message_id = await editor.finish(FINAL)
    await editor.close()
    assert message_id == started.record.original_message_id
    assert emu.message(message_id).content == "done"
    assert any(r.status == 401 for r in edits(emu)) and edits(emu)[-1].route.startswith("/channels/")


async def test_a_token_near_its_end_is_not_used_when_the_message_id_is_known(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    target = EditTarget(
        channel_id=started.target.channel_id,
        message_id=started.record.original_message_id,
        application_id=started.target.application_id,
        token=started.target.token,
        token_created_at=time.time() - 15 * 60 + 30,  # 30 s left, inside the 60 s margin
    )
    editor = started.editor(target, min_interval=0.05)
    editor.update(state(1))
    await until(lambda: editor.edits == 1)
    await editor.finish(FINAL)
    await editor.close()
    assert [r.route for r in edits(emu)] == ["/channels/{channel_id}/messages/{message_id}"] * 2


async def test_a_token_dead_before_the_id_was_known_posts_a_fresh_message(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    emu.faults.expire_token(started.record)
    moved: list[int] = []
    editor = started.editor(min_interval=0.05, on_message_moved=moved.append)

    message_id = await editor.finish(FINAL)
    await editor.close()

    assert moved == [message_id] and message_id != started.record.original_message_id
    message = emu.message(message_id)
    assert message.content == "done" and [a.data for a in message.attachments] == [b"\x89PNG one", b"\x89PNG two"]


async def test_server_errors_on_the_edit_route_are_retried_and_the_final_state_delivered(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    emu.faults.server_error(WEBHOOK_EDIT, method="PATCH", count=3, status=503)
    editor = started.editor(min_interval=0.05, retry_base=0.05)

    message_id = await editor.finish(FINAL)
    await editor.close()

    assert [r.status for r in edits(emu)] == [503, 503, 503, 200]
    assert emu.message(message_id).content == "done"


async def test_a_progress_update_that_hit_a_5xx_is_sent_again_unless_a_newer_one_came(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    emu.faults.server_error(WEBHOOK_EDIT, method="PATCH", count=1, status=503)
    editor = started.editor(min_interval=0.05)
    editor.update(state(1))
    await until(lambda: editor.edits == 1)
    await editor.close()
    assert [r.status for r in edits(emu)] == [503, 200]
    assert emu.original_message(started.record).content == "step 1"  # type: ignore[union-attr]


async def test_two_messages_edited_in_one_channel_share_its_bucket_without_a_429(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    """Bot-token edits of two messages in one channel use one bucket: the book learns it from the first answer
    and the pacer spaces both editors by it, so nothing is refused and nothing is lost."""
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    other = await another_command(emu, started)
    targets = [
        EditTarget(s.target.channel_id, s.record.original_message_id, s.target.application_id, None, 0.0)
        for s in (started, other)
    ]
    editors = [started.editor(t, min_interval=0.05) for t in targets]
    for n in range(12):
        for editor in editors:
            editor.update(state(n))
        await asyncio.sleep(0.05)
    finals = [RenderedMessage(content=f"done {i}", components=BUTTONS) for i in range(2)]
    ids = await asyncio.gather(*(e.finish(f) for e, f in zip(editors, finals, strict=True)))
    for editor in editors:
        await editor.close()

    sent = edits(emu)
    assert [r.status for r in sent] == [200] * len(sent)
    assert [emu.message(i).content for i in ids] == ["done 0", "done 1"]
    assert all(emu.message(i).buttons for i in ids)


async def test_an_injected_429_is_obeyed_for_its_retry_after_and_not_repeated_in_a_storm(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    emu.faults.rate_limit(WEBHOOK_EDIT, method="PATCH", count=2, retry_after=0.2)
    editor = started.editor(min_interval=0.05, retry_base=0.01)
    message_id = await editor.finish(FINAL)
    await editor.close()
    sent = edits(emu)
    assert [r.status for r in sent] == [429, 429, 200]
    for refused, retry in itertools.pairwise(sent):
        assert retry.time - refused.end_time >= refused.response["retry_after"] - TOLERANCE
    assert emu.message(message_id).content == "done"
    assert started.rest.book.refusals == {"user": 2}


async def test_a_message_too_old_to_edit_moves_to_a_fresh_message(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    rest = started.rest
    real_send = rest.send
    refused: list[str] = []

    async def send(request: Request) -> Any:
        # Discord's answer to an edit of a message older than an hour that used up its edits.
        if request.method == "PATCH" and request.template.startswith("/channels/") and not refused:
            refused.append(request.template)
            rest.book.release(request.key)
            raise DiscordHTTPError(400, 30046, "Maximum number of edits to messages older than 1 hour reached.")
        return await real_send(request)

    rest.send = send  # type: ignore[method-assign]
    old_id = started.record.original_message_id
    target = EditTarget(started.target.channel_id, old_id, started.target.application_id, None, 0.0)
    moved: list[int] = []
    editor = started.editor(target, min_interval=0.05, on_message_moved=moved.append)
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
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    editor = started.editor(min_interval=0.05)
    message_id = await editor.finish(FINAL)
    assert await editor.finish(state(9)) == message_id  # the first final stands
    editor.update(state(10))
    await asyncio.sleep(0.1)
    await editor.close()
    assert emu.message(message_id).content == "done" and len(edits(emu)) == 1
    closed = started.editor()
    await closed.close()
    with pytest.raises(MessageEditError):
        await closed.finish(FINAL)


async def test_no_token_reaches_the_log(
    discord_emulator: DiscordEmulator,
    run_nextcord: NextcordRunner,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    emu.faults.server_error(WEBHOOK_EDIT, method="PATCH", count=1, status=503)
    emu.faults.expire_token(started.record)
    with caplog.at_level("DEBUG"):
        editor = started.editor(min_interval=0.05, retry_base=0.01)
        await editor.finish(FINAL)
        await editor.close()
    assert started.target.token and all(started.target.token not in r.getMessage() for r in caplog.records)
    assert all(emu.bot_token not in r.getMessage() for r in caplog.records)


async def test_a_phase_change_waits_a_fraction_of_the_interval_plain_progress_all_of_it(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    editor = started.editor(min_interval=1.0)
    editor.update(state(1), phase="queued")
    await until(lambda: editor.edits == 1)
    editor.update(state(2), phase="queued")  # the bar moved: waits the whole second
    editor.update(state(3), phase="running")  # ComfyUI started it: news, goes after a fifth of it
    await until(lambda: editor.edits == 2)
    editor.update(state(4), phase="running")
    await until(lambda: editor.edits == 3, timeout=3.0)
    await editor.close()
    first, second, third = edits(emu)
    assert second.json["content"] == "step 3"
    assert 0.2 - TOLERANCE <= second.time - first.time < 0.6
    assert third.time - second.time >= 1.0 - TOLERANCE


async def test_close_waits_for_a_message_already_sent_so_its_id_is_kept(
    discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner, session: aiohttp.ClientSession
) -> None:
    """A stopping bot whose fresh message is on its way: Discord makes it, the answer comes late. ``close`` waits
    for it, so the id reaches ``on_message_id`` (the job row) and a restarted bot edits that message instead of
    posting a second one beside a stale first."""
    emu = discord_emulator
    started = await deferred_command(emu, run_nextcord, session)
    target = EditTarget(started.target.channel_id, None, started.target.application_id, None, 0.0)
    emu.faults.slow("/channels/*/messages", method="POST", delay=1.0)
    ids: list[int] = []
    editor = started.editor(target, min_interval=0.05, on_message_id=ids.append)
    editor.update(state(1))

    def made() -> list[int]:
        return [m.id for m in emu.messages(target.channel_id) if m.content == "step 1"]

    await until(made)  # Discord has made it; its answer is still on the way
    await editor.close()

    assert ids == made() and len(ids) == 1
