"""The progress and result renderers: phases in words, a bar that never goes back, buttons, Discord's limits."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discomfy.bot.custom_ids import ComponentAction, ComponentRef, decode
from discomfy.bot.render_job import (
    ALL_OUTPUT_ACTIONS,
    ETA_STEP,
    PREVIEW_FILENAME,
    RenderedMessage,
    check_limits,
    escape_user_text,
    failure_words,
    render_encoding,
    render_progress,
    render_result,
)
from discomfy.comfy.progress import Phase, Snapshot
from discomfy.jobs.state import ChannelId, Job, JobAction, JobId, JobKind, JobState, UserId
from discomfy.outcome import Failure
from tests.comfy.test_progress import replay, run_named

T0 = 1_700_000_000.0
JOB_ID = JobId("0123456789abcdef0123456789abcdef")


def make_job(state: JobState = JobState.RUNNING, *, prompt: str = "a cat in a hat", **fields: Any) -> Job:
    params = {"prompt": prompt, "width": 512, "height": 768, **fields.pop("params", {})}
    return Job(
        id=JOB_ID,
        owner_id=UserId(42),
        channel_id=ChannelId(500),
        workflow=fields.pop("workflow", "txt2img"),
        kind=fields.pop("kind", JobKind.IMAGE),
        action=JobAction.GENERATE,
        created_at=T0,
        state=state,
        params=params,
        **fields,
    )


@dataclass(frozen=True)
class FakeUpload:
    filename: str
    data: bytes
    mime: str


def embed(message: RenderedMessage) -> dict[str, Any]:
    (only,) = message.embeds
    return only


def text_of(message: RenderedMessage) -> str:
    e = embed(message)
    fields = " ".join(f"{f['name']}: {f['value']}" for f in e.get("fields", []))
    return f"{message.content} {e['title']} {e['description']} {fields}"


def percent(message: RenderedMessage) -> int:
    match = re.search(r"\*\*(\d+)%\*\*", embed(message)["description"])
    assert match is not None
    return int(match.group(1))


def labels(message: RenderedMessage) -> list[list[str]]:
    return [[b["label"] for b in row["components"]] for row in message.components]


def custom_ids(message: RenderedMessage) -> list[str]:
    return [b["custom_id"] for row in message.components for b in row["components"]]


def running(fraction: float, **fields: Any) -> Snapshot:
    return Snapshot("p", Phase.RUNNING, fraction=fraction, **fields)


# --- progress --------------------------------------------------------------------------------------------------


def recorded_like_sequence() -> list[tuple[Job, Snapshot | None]]:
    """A job's life as the runner sees it: our queue, the server's queue, 20 sampler steps, a decode, done."""
    sequence: list[tuple[Job, Snapshot | None]] = [
        (make_job(JobState.WAITING), None),
        (make_job(JobState.SUBMITTING), None),
        (make_job(JobState.QUEUED), Snapshot("p", Phase.QUEUED, queue_position=2)),
        (make_job(JobState.QUEUED), Snapshot("p", Phase.QUEUED, queue_position=1)),
    ]
    job = make_job(JobState.RUNNING)
    fraction = 0.05
    for step in range(1, 21):
        fraction = 0.05 + 0.85 * step / 20
        snapshot = running(
            fraction,
            current_title="KSampler",
            step_value=step,
            step_max=20,
            nodes_done=3,
            nodes_total=7,
            eta_seconds=(20 - step) * 0.5,
        )
        sequence.append((job, snapshot))
    sequence.append((job, running(0.97, current_title="VAE Decode", nodes_done=5, nodes_total=7)))
    sequence.append((make_job(JobState.DELIVERING), Snapshot("p", Phase.DONE, fraction=1.0)))
    return sequence


def test_percent_never_decreases_through_a_whole_job() -> None:
    shown = [
        percent(render_progress(job, snap, our_queue_position=3, now=T0 + 5)) for job, snap in recorded_like_sequence()
    ]
    assert shown == sorted(shown)
    assert shown[0] == 0 and shown[-1] == 100


@given(st.floats(0, 1, allow_nan=False))
def test_percent_and_bar_never_exceed_the_fraction(fraction: float) -> None:
    message = render_progress(make_job(), running(fraction), our_queue_position=None, now=T0)
    assert percent(message) <= fraction * 100
    bar = re.search(r"`([█░]+)`", embed(message)["description"])
    assert bar is not None and bar.group(1).count("█") <= fraction * 20


def test_first_in_our_queue_is_next_with_nobody_ahead() -> None:
    message = render_progress(make_job(JobState.WAITING), None, our_queue_position=1, now=T0 + 1)
    assert embed(message)["title"].endswith("· next")


def test_waiting_while_no_server_answers_says_so_and_offers_cancel() -> None:
    message = render_progress(make_job(JobState.WAITING), None, our_queue_position=1, now=T0, servers_down=True)
    assert "not answering" in embed(message)["title"] and "as soon as one is back" in embed(message)["description"]
    assert labels(message) == [["Cancel"]]


def test_waiting_in_our_queue_names_the_position_and_offers_cancel() -> None:
    message = render_progress(make_job(JobState.WAITING), None, our_queue_position=3, now=T0 + 1)
    assert "Waiting in our queue" in embed(message)["title"] and "2 jobs ahead" in embed(message)["title"]
    assert labels(message) == [["Cancel"]]
    (custom_id,) = custom_ids(message)
    ref = decode(custom_id)
    assert ref is not None and (ref.action, ref.job_id) == (ComponentAction.CANCEL, JOB_ID)


def test_waiting_at_the_server_names_the_jobs_ahead() -> None:
    message = render_progress(
        make_job(JobState.QUEUED), Snapshot("p", Phase.QUEUED, queue_position=1), our_queue_position=None, now=T0
    )
    assert embed(message)["title"] == "⏳ Waiting at the image server · 1 job ahead"
    assert labels(message) == [["Cancel"]]


def test_running_shows_node_step_elapsed_and_eta_as_a_discord_timestamp() -> None:
    snapshot = running(
        0.42, current_title="KSampler", step_value=12, step_max=20, nodes_done=3, nodes_total=7, eta_seconds=30.4
    )
    message = render_progress(make_job(), snapshot, our_queue_position=None, now=T0 + 65)
    text = text_of(message)
    assert "⚙️ Running" in text and "**KSampler**" in text and "step 12/20" in text and "node 4/7" in text
    assert "**42%**" in text and f"Started: <t:{int(T0)}:R>" in text
    eta = math.ceil((T0 + 65 + 30.4) / ETA_STEP) * ETA_STEP
    assert f"<t:{eta}:R>" in text
    assert labels(message) == [["Cancel"]]


def test_video_progress_shows_frames() -> None:
    snapshot = running(0.5, current_title="Animate", frames_value=8, frames_max=16)
    message = render_progress(make_job(kind=JobKind.VIDEO), snapshot, our_queue_position=None, now=T0)
    assert "frame 8/16" in embed(message)["description"]


def test_video_progress_without_frame_progress_shows_how_many_frames_it_makes() -> None:
    snapshot = running(0.5, current_title="Sampler", step_value=5, step_max=20)
    job = make_job(kind=JobKind.VIDEO, params={"frames": 14})
    assert (
        "step 5/20 · 14 frames" in embed(render_progress(job, snapshot, our_queue_position=None, now=T0))["description"]
    )


def detail_line(job: Job, snapshot: Snapshot) -> str:
    return embed(render_progress(job, snapshot, our_queue_position=None, now=T0))["description"].splitlines()[-1]


def test_a_video_job_shows_its_stages_each_with_its_own_progress() -> None:
    job = make_job(kind=JobKind.VIDEO, workflow="img2vid", params={"frames": 81})
    sampling = running(0.4, current_title="KSampler", step_value=12, step_max=20, nodes_done=4, nodes_total=9)
    assert detail_line(job, sampling) == "sampling · step 12/20 · 81 frames · node 5/9"
    decoding = running(0.7, current_title="VAE Decode", nodes_done=5, nodes_total=9)
    assert detail_line(job, decoding) == "**VAE Decode** · node 6/9"
    colour = running(0.8, current_title="ColorTransfer", frames_value=120, frames_max=300, nodes_done=6, nodes_total=9)
    assert detail_line(job, colour) == "**ColorTransfer** · frame 120/300 · node 7/9"
    untitled = running(0.8, frames_value=3, frames_max=300)
    assert detail_line(job, untitled) == "frame 3/300"


def test_a_video_stage_shows_no_frame_count_it_does_not_know() -> None:
    job = make_job(kind=JobKind.VIDEO, params={"frames": 81})
    assert detail_line(job, running(0.1, current_title="KSampler", step_value=1, step_max=0)) == "**KSampler**"
    assert detail_line(make_job(kind=JobKind.VIDEO), running(0.4, step_value=3, step_max=20)) == "sampling · step 3/20"
    assert "frame" not in detail_line(job, running(0.5, frames_value=5, frames_max=None))


def test_a_frame_wise_title_is_escaped() -> None:
    job = make_job(kind=JobKind.VIDEO)
    snapshot = running(0.8, current_title="@everyone *x*", frames_value=1, frames_max=2)
    assert detail_line(job, snapshot) == "**@\u200beveryone \\*x\\*** · frame 1/2"


def test_video_stages_keep_the_overall_bar_monotone() -> None:
    job = make_job(kind=JobKind.VIDEO, params={"frames": 16})
    states = [running(0.05 + 0.5 * s / 20, step_value=s, step_max=20) for s in range(1, 21)]
    states += [
        running(0.6 + 0.3 * f / 16, current_title="ColorTransfer", frames_value=f, frames_max=16) for f in range(1, 17)
    ]
    messages = [render_progress(job, s, our_queue_position=None, now=T0) for s in states]
    messages += [render_encoding(job, done, 16) for done in range(1, 17)]
    percents = [int(found.group(1)) for m in messages if (found := re.search(r"\*\*(\d+)%\*\*", text_of(m)))]
    assert len(percents) == len(messages)
    assert percents == sorted(percents) and percents[-1] == 100


def test_encoding_shows_frame_x_of_y_with_a_full_bar_and_no_buttons() -> None:
    job = make_job(JobState.DELIVERING, kind=JobKind.VIDEO, workflow="img2vid")
    message = render_encoding(job, 40, 81)
    e = embed(message)
    assert e["title"] == "📦 Finishing · encoding the video"
    assert e["description"].splitlines()[-1] == "encoding frame 40/81"
    assert "**100%**" in e["description"] and "job " in e["footer"]["text"]
    assert message.components == () and message.files == () and check_limits(message) == []
    assert "frame" not in embed(render_encoding(job, 0, 0))["description"]
    assert embed(render_encoding(job, 99, 81))["description"].endswith("encoding frame 81/81")


def test_preview_is_attached_and_shown_in_the_embed() -> None:
    message = render_progress(make_job(), running(0.3), our_queue_position=None, now=T0, preview_jpeg=b"jpeg")
    assert message.files == ((PREVIEW_FILENAME, b"jpeg"),) and not message.keep_attachments
    assert embed(message)["image"] == {"url": "attachment://preview.jpg"}


def test_no_preview_means_no_image_and_no_files() -> None:
    message = render_progress(make_job(), running(0.3), our_queue_position=None, now=T0)
    assert message.files == () and "image" not in embed(message)


def test_finishing_has_no_cancel() -> None:
    message = render_progress(
        make_job(JobState.DELIVERING), Snapshot("p", Phase.DONE, fraction=1.0), our_queue_position=None, now=T0
    )
    assert "Finishing" in embed(message)["title"] and message.components == ()


def test_cancelled_says_so_without_buttons_or_preview() -> None:
    message = render_progress(
        make_job(JobState.CANCELLED), running(0.4), our_queue_position=None, now=T0, preview_jpeg=b"x"
    )
    assert "Cancelled" in embed(message)["title"] and "Cancelled." in embed(message)["description"]
    assert message.components == () and message.files == () and not message.keep_attachments


def test_failed_says_what_happened_and_what_to_do() -> None:
    job = make_job(JobState.FAILED, failure=Failure.WORKFLOW, error="KSampler: out of memory at 2048×2048")
    message = render_progress(job, running(0.4), our_queue_position=None, now=T0)
    description = embed(message)["description"]
    assert "❌ Failed" in embed(message)["title"]
    assert (
        "**What happened:** The workflow failed on the image server: KSampler: out of memory at 2048×2048."
        in description
    )
    assert "**What to do:**" in description and message.components == ()


@pytest.mark.parametrize("failure", list(Failure))
def test_every_failure_kind_has_its_own_words_and_a_next_step(failure: Failure) -> None:
    job = make_job(JobState.FAILED, failure=failure, error="abc123")
    description = embed(render_progress(job, None, our_queue_position=None, now=T0))["description"]
    what, todo = failure_words(failure, "abc123")
    assert f"**What happened:** {what}" in description and f"**What to do:** {todo}" in description
    others = [failure_words(other, None)[0] for other in Failure if other is not failure]
    assert failure_words(failure, None)[0] not in others


def test_a_failure_detail_is_escaped_and_never_pings() -> None:
    job = make_job(JobState.FAILED, failure=Failure.WORKFLOW, error="@everyone [x](https://evil) **bold**")
    description = embed(render_progress(job, None, our_queue_position=None, now=T0))["description"]
    assert "@everyone" not in description and "](https://evil)" not in description


def test_a_failed_snapshot_shows_its_error_before_the_job_row_catches_up() -> None:
    snapshot = Snapshot("p", Phase.FAILED, failure=Failure.WORKFLOW, error="KSampler: CUDA out of memory")
    message = render_progress(make_job(JobState.RUNNING), snapshot, our_queue_position=None, now=T0)
    assert "KSampler: CUDA out of memory" in embed(message)["description"] and message.components == ()


def test_lost_tells_the_user_to_run_it_again() -> None:
    message = render_progress(make_job(JobState.LOST, failure=Failure.LOST), None, our_queue_position=None, now=T0)
    assert "Lost" in embed(message)["title"] and "run the command again" in embed(message)["description"]


# --- result ----------------------------------------------------------------------------------------------------


def test_single_image_result_has_files_details_and_all_buttons() -> None:
    job = make_job(JobState.DELIVERING, seed=123456789, started_at=T0 + 10)
    upload = FakeUpload("cat.png", b"png", "image/png")
    message = render_result(job, [upload], notes=["compressed to fit"], now=T0 + 70)
    assert message.files == (("cat.png", b"png"),) and not message.keep_attachments
    text = text_of(message)
    assert "Seed: `123456789`" in text and "Size: 512×768" in text and "Workflow: txt2img" in text
    assert "Time taken: 1m 10s (1m 0s running)" in text and "compressed to fit" in text
    assert labels(message) == [["Upscale", "Animate"], ["Reroll", "Edit prompt", "Info", "Delete"]]
    refs = [decode(c) for c in custom_ids(message)]
    assert [(r.action, r.index) for r in refs if r] == [
        (ComponentAction.UPSCALE, 0),
        (ComponentAction.ANIMATE, 0),
        (ComponentAction.REROLL, None),
        (ComponentAction.EDIT, None),
        (ComponentAction.INFO, None),
        (ComponentAction.DELETE, None),
    ]


def test_batch_buttons_name_each_image() -> None:
    uploads = [FakeUpload(f"out_{i}.png", b"png", "image/png") for i in range(4)]
    message = render_result(make_job(JobState.DELIVERING), uploads, now=T0)
    assert labels(message) == [
        ["U1", "U2", "U3", "U4"],
        ["A1", "A2", "A3", "A4"],
        ["Reroll", "Edit prompt", "Info", "Delete"],
    ]
    refs = [decode(c) for c in custom_ids(message)[:8]]
    assert [r.index for r in refs if r] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert len(message.files) == 4 and check_limits(message) == []
    assert "4 images" in embed(message)["description"]


def test_a_batch_of_ten_fills_exactly_five_rows() -> None:
    uploads = [FakeUpload(f"{i}.png", b"", "image/png") for i in range(12)]
    message = render_result(make_job(JobState.DELIVERING), uploads, now=T0)
    assert len(message.components) == 5 and len(message.files) == 10
    assert labels(message)[1] == ["U6", "U7", "U8", "U9", "U10"]
    assert "first 10 of 12" in embed(message)["description"] and check_limits(message) == []


def test_video_result_has_no_upscale_or_animate() -> None:
    message = render_result(
        make_job(JobState.DELIVERING, kind=JobKind.VIDEO), [FakeUpload("clip.mp4", b"mp4", "video/mp4")], now=T0
    )
    assert labels(message) == [["Reroll", "Edit prompt", "Info", "Delete"]]
    assert message.files == (("clip.mp4", b"mp4"),) and "a video" in embed(message)["description"]
    assert "image" not in embed(message)


def test_a_video_without_a_prompt_gets_reroll_info_delete_only() -> None:
    job = make_job(JobState.DELIVERING, kind=JobKind.VIDEO, workflow="img2vid")
    job = replace(job, params={"frames": 14})
    message = render_result(job, [FakeUpload("clip.mp4", b"mp4", "video/mp4")], now=T0)
    assert labels(message) == [["Reroll", "Info", "Delete"]]
    refs = [decode(b["custom_id"]) for row in message.components for b in row["components"]]
    assert [ref.action if ref else None for ref in refs] == [
        ComponentAction.REROLL,
        ComponentAction.INFO,
        ComponentAction.DELETE,
    ]


def test_a_video_delivered_as_an_animated_image_gets_no_image_buttons() -> None:
    job = make_job(JobState.DELIVERING, kind=JobKind.VIDEO)
    for uploads in (
        [FakeUpload("clip.webp", b"w", "image/webp")],
        [FakeUpload(f"{i}.webp", b"", "image/webp") for i in range(3)],
    ):
        assert labels(render_result(job, uploads, now=T0)) == [["Reroll", "Edit prompt", "Info", "Delete"]]


def test_extend_is_offered_only_when_the_jobs_workflow_continues_videos() -> None:
    job = make_job(JobState.DELIVERING, kind=JobKind.VIDEO)
    clip = [FakeUpload("clip.mp4", b"mp4", "video/mp4")]
    without = render_result(job, clip, now=T0)
    assert all("Extend" not in label for row in labels(without) for label in row)

    offers = ALL_OUTPUT_ACTIONS | {ComponentAction.EXTEND}
    message = render_result(job, clip, now=T0, offers=offers)
    assert labels(message) == [["Reroll", "Edit prompt", "Extend", "Info", "Delete"]]
    extend = message.components[0]["components"][2]
    assert decode(extend["custom_id"]) == ComponentRef(ComponentAction.EXTEND, job.id, 0)
    assert check_limits(message) == []
    # Not under pictures, nor under a video delivered as an animated image (the last frame is of a video).
    for uploads, kind in (
        ([FakeUpload("a.png", b"", "image/png")], JobKind.IMAGE),
        ([FakeUpload("c.webp", b"", "image/webp")], JobKind.VIDEO),
    ):
        other = render_result(make_job(JobState.DELIVERING, kind=kind), uploads, now=T0, offers=offers)
        assert all("Extend" not in label for row in labels(other) for label in row)


def test_result_mentions_the_owner_as_text() -> None:
    message = render_result(make_job(JobState.DELIVERING), [FakeUpload("a.png", b"", "image/png")], now=T0)
    assert "<@42>" in embed(message)["description"] and message.content == ""


# --- escaping and limits ---------------------------------------------------------------------------------------


def test_mentions_in_a_prompt_never_ping_and_markdown_is_escaped() -> None:
    escaped = escape_user_text("@everyone **bold** <@123> @here [x](http://e) `code`", 500)
    assert "@everyone" not in escaped and "@here" not in escaped and "<@123>" not in escaped
    assert "\\*\\*bold\\*\\*" in escaped and "\\[x\\]\\(http" in escaped and "\\`code\\`" in escaped


def test_a_huge_prompt_is_cut_with_an_ellipsis() -> None:
    message = render_progress(make_job(prompt="x" * 50_000), running(0.1), our_queue_position=None, now=T0)
    assert "…" in embed(message)["description"] and check_limits(message) == []


PROMPTS = st.lists(
    st.sampled_from([*"ab *_~`|>#-[]()<>@:\\\n", "@everyone", "@here", "<@123>", "é", "🎨"]) | st.characters(),
    max_size=3000,
).map("".join) | st.text(min_size=5000, max_size=9000)
STATES = st.sampled_from(list(JobState))
PHASES = st.sampled_from(list(Phase))


@settings(max_examples=150, deadline=None, database=None)
@given(
    prompt=PROMPTS,
    workflow=st.text(max_size=300),
    error=st.none() | st.text(max_size=3000),
    state=STATES,
    phase=PHASES,
    fraction=st.floats(0, 1),
    title=st.none() | st.text(max_size=500),
    position=st.none() | st.integers(0, 10_000),
    eta=st.none() | st.floats(0, 1e7),
)
def test_progress_respects_discord_limits_and_never_pings(
    prompt: str,
    workflow: str,
    error: str | None,
    state: JobState,
    phase: Phase,
    fraction: float,
    title: str | None,
    position: int | None,
    eta: float | None,
) -> None:
    job = make_job(state, prompt=prompt, workflow=workflow, error=error)
    snapshot = Snapshot(
        "p",
        phase,
        fraction=fraction,
        current_title=title,
        queue_position=position,
        eta_seconds=eta,
        step_value=3,
        step_max=20,
    )
    message = render_progress(job, snapshot, our_queue_position=position, now=T0 + 3, preview_jpeg=b"j")
    assert check_limits(message) == []
    assert "@everyone" not in text_of(message) and "@here" not in text_of(message)


@settings(max_examples=100, deadline=None, database=None)
@given(
    prompt=PROMPTS,
    notes=st.lists(st.text(max_size=2000), max_size=12),
    mimes=st.lists(st.sampled_from(["image/png", "image/webp", "video/mp4", "image/gif"]), min_size=0, max_size=14),
    names=st.text(max_size=400),
    seed=st.none() | st.integers(0, 2**64 - 1),
)
def test_result_respects_discord_limits(
    prompt: str, notes: list[str], mimes: list[str], names: str, seed: int | None
) -> None:
    uploads = [FakeUpload(f"{names}{i}", b"d", mime) for i, mime in enumerate(mimes)]
    message = render_result(make_job(JobState.DELIVERING, prompt=prompt, seed=seed), uploads, notes=notes, now=T0 + 1)
    assert check_limits(message) == []
    assert all(len(name) <= 200 for name, _ in message.files)
    assert "@everyone" not in text_of(message)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_odd_fractions_and_etas_do_not_break_rendering(bad: float) -> None:
    snapshot = running(0.5, eta_seconds=bad)
    message = render_progress(
        make_job(), Snapshot("p", Phase.RUNNING, fraction=bad, eta_seconds=bad), our_queue_position=None, now=T0
    )
    assert (
        check_limits(message) == []
        and check_limits(render_progress(make_job(), snapshot, our_queue_position=None, now=T0)) == []
    )


# --- the preview shrinker (not pure: Pillow; callers run it in a thread) -----------------------------------------


def test_shrink_preview_makes_a_small_jpeg_and_refuses_garbage() -> None:
    import io

    from PIL import Image

    from discomfy.bot.preview import PreviewError, shrink_preview

    source = io.BytesIO()
    Image.new("RGBA", (1024, 512), (200, 10, 10, 128)).save(source, format="PNG")
    small = shrink_preview(source.getvalue(), max_side=384)
    with Image.open(io.BytesIO(small)) as image:
        assert (image.format, image.size) == ("JPEG", (384, 192))
    with pytest.raises(PreviewError):
        shrink_preview(b"not a picture")


def test_only_actions_a_loaded_workflow_can_run_get_a_button() -> None:
    job = make_job(JobState.DELIVERING)
    one = [FakeUpload("cat.png", b"png", "image/png")]
    no_video = frozenset({ComponentAction.UPSCALE})
    assert labels(render_result(job, one, now=T0, offers=no_video)) == [
        ["Upscale"],
        ["Reroll", "Edit prompt", "Info", "Delete"],
    ]
    assert labels(render_result(job, one, now=T0, offers=frozenset())) == [["Reroll", "Edit prompt", "Info", "Delete"]]
    two = [*one, FakeUpload("dog.png", b"png", "image/png")]
    assert labels(render_result(job, two, now=T0, offers=no_video))[0] == ["U1", "U2"]


def test_the_recorded_colortransfer_run_reads_colortransfer_frame_x_of_300_in_order() -> None:
    """The real recording (``frames_colortransfer.jsonl``, 300 frames) through the tracker and the renderer."""
    _, snapshots = replay(run_named("frames_colortransfer", "3f5b"))
    job = make_job(kind=JobKind.VIDEO, workflow="colortransfer")
    lines = [detail_line(job, s) for s in snapshots if s.phase is Phase.RUNNING and s.frames_value is not None]
    counts = [(int(m.group(1)), int(m.group(2))) for line in lines if (m := re.search(r"frame (\d+)/(\d+)", line))]
    assert len(counts) == len(lines) and all(line.startswith("**ColorTransfer** · frame ") for line in lines)
    assert counts[0] == (1, 300) and counts[-1] == (300, 300) and counts == sorted(counts)
    bars = [text_of(render_progress(job, s, our_queue_position=None, now=T0)) for s in snapshots]
    percents = [int(m.group(1)) for text in bars if (m := re.search(r"\*\*(\d+)%\*\*", text))]
    assert percents == sorted(percents)
