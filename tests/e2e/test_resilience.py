"""The bot survives: restarts mid-job, tokens that expire, a crowd in one channel, ComfyUI failing or gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace

import pytest

from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.jobs.state import Job, JobAction, JobState
from tests.e2e.studio import Studio
from tests.peers.discord.interactions import InteractionRecord
from tests.peers.discord.messages import StoredMessage

pytestmark = pytest.mark.timeout(90)

SMALL = {"width": 256, "height": 256}


async def generate(studio: Studio, user: str, prompt: str, **options: object) -> InteractionRecord:
    interaction = await studio.discord.send_slash_command(
        user, "general", "generate", {"prompt": prompt, "steps": 4, **SMALL, **options}
    )
    await studio.discord.wait_for_response(interaction)
    return interaction


async def jobs_of(studio: Studio, user: str) -> list[Job]:
    return await studio.stack.store.by_owner(studio.discord.users[user].id, active_only=False)


async def only_job(studio: Studio, user: str) -> Job:
    jobs = await jobs_of(studio, user)
    assert len(jobs) == 1, jobs
    return jobs[0]


async def wait_for_job(studio: Studio, user: str, states: set[JobState], timeout: float = 20.0) -> Job:  # noqa: ASYNC109
    """The user's first job in one of ``states`` (the store is polled: it is async)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next((j for j in await jobs_of(studio, user) if j.state in states), None)
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no job of {user} reached {sorted(states)} within {timeout}s")


def prompt_posts(studio: Studio) -> list[object]:
    return [r for r in studio.comfy.requests if r.method == "POST" and r.path.endswith("/prompt")]


def starts_of(studio: Studio, prompt_id: str) -> int:
    return sum(
        1
        for r in studio.comfy.ws_log
        if r.direction == "out" and r.type == "execution_start" and (r.data or {}).get("prompt_id") == prompt_id
    )


def results_in(messages: Sequence[StoredMessage]) -> list[StoredMessage]:
    return [m for m in messages if m.attachments and m.embeds and "Done" in m.embeds[0].get("title", "")]


def text_of(message: StoredMessage) -> str:
    parts = [message.content or ""]
    for embed in message.embeds:
        parts += [embed.get("title", ""), embed.get("description", ""), (embed.get("footer") or {}).get("text", "")]
        parts += [f"{f.get('name', '')} {f.get('value', '')}" for f in embed.get("fields", [])]
    return "\n".join(parts)


def ephemeral_replies(studio: Studio, interaction: InteractionRecord) -> list[str]:
    """What the user alone was told: an ephemeral first response or ephemeral follow-ups."""
    emu = studio.discord
    messages = [emu.original_message(interaction), *emu.followups(interaction)]
    return [text_of(m) for m in messages if m is not None and m.ephemeral and not m.deleted]


# -- restarts ----------------------------------------------------------------------------------------------------


async def test_job_running_at_a_restart_is_delivered_once_to_the_same_message(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.2
    await studio.start()
    interaction = await generate(studio, "alice", "a lighthouse at dawn", steps=12)
    running = await wait_for_job(studio, "alice", {JobState.RUNNING})
    progress_id = await studio.until(lambda: interaction.original_message_id, what="the progress message")

    await studio.restart()

    message = await studio.result(interaction)
    assert message.id == progress_id
    assert len(results_in(studio.discord.messages("general"))) == 1
    assert len(prompt_posts(studio)) == 1
    assert running.prompt_id is not None and starts_of(studio, running.prompt_id) == 1
    await wait_for_job(studio, "alice", {JobState.DELIVERED})


async def test_reroll_on_a_result_made_before_a_restart_starts_a_new_job_after_it(studio: Studio) -> None:
    await studio.start()
    first = await studio.result(await generate(studio, "alice", "a red bicycle"))
    before = await only_job(studio, "alice")

    await studio.restart()
    click = await studio.discord.click_button("bob", first, encode(ComponentAction.REROLL, before.id))
    await studio.discord.wait_for_response(click)

    reroll = await studio.result(click)
    assert reroll.id != first.id
    jobs = await jobs_of(studio, "bob")
    assert [(j.action, j.params["prompt"]) for j in jobs] == [(JobAction.REROLL, "a red bicycle")]


async def test_job_waiting_in_our_queue_at_a_restart_runs_after_it(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.2
    await studio.start()
    running = await generate(studio, "alice", "first in line", steps=10)
    await wait_for_job(studio, "alice", {JobState.RUNNING})
    waiting = await generate(studio, "bob", "second in line")
    await wait_for_job(studio, "bob", {JobState.WAITING})

    await studio.restart()

    await studio.result(running)
    message = await studio.result(waiting)
    assert message.id == waiting.original_message_id
    assert len(prompt_posts(studio)) == 2
    await wait_for_job(studio, "bob", {JobState.DELIVERED})


# -- interaction tokens ------------------------------------------------------------------------------------------


async def test_job_outliving_its_interaction_token_is_delivered_by_editing_the_channel_message(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.3
    studio.discord.faults.set_token_lifetime(2.0)
    await studio.start()
    interaction = await generate(studio, "alice", "a slow sunset", steps=12)

    message = await studio.result(interaction)

    emu = studio.discord
    assert any(r.status == 401 for r in emu.find_requests("PATCH", "/webhooks/*/messages/@original"))
    channel_edits = [r for r in emu.find_requests("PATCH", "/channels/*/messages/*") if r.status == 200]
    assert channel_edits and channel_edits[-1].path.endswith(f"/messages/{message.id}")
    assert channel_edits[-1].files and channel_edits[-1].files[0].filename.endswith(".png")
    assert len(results_in(emu.messages("general"))) == 1
    assert studio.responses_429() == []


# -- a crowd -----------------------------------------------------------------------------------------------------

CROWD = ("alice", "bob", "carol", "dave", "erin")


def with_cap(studio: Studio, per_user: int) -> None:
    limits = replace(studio.settings.limits, max_jobs_per_user=per_user)
    studio.settings = replace(studio.settings, limits=limits)


async def test_twenty_jobs_from_five_users_are_all_delivered_in_fair_order_without_a_429(studio: Studio) -> None:
    for name in CROWD[3:]:
        studio.discord.add_member(name)
    with_cap(studio, 4)
    studio.comfy.config.step_duration = 0.25  # the first job lasts until everyone has queued
    await studio.start()
    interactions: list[InteractionRecord] = []
    for user in CROWD:  # each user queues four at once: a FIFO would run them back to back
        for n in range(4):
            interactions.append(await generate(studio, user, f"{user}'s picture {n}", steps=2))
    await wait_for_job(studio, "erin", {JobState.WAITING}, timeout=10)
    studio.comfy.config.step_duration = 0.005

    for interaction in interactions:
        await studio.result(interaction, timeout=60)

    owners = {j.prompt_id: user for user in CROWD for j in await jobs_of(studio, user)}
    started = [
        owners[r.data["prompt_id"]] for r in studio.comfy.ws_log if r.direction == "out" and r.type == "execution_start"
    ]
    assert sorted(started) == sorted(u for u in CROWD for _ in range(4))
    for k in range(1, len(started) + 1):  # at every point, nobody is more than one round ahead of anyone
        counts = [started[:k].count(u) for u in CROWD]
        assert max(counts) - min(counts) <= 2, (k, started)
    assert studio.responses_429() == []


async def test_a_job_beyond_the_per_user_cap_is_refused_ephemerally_and_not_queued(studio: Studio) -> None:
    with_cap(studio, 2)
    studio.comfy.config.step_duration = 0.2
    await studio.start()
    await generate(studio, "bob", "one", steps=10)
    await generate(studio, "bob", "two")

    third = await generate(studio, "bob", "three")

    told = await studio.until(lambda: ephemeral_replies(studio, third), what="a refusal")
    assert "2 jobs" in told[0] and "/jobs" in told[0]
    assert len(await jobs_of(studio, "bob")) == 2
    message = studio.message(third)
    assert message is None or message.deleted


# -- ComfyUI failing or gone -------------------------------------------------------------------------------------


async def test_a_comfyui_node_error_ends_the_message_in_a_short_failed_state(studio: Studio) -> None:
    studio.comfy.faults.fail_node(class_type="KSampler", message="CUDA out of memory", exception_type="OOMError")
    await studio.start()
    interaction = await generate(studio, "carol", "a castle in the clouds")

    failed = await wait_for_job(studio, "carol", {JobState.FAILED})

    message = await studio.until(
        lambda: (m := studio.message(interaction)) and "fail" in text_of(m).lower() and not m.buttons and m,
        what="a failed message without buttons",
    )
    text = text_of(message)
    assert "CUDA out of memory" in text and "What to do" in text and failed.id in text
    assert len(message.embeds[0].get("description", "")) < 400
    assert studio.responses_429() == []


async def test_comfyui_down_at_submit_keeps_the_job_waiting_and_says_so_then_runs_it_when_back(
    studio: Studio,
) -> None:
    await studio.comfy.go_down()
    await studio.start()

    interaction = await generate(studio, "bob", "a quiet harbour")

    waiting = await studio.until(
        lambda: (m := studio.message(interaction)) and m.embeds and m, what="the waiting message"
    )
    assert "not answering" in text_of(waiting) and "as soon as one is back" in text_of(waiting)
    assert [b["label"] for b in waiting.buttons] == ["Cancel"]
    assert (await only_job(studio, "bob")).state is JobState.WAITING

    await studio.comfy.come_up()
    message = await studio.result(interaction)
    assert message.id == waiting.id


async def test_comfyui_gone_before_the_pool_noticed_fails_the_job_with_a_plain_message(studio: Studio) -> None:
    await studio.start()
    await studio.comfy.go_down()  # the pool still thinks it is up: the job is sent there and cannot reach it

    interaction = await generate(studio, "bob", "a quiet harbour")

    failed = await wait_for_job(studio, "bob", {JobState.FAILED})
    message = await studio.until(
        lambda: (m := studio.message(interaction)) and "Failed" in text_of(m) and m, what="the failed message"
    )
    assert "image server" in text_of(message) and "try again" in text_of(message).lower()
    assert failed.started_at is None and prompt_posts(studio) == []
