"""Who may do what, where: hostile presses, forms and commands against the real bot, end to end.

A modified Discord client can name any custom_id on any message it sees, submit any form values, and send them
from another guild the bot shares or from a DM with the bot (``tests/peers/discord/interactions.py``: ``forge_*``,
``other_guild``, ``dm_place``). The rules under test (``jobs/admission.py``, enforced in ``ResultActions.handle``
for every button and form and in each cog's ``cog_application_command_check`` for every command):

- a job is acted on only in its own guild (never from another guild, never from a DM);
- a press acts only from the job's own message (or a message of ours carrying that very button), so Delete never
  removes someone else's message;
- the channel and role allow-lists apply to every command and button, Cancel and Delete included;
- form values are parsed as numbers and bounded by the manifest, prompts by ``max_prompt_length``, however the
  request came in;
- what users wrote is shown escaped everywhere: no working masked link, no live ``@everyone``.

In the emulator ``alice`` is a Moderator (Manage Messages); ``bob`` and ``carol`` are plain members. In the other
guild alice is a Moderator too.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any

import pytest

from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.config import PermissionSettings
from discomfy.jobs.state import Job, JobState
from tests.e2e.studio import Studio
from tests.peers.discord.interactions import (
    InteractionRecord,
    ResponseType,
    dm_place,
    forge_command,
    forge_modal,
    forge_press,
    other_guild,
    post_as,
)
from tests.peers.discord.messages import StoredMessage

pytestmark = pytest.mark.timeout(60)

SMALL = {"steps": 2, "width": 256, "height": 256}
HOSTILE_PROMPT = "[click me](https://evil.example/steal) @everyone @here <@123456789> **bold** `code`"


# --- helpers -----------------------------------------------------------------------------------------------


def job_id_of(message: StoredMessage) -> str:
    found = re.search(r"job (\w+)", message.embeds[0]["footer"]["text"])
    assert found, message.embeds
    return found.group(1)


async def job_of(studio: Studio, message: StoredMessage) -> Job:
    return await studio.stack.store.get(job_id_of(message))


def title(message: StoredMessage | None) -> str:
    return message.embeds[0].get("title", "") if message and message.embeds else ""


async def generate(studio: Studio, user: str = "bob", channel: str = "general", **options: Any) -> InteractionRecord:
    interaction = await studio.discord.send_slash_command(
        user, channel, "generate", {"prompt": "a fox in the snow", **SMALL, **options}
    )
    await studio.discord.wait_for_response(interaction)
    return interaction


async def result_of(studio: Studio, user: str = "bob", channel: str = "general", **options: Any) -> StoredMessage:
    """The result message, once the job's row says delivered too."""
    message = await studio.result(await generate(studio, user, channel, **options))
    for _ in range(500):
        if (await job_of(studio, message)).state is JobState.DELIVERED:
            return message
        await asyncio.sleep(0.02)
    raise TimeoutError("the job was not marked delivered")


async def running(studio: Studio, interaction: InteractionRecord) -> StoredMessage:
    def now_running() -> StoredMessage | None:
        message = studio.message(interaction)
        return message if "Running" in title(message) and message and message.buttons else None

    return await studio.until(now_running, 20.0, "a running job")


async def answer(studio: Studio, interaction: InteractionRecord) -> StoredMessage:
    """The finished message that answers an interaction (an ephemeral reply, or a deferred one filled in)."""

    def ready() -> StoredMessage | None:
        followups = studio.discord.followups(interaction)
        if followups:
            return followups[-1]
        message = studio.discord.original_message(interaction)
        return message if message is not None and not message.loading else None

    return await studio.until(ready, 20.0, "an answer")


def text_of(message: StoredMessage) -> str:
    parts = [message.content]
    for embed in message.embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f.get('name', '')} {f.get('value', '')}" for f in embed.get("fields", [])]
    return "\n".join(parts)


async def refusal(studio: Studio, interaction: InteractionRecord) -> str:
    message = await answer(studio, interaction)
    assert message.ephemeral, message
    assert interaction.response_type is ResponseType.CHANNEL_MESSAGE_WITH_SOURCE, interaction.responses
    return text_of(message)


async def jobs_of(studio: Studio, user: str) -> list[Job]:
    return await studio.stack.store.by_owner(studio.discord.users[user].id, active_only=False)


def nothing_queued(studio: Studio, prompts_before: int) -> bool:
    return len(studio.comfy.queue.history) == prompts_before and not studio.comfy.queue.pending


def visible(studio: Studio, channel: str = "general") -> list[StoredMessage]:
    return [m for m in studio.discord.messages(channel) if not m.ephemeral]


#: An unescaped masked link ``[text](url)`` (our own links to messages aside), and a live mention the prompt made
#: (the bot's own mention of a job's owner is not the prompt's).
MASKED_LINK = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\((?!https://discord\.com/channels/)")
LIVE_MENTION = re.compile(r"@(everyone|here)|(?<!\\)<@123456789>")


def assert_escaped(text: str) -> None:
    assert "evil.example" in text, text  # the prompt is shown, …
    assert not MASKED_LINK.search(text), text  # … but never as a working link
    assert not LIVE_MENTION.search(text), text


# --- a job's actions only in its own guild -----------------------------------------------------------------


@pytest.mark.parametrize(
    "action", [ComponentAction.INFO, ComponentAction.REROLL, ComponentAction.UPSCALE, ComponentAction.EDIT]
)
async def test_a_press_from_another_guild_is_refused(studio: Studio, action: ComponentAction) -> None:
    await studio.start()
    source = await result_of(studio, "bob", prompt="bob's secret prompt")
    prompts_before = len(studio.comfy.queue.history)
    index = 0 if action is ComponentAction.UPSCALE else None

    # Even pressed on the job's real message (Discord's own copy, with that very button on it).
    press = await forge_press(
        studio.discord, "carol", source, encode(action, job_id_of(source), index), other_guild(studio.discord)
    )

    text = await refusal(studio, press)
    assert "another server" in text and "secret" not in text
    assert press.modal is None
    assert len(await jobs_of(studio, "carol")) == 0 and nothing_queued(studio, prompts_before)


@pytest.mark.parametrize("action", [ComponentAction.INFO, ComponentAction.REROLL, ComponentAction.DELETE])
async def test_a_press_from_a_dm_on_a_guild_job_is_refused_even_for_its_owner(
    studio: Studio, action: ComponentAction
) -> None:
    await studio.start()
    source = await result_of(studio, "bob", prompt="bob's secret prompt")
    prompts_before = len(studio.comfy.queue.history)

    press = await forge_press(
        studio.discord, "bob", source, encode(action, job_id_of(source)), dm_place(studio.discord, "bob")
    )

    text = await refusal(studio, press)
    assert "direct messages" in text and "secret" not in text
    assert len(await jobs_of(studio, "bob")) == 1 and nothing_queued(studio, prompts_before)
    assert not studio.discord.message(source.id).deleted


async def test_a_moderator_of_another_guild_can_neither_cancel_nor_delete(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.1
    await studio.start()
    finished = await result_of(studio, "bob")
    started = await generate(studio, "bob", prompt="slow fox", steps=60)
    progress = await running(studio, started)
    elsewhere = other_guild(studio.discord)

    cancel = await forge_press(
        studio.discord, "alice", progress, encode(ComponentAction.CANCEL, job_id_of(progress)), elsewhere
    )
    delete = await forge_press(
        studio.discord, "alice", finished, encode(ComponentAction.DELETE, job_id_of(finished)), elsewhere
    )

    assert "another server" in await refusal(studio, cancel)
    assert "another server" in await refusal(studio, delete)
    assert (await job_of(studio, progress)).state in (JobState.QUEUED, JobState.RUNNING, JobState.SUBMITTING)
    assert not studio.discord.message(finished.id).deleted


@pytest.mark.parametrize("where", ["dm", "other guild"])
async def test_show_from_a_dm_or_another_guild_posts_nothing(studio: Studio, where: str) -> None:
    await studio.start()
    source = await result_of(studio, "bob", prompt="bob's secret prompt")
    place = dm_place(studio.discord, "carol") if where == "dm" else other_guild(studio.discord)

    show = await forge_command(studio.discord, "carol", "show", {"job_id": job_id_of(source)}, place)

    text = await refusal(studio, show)
    assert "secret" not in text and ("server" in text)
    assert not studio.discord.messages(place.channel, include_deleted=True)[1:], "only the refusal"
    assert not any(m.attachments for m in studio.discord.messages(place.channel))


async def test_jobs_lists_only_the_jobs_of_this_guild(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.1
    await studio.start()
    started = await generate(studio, "bob", prompt="slow guild fox", steps=60)
    await running(studio, started)

    here = await studio.discord.send_slash_command("bob", "general", "jobs")
    elsewhere = await forge_command(studio.discord, "bob", "jobs", {}, other_guild(studio.discord))

    assert "slow guild fox" in text_of(await answer(studio, here))
    listing = await answer(studio, elsewhere)
    assert "no queued or running jobs" in text_of(listing) and not listing.buttons


# --- Delete removes only the job's own message -------------------------------------------------------------


async def test_delete_naming_my_job_on_someone_elses_message_deletes_nothing(studio: Studio) -> None:
    await studio.start()
    mine = await result_of(studio, "bob")
    carols = post_as(studio.discord, "carol", "general", "carol's own words")

    press = await forge_press(studio.discord, "bob", carols, encode(ComponentAction.DELETE, job_id_of(mine)))

    assert "doesn't belong to this message" in await refusal(studio, press)
    assert not studio.discord.message(carols.id).deleted and not studio.discord.message(mine.id).deleted


async def test_delete_naming_my_job_on_another_jobs_result_deletes_nothing(studio: Studio) -> None:
    await studio.start()
    mine = await result_of(studio, "bob", prompt="bob's fox")
    alices = await result_of(studio, "alice", prompt="alice's fox")

    press = await forge_press(studio.discord, "bob", alices, encode(ComponentAction.DELETE, job_id_of(mine)))

    assert "doesn't belong to this message" in await refusal(studio, press)
    assert not studio.discord.message(alices.id).deleted and not studio.discord.message(mine.id).deleted


async def test_a_reroll_naming_a_job_on_someone_elses_message_starts_nothing(studio: Studio) -> None:
    await studio.start()
    bobs = await result_of(studio, "bob")
    carols = post_as(studio.discord, "carol", "general", "hello")
    prompts_before = len(studio.comfy.queue.history)

    press = await forge_press(studio.discord, "carol", carols, encode(ComponentAction.REROLL, job_id_of(bobs)))

    assert "doesn't belong to this message" in await refusal(studio, press)
    assert len(await jobs_of(studio, "carol")) == 0 and nothing_queued(studio, prompts_before)


# --- forged custom_ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "custom_id",
    [
        "dc1:info:" + "0" * 32,  # a job that does not exist
        "dc1:reroll:" + "f" * 64,  # the longest job id the codec takes
        "dc1:upscale:" + "0" * 32 + ":7",
    ],
)
async def test_a_custom_id_naming_no_job_is_refused_politely(studio: Studio, custom_id: str) -> None:
    await studio.start()
    source = await result_of(studio, "bob")
    prompts_before = len(studio.comfy.queue.history)

    press = await forge_press(studio.discord, "carol", source, custom_id)

    text = await refusal(studio, press)
    assert "reference" not in text, "a refusal, not an internal error"
    assert nothing_queued(studio, prompts_before) and len(await jobs_of(studio, "carol")) == 0


async def test_garbage_custom_ids_are_ignored_without_an_error(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, "bob")
    job_id = job_id_of(source)
    garbage = [
        "dc1:info:" + job_id + ":1:2",
        "dc1:explode:" + job_id,
        "dc1:info:../../" + job_id,
        "dc1:upscale:" + job_id + ":100",  # past MAX_INDEX
        "dc1:info:" + "x" * 200,
        "dc9:info:" + job_id,
        "",
    ]
    for custom_id in garbage:
        await forge_press(studio.discord, "carol", source, custom_id)
    await asyncio.sleep(0.5)

    # Nothing of ours answered them, and nothing showed the job's prompt to carol.
    for interaction in studio.discord.interactions[-len(garbage) :]:
        for response in interaction.responses:
            assert "a fox in the snow" not in str(response.data)
    assert len(await jobs_of(studio, "carol")) == 0


async def test_upscale_of_an_output_index_the_job_does_not_have_starts_nothing(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, "bob")
    prompts_before = len(studio.comfy.queue.history)
    custom_id = encode(ComponentAction.UPSCALE, job_id_of(source), 99)

    # The form itself may open (the press names a real job); its submit finds no 100th picture.
    submit = await forge_modal(studio.discord, "carol", source, custom_id, {"scale": "2"})

    message = await answer(studio, submit)
    assert message.ephemeral and "reference" not in text_of(message), text_of(message)
    assert "can't find that result" in text_of(message) or "doesn't belong" in text_of(message)
    assert nothing_queued(studio, prompts_before)
    assert [m.id for m in visible(studio)] == [source.id], "no thinking… message left behind"


async def test_cancel_by_a_stranger_naming_a_running_job_from_its_own_message_is_refused(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.1
    await studio.start()
    started = await generate(studio, "bob", prompt="slow fox", steps=60)
    progress = await running(studio, started)

    press = await forge_press(studio.discord, "carol", progress, encode(ComponentAction.CANCEL, job_id_of(progress)))

    assert "Only the person who started this job" in await refusal(studio, press)
    assert (await job_of(studio, progress)).state is JobState.RUNNING


# --- form values ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"scale": "abc"},
        {"scale": "9"},
        {"scale": "-1"},
        {"scale": "nan"},
        {"scale": "inf"},
        {"scale": "1e308"},
        {"scale": "1_0"},
        {"scale": "٣"},  # an Arabic-Indic three: Python's float() takes it
        {"scale": "2" * 5000},
        {"scale": "[2](https://evil.example) @everyone"},
    ],
)
async def test_upscale_form_values_out_of_bounds_or_not_numbers_start_nothing(
    studio: Studio, values: dict[str, str]
) -> None:
    await studio.start()
    source = await result_of(studio, "bob")
    prompts_before = len(studio.comfy.queue.history)

    submit = await forge_modal(
        studio.discord, "bob", source, encode(ComponentAction.UPSCALE, job_id_of(source), 0), values
    )

    text = await refusal(studio, submit)
    assert "between 1 and 4" in text, text
    assert "evil.example" not in text and "@everyone" not in text
    assert len(await jobs_of(studio, "bob")) == 1 and nothing_queued(studio, prompts_before)


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"frames": "1000000"}, "between 1 and 25"),
        ({"frames": "2.5"}, "whole number"),
        ({"motion": "0"}, "between 1 and 255"),
        ({"strength": "-0.5"}, "between 0 and 1"),
        ({"fps": "999"}, "between 1 and 30"),
        # The emulator has only SVD's models: the form is SVD's, which takes no prompt; one forged in is refused.
        ({"frames": "14", "prompt": "spin"}, "takes no 'Motion prompt'"),
        ({"frames": "14", "steps": "999"}, "no 'steps'"),  # a field no Animate form has is never read
    ],
)
async def test_animate_form_values_out_of_bounds_start_nothing(
    studio: Studio, values: dict[str, str], said: str
) -> None:
    await studio.start()
    source = await result_of(studio, "bob")
    prompts_before = len(studio.comfy.queue.history)

    submit = await forge_modal(
        studio.discord, "bob", source, encode(ComponentAction.ANIMATE, job_id_of(source), 0), values
    )

    if said == "no 'steps'":
        # Extra inputs are ignored: the job that starts has the manifest's steps.
        message = await answer(studio, submit)
        assert "started" in text_of(message), text_of(message)
        jobs = await jobs_of(studio, "bob")
        animation = next(j for j in jobs if j.action.value == "animate")
        assert animation.workflow == "img2vid" and animation.params.get("steps") == 20
        return
    text = await refusal(studio, submit)
    assert said in text, text
    assert len(await jobs_of(studio, "bob")) == 1 and nothing_queued(studio, prompts_before)


async def test_an_edited_prompt_past_the_limit_is_refused_however_it_arrives(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, "bob")
    most = studio.settings.limits.max_prompt_length
    prompts_before = len(studio.comfy.queue.history)

    # The form says max_length; a hostile client ignores it.
    submit = await forge_modal(
        studio.discord, "bob", source, encode(ComponentAction.EDIT, job_id_of(source)), {"prompt": "x" * (most + 1)}
    )

    assert f"the most is {most}" in await refusal(studio, submit)
    assert len(await jobs_of(studio, "bob")) == 1 and nothing_queued(studio, prompts_before)


async def test_an_edit_of_a_job_whose_workflow_has_no_prompt_is_refused(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, "bob")
    upscale_id = encode(ComponentAction.UPSCALE, job_id_of(source), 0)
    upscaled = await studio.result(await forge_modal(studio.discord, "bob", source, upscale_id, {"scale": "2"}))
    prompts_before = len(studio.comfy.queue.history)

    submit = await forge_modal(
        studio.discord, "bob", upscaled, encode(ComponentAction.EDIT, job_id_of(upscaled)), {"prompt": "a cat"}
    )

    assert "no 'prompt' option" in await refusal(studio, submit)
    assert nothing_queued(studio, prompts_before)


# --- allow-lists on every command and button --------------------------------------------------------------------

COMMANDS: list[tuple[str, dict[str, Any]]] = [
    ("help", {}),
    ("status", {}),
    ("jobs", {}),
    ("show", {"job_id": "0" * 32}),
    ("generate", {"prompt": "a fox"}),
    ("animate", {"frames": 2}),
]

#: A tiny PNG (1×1) for ``/animate``'s required picture.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc0000003010100c9fe92ef"
    "0000000049454e44ae426082"
)


def command_options(studio: Studio, name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The command's options, with an uploaded picture for ``/animate``."""
    if name != "animate":
        return options
    return {**options, "image": studio.discord.add_upload("fox.png", PNG, "image/png")}


async def test_the_channel_allow_list_refuses_every_command_elsewhere(studio: Studio) -> None:
    renders = studio.discord.channels["renders"].id
    studio.settings = replace(studio.settings, permissions=PermissionSettings(allowed_channels=(renders,)))
    await studio.start()

    for name, options in COMMANDS:
        refused = await studio.discord.send_slash_command(
            "bob", "general", name, command_options(studio, name, options)
        )
        assert f"<#{renders}>" in await refusal(studio, refused), name
        allowed = await studio.discord.send_slash_command(
            "bob", "renders", name, command_options(studio, name, options)
        )
        assert "I don't take requests" not in text_of(await answer(studio, allowed)), name


async def test_the_role_allow_list_refuses_every_command_and_button_to_members_without_the_role(
    studio: Studio,
) -> None:
    moderator = studio.discord.roles["Moderator"].id
    studio.settings = replace(studio.settings, permissions=PermissionSettings(allowed_roles=(moderator,)))
    await studio.start()
    source = await result_of(studio, "alice")
    prompts_before = len(studio.comfy.queue.history)

    for name, options in COMMANDS:
        refused = await studio.discord.send_slash_command(
            "bob", "general", name, command_options(studio, name, options)
        )
        assert f"<@&{moderator}>" in await refusal(studio, refused), name
    for action in ComponentAction:
        index = 0 if action in (ComponentAction.UPSCALE, ComponentAction.ANIMATE) else None
        press = await forge_press(studio.discord, "bob", source, encode(action, job_id_of(source), index))
        assert f"<@&{moderator}>" in await refusal(studio, press), action
    submit = await forge_modal(
        studio.discord, "bob", source, encode(ComponentAction.UPSCALE, job_id_of(source), 0), {"scale": "2"}
    )
    assert f"<@&{moderator}>" in await refusal(studio, submit)
    assert nothing_queued(studio, prompts_before) and not studio.discord.message(source.id).deleted


async def test_cancel_and_delete_obey_a_channel_allow_list_set_after_the_job(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.1
    await studio.start()
    finished = await result_of(studio, "bob")
    progress = await running(studio, await generate(studio, "bob", prompt="slow fox", steps=60))
    renders = studio.discord.channels["renders"].id
    studio.stack.service.limits.permissions = PermissionSettings(allowed_channels=(renders,))  # an admin's change

    cancel = await studio.discord.click_button("bob", progress, encode(ComponentAction.CANCEL, job_id_of(progress)))
    delete = await studio.discord.click_button("bob", finished, encode(ComponentAction.DELETE, job_id_of(finished)))

    assert f"<#{renders}>" in await refusal(studio, cancel)
    assert f"<#{renders}>" in await refusal(studio, delete)
    assert (await job_of(studio, progress)).state is JobState.RUNNING
    assert not studio.discord.message(finished.id).deleted


# --- what users wrote is escaped everywhere -----------------------------------------------------------------------


async def test_a_hostile_prompt_is_escaped_in_progress_result_info_and_jobs(studio: Studio) -> None:
    studio.comfy.config.step_duration = 0.05
    await studio.start()
    started = await generate(studio, "bob", prompt=HOSTILE_PROMPT, steps=30)
    progress = await running(studio, started)
    assert_escaped(text_of(progress))

    listing = await studio.discord.send_slash_command("bob", "general", "jobs")
    assert_escaped(text_of(await answer(studio, listing)))

    result = await studio.result(started)
    assert_escaped(text_of(result))
    for snapshot in result.history:
        assert not MASKED_LINK.search(str(snapshot.embeds)) and "@everyone" not in str(snapshot.embeds)

    info = await studio.discord.click_button("carol", result, encode(ComponentAction.INFO, job_id_of(result)))
    assert_escaped(text_of(await answer(studio, info)))


async def test_a_hostile_workflow_name_is_escaped_in_the_refusal(studio: Studio) -> None:
    await studio.start()

    refused = await studio.discord.send_slash_command(
        "bob", "general", "generate", {"prompt": "a fox", "workflow": "[x](https://evil.example) @everyone"}
    )

    text = await refusal(studio, refused)
    assert "no image workflow" in text
    assert_escaped(text)


# --- what stays allowed -------------------------------------------------------------------------------------------


async def test_delete_on_a_show_copy_removes_the_copy_only(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, "bob")
    show = await studio.discord.send_slash_command("bob", "renders", "show", {"job_id": job_id_of(source)})
    copy = await studio.result(show)

    press = await studio.discord.click_button("bob", copy, encode(ComponentAction.DELETE, job_id_of(source)))

    assert "Deleted" in text_of(await answer(studio, press))
    assert studio.discord.message(copy.id).deleted and not studio.discord.message(source.id).deleted


async def test_the_forms_show_the_manifests_ranges_and_anyone_in_the_guild_may_open_them(studio: Studio) -> None:
    await studio.start()
    source = await result_of(studio, "bob")
    job_id = job_id_of(source)

    upscale = await studio.discord.click_button("carol", source, encode(ComponentAction.UPSCALE, job_id, 0))
    animate = await studio.discord.click_button("carol", source, encode(ComponentAction.ANIMATE, job_id, 0))
    await studio.discord.wait_for_response(upscale)
    await studio.discord.wait_for_response(animate)

    def labels(press: InteractionRecord) -> list[str]:
        assert press.modal is not None, press.responses
        return [row["components"][0]["label"] for row in press.modal["components"]]

    assert labels(upscale) == ["Upscale factor (1–4)"]
    # The emulator has only SVD's models: Wan 2.2 (the default) falls back to SVD, and the form is SVD's.
    assert labels(animate) == [
        "Frames (1–25)",
        "Frames per second (1–30)",
        "Motion amount (1–255)",
        "Change from the picture (0–1)",
    ]
