"""The bot survives: restarts mid-job, tokens that expire, a crowd in one channel, ComfyUI failing or gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

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
    assert studio.bot is not None and studio.bot.services is not None
    return await studio.bot.services.store.by_owner(studio.discord.users[user].id, active_only=False)


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


def footer_or_text(message: StoredMessage) -> str:
    parts = [message.content or ""]
    for embed in message.embeds:
        parts += [embed.get("title", ""), embed.get("description", ""), (embed.get("footer") or {}).get("text", "")]
        parts += [f"{f.get('name', '')} {f.get('value', '')}" for f in embed.get("fields", [])]
    return "\n".join(parts)


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
