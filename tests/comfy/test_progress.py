"""ProgressTracker fed every recorded ComfyUI transcript, old-server variants of them, and random event streams."""

import itertools
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discomfy.comfy.events import Executing, Preview, Progress, ProgressState, Status
from discomfy.comfy.progress import Phase, ProgressTracker, Snapshot
from discomfy.comfy.protocol import decode
from discomfy.comfy.types import MediaKind, OutputFile, parse_history
from discomfy.errors import ComfyProtocolError
from tests.comfy.recordings import TRANSCRIPTS as TRANSCRIPTS_DIR
from tests.comfy.recordings import binary_frame, records


@dataclass(frozen=True)
class Run:
    """One prompt a transcript submitted: what the tracker is made from."""

    name: str
    prompt_id: str
    graph: dict[str, Any]
    client_id: str | None

    def __str__(self) -> str:
        return f"{self.name}-{self.prompt_id[:8]}"


def runs_of(name: str) -> list[Run]:
    return [
        Run(name, r["response"]["prompt_id"], r["request_json"]["prompt"], r["request_json"].get("client_id"))
        for r in records(name)
        if r["kind"] == "http" and r["method"] == "POST" and r["path"] == "/prompt" and r["status"] == 200
    ]


Rewrite = Callable[[dict[str, Any]], dict[str, Any] | None]


def frames(run: Run, *, every_socket: bool = False, rewrite: Rewrite | None = None) -> Iterator[tuple[float, Any]]:
    """The frames the run's own socket received (``every_socket``: all sockets'), in order, with their times."""
    for record in records(run.name):
        if record["kind"] not in ("ws_json", "ws_binary"):
            continue
        if not every_socket and run.client_id is not None and record["to"] != run.client_id:
            continue
        if record["kind"] == "ws_binary":
            yield record["t"], binary_frame(record["frame"])
            continue
        message = rewrite(json.loads(json.dumps(record["msg"]))) if rewrite else record["msg"]
        if message is not None:
            yield record["t"], json.dumps(message)


def replay(run: Run, **options: Any) -> tuple[ProgressTracker, list[Snapshot]]:
    tracker = ProgressTracker(run.prompt_id, run.graph, started_at=0.0)
    return tracker, [tracker.feed(decode(frame), t) for t, frame in frames(run, **options)]


def run_named(name: str, prefix: str = "") -> Run:
    return next(r for r in runs_of(name) if r.prompt_id.startswith(prefix))


EXPECTED = {
    "basic-549e2fa0": Phase.DONE,
    "cached-a8991866": Phase.DONE,
    "cached-7587c02e": Phase.DONE,
    "dup_client_id-0fd42be7": Phase.QUEUED,  # the server bug: the new socket hears nothing
    "execution_error-a025788e": Phase.FAILED,
    "frames_colortransfer-3f5b19a6": Phase.DONE,
    "frames_colortransfer-b051e78c": Phase.DONE,
    "interrupt-ae12ca17": Phase.CANCELLED,
    "ksampler-6f970e38": Phase.DONE,
    "ksampler-d0e1c741": Phase.DONE,
    "ksampler_legacy_preview-4c3b15e7": Phase.DONE,
    "late_connect-873e8a8c": Phase.QUEUED,  # finished before the socket connected: HTTP must tell
    "no_client_id-1a535d57": Phase.RUNNING,  # no clientId: no job messages, only broadcasts
    "queue_ops-2a0a3a90": Phase.CANCELLED,
    "queue_ops-dcb9f0b7": Phase.QUEUED,  # deleted from the queue: only HTTP knows
    "queue_ops-e76ffe91": Phase.QUEUED,
    "queue_ops-627ba18e": Phase.DONE,
    "reconnect-8fe4e427": Phase.DONE,
    "two_clients-4302c9c3": Phase.DONE,
    "upload_load-c40bc0e1": Phase.DONE,
    "validation_error-1fdc5d1e": Phase.DONE,
    "validation_error-2f2ae0aa": Phase.DONE,
    "video-a66aba85": Phase.DONE,
}
RUNS = [run for name in sorted(p.stem for p in TRANSCRIPTS_DIR.glob("*.jsonl")) for run in runs_of(name)]
DONE_RUNS = [run for run in RUNS if EXPECTED.get(str(run)) is Phase.DONE]


def test_every_recorded_prompt_has_an_expected_end() -> None:
    assert sorted(map(str, RUNS)) == sorted(EXPECTED)


@pytest.mark.parametrize("run", RUNS, ids=str)
def test_recorded_prompt_ends_in_the_recorded_phase(run: Run) -> None:
    tracker, _ = replay(run)
    assert tracker.snapshot.phase is EXPECTED[str(run)]


@pytest.mark.parametrize("run", RUNS, ids=str)
def test_snapshots_never_go_backwards(run: Run) -> None:
    _, snapshots = replay(run)
    assert_monotone(snapshots)


def assert_monotone(snapshots: list[Snapshot]) -> None:
    for before, after in itertools.pairwise(snapshots):
        assert 0.0 <= before.fraction <= after.fraction <= 1.0
        assert after.revision >= before.revision
        assert (after is before) == (after.revision == before.revision)
        if before.phase.is_terminal:
            assert after is before


@pytest.mark.parametrize("run", DONE_RUNS, ids=str)
def test_done_prompt_has_every_node_done_and_its_outputs(run: Run) -> None:
    tracker, _ = replay(run)
    snapshot = tracker.snapshot
    assert snapshot.nodes_done == snapshot.nodes_total
    assert snapshot.fraction == 1.0
    assert snapshot.error is None and snapshot.eta_seconds is None
    assert any(not o.is_temporary for o in snapshot.outputs)


def test_nodes_total_excludes_cached_nodes() -> None:
    _, snapshots = replay(run_named("cached", "a899"))
    counts = [(s.nodes_done, s.nodes_total) for s in snapshots if s.phase is not Phase.QUEUED]
    assert list(dict.fromkeys(counts)) == [(0, 7), (0, 1), (1, 1)]  # execution_start, then execution_cached
    fully_cached, _ = replay(run_named("cached", "7587"))
    assert (fully_cached.snapshot.nodes_done, fully_cached.snapshot.nodes_total) == (0, 0)
    assert [o.filename for o in fully_cached.snapshot.outputs if not o.is_temporary] == ["bot_cached_00001_.png"]


def test_skipped_nodes_leave_the_total_when_done() -> None:
    # The graph had two nodes that failed validation; the server ran the other seven.
    _, snapshots = replay(run_named("validation_error", "1fdc"))
    assert [s.nodes_total for s in snapshots if s.phase is Phase.RUNNING][-1] == 9
    assert (snapshots[-1].nodes_done, snapshots[-1].nodes_total) == (7, 7)


def steps_seen(snapshots: list[Snapshot]) -> list[tuple[float, float]]:
    seen: list[tuple[float, float]] = []
    for s in snapshots:
        if s.step_value is not None and s.step_max is not None and (s.step_value, s.step_max) not in seen:
            seen.append((s.step_value, s.step_max))
    return seen


def frames_seen(snapshots: list[Snapshot]) -> list[tuple[float, float]]:
    seen: list[tuple[float, float]] = []
    for s in snapshots:
        if s.frames_value is not None and s.frames_max is not None and (s.frames_value, s.frames_max) not in seen:
            seen.append((s.frames_value, s.frames_max))
    return seen


def test_ksampler_steps_are_reported_one_by_one() -> None:
    _, first = replay(run_named("ksampler", "6f97"))
    _, second = replay(run_named("ksampler", "d0e1"))
    assert steps_seen(first) == [(n, 8) for n in range(1, 9)]
    assert steps_seen(second) == [(n, 20) for n in range(1, 21)]
    sampling = next(s for s in second if s.step_value == 10)
    assert (sampling.current_node, sampling.current_title, sampling.frames_value) == ("5", "KSampler", None)


def test_sampler_steps_weigh_more_than_instant_nodes() -> None:
    _, snapshots = replay(run_named("ksampler", "d0e1"))
    first_step = next(i for i, s in enumerate(snapshots) if s.step_value is not None)
    before_sampling = snapshots[first_step - 1].fraction
    halfway = next(s for s in snapshots if s.step_value == 10)
    # Three cached nodes, then EmptyLatentImage: the 20 steps are most of the work.
    assert before_sampling < 0.1
    assert 0.4 < halfway.fraction < 0.6


def test_ksampler_preview_is_the_latest_of_our_prompt() -> None:
    _, snapshots = replay(run_named("ksampler", "6f97"))
    previews = [s.preview for s in snapshots if s.preview is not None]
    assert previews and all(p.prompt_id == "6f970e38-e417-40f7-ae77-d4dd80c68127" for p in previews)
    assert len({id(p) for p in previews}) == 8  # one per step
    final = snapshots[-1].preview
    assert final is not None and final.mime_type == "image/jpeg" and final.image.startswith(b"\xff\xd8")
    second, _ = replay(run_named("ksampler", "d0e1"))
    assert second.snapshot.preview is None  # the second prompt asked for no previews; the first one's are not ours


def test_legacy_previews_without_ids_are_ours_while_we_run() -> None:
    tracker, snapshots = replay(run_named("ksampler_legacy_preview"))
    assert steps_seen(snapshots) == [(1, 4), (2, 4), (3, 4), (4, 4)]
    preview = tracker.snapshot.preview
    assert preview is not None and preview.prompt_id is None and preview.mime_type == "image/jpeg"
    assert len({id(s.preview) for s in snapshots if s.preview is not None}) == 4


def test_legacy_preview_while_queued_is_not_ours() -> None:
    tracker = ProgressTracker("ours")
    assert tracker.feed(Preview(b"\xff\xd8", "image/jpeg"), 1.0).preview is None


def test_preview_with_metadata_of_another_prompt_is_ignored() -> None:
    tracker = ProgressTracker("ours")
    tracker.mark_running(0.0)
    assert tracker.feed(Preview(b"\xff\xd8", "image/jpeg", node_id="5", prompt_id="theirs"), 1.0).preview is None
    mine = Preview(b"\xff\xd8", "image/jpeg", node_id="5", prompt_id="ours")
    assert tracker.feed(mine, 2.0).preview is mine


def test_video_color_transfer_reports_frames() -> None:
    _, snapshots = replay(run_named("video"))
    assert frames_seen(snapshots) == [(1, 24), (24, 24)]
    assert steps_seen(snapshots) == []
    framing = next(s for s in snapshots if s.frames_value == 1)
    assert (framing.current_node, framing.current_title) == ("4", "ColorTransfer")
    kinds = [o.kind for o in snapshots[-1].outputs]
    assert kinds == [MediaKind.VIDEO, MediaKind.ANIMATION, MediaKind.VIDEO]


def test_interrupt_cancels_mid_frames() -> None:
    tracker, snapshots = replay(run_named("interrupt"))
    assert frames_seen(snapshots) == [(1, 400), (8, 400), (15, 400)]
    snapshot = tracker.snapshot
    assert snapshot.phase is Phase.CANCELLED
    assert (snapshot.current_node, snapshot.nodes_done, snapshot.nodes_total) == ("4", 2, 6)
    assert 0 < snapshot.fraction < 0.5 and snapshot.error is None


def test_execution_error_fails_with_a_readable_reason() -> None:
    tracker, _ = replay(run_named("execution_error"))
    assert tracker.snapshot.phase is Phase.FAILED
    assert tracker.snapshot.error == "LoadImage: cannot identify image file 'broken.png'"  # no server path


def test_reconnect_goes_on_from_executing_without_prompt_id() -> None:
    _, snapshots = replay(run_named("reconnect"))
    frame_values = [v for v, _ in frames_seen(snapshots)]
    assert frame_values[:3] == [1, 8, 117] and frame_values[-1] == 400
    assert all(s.phase is Phase.RUNNING for s in snapshots if s.frames_value is not None)


def test_tracker_joining_after_a_reconnect_learns_that_our_prompt_runs() -> None:
    # A restarted bot reattaches: it hears nothing of the start, only the reconnect's executing {"node": "4"}.
    run = run_named("reconnect")
    tracker = ProgressTracker(run.prompt_id, run.graph)
    late = [(t, f) for t, f in frames(run) if t > 4.2]
    snapshot = tracker.feed(decode(late[0][1]), late[0][0])
    assert (snapshot.phase, snapshot.queue_position) == (Phase.QUEUED, 0)  # status: 1 in the queue, ours
    snapshot = tracker.feed(decode(late[1][1]), late[1][0])
    assert (snapshot.phase, snapshot.current_node, snapshot.current_title) == (Phase.RUNNING, "4", "ColorTransfer")
    for t, frame in late[2:]:
        snapshot = tracker.feed(decode(frame), t)
    assert snapshot.phase is Phase.DONE and snapshot.nodes_done == snapshot.nodes_total


def test_two_clients_each_see_only_their_own_prompt() -> None:
    run = run_named("two_clients")
    own, _ = replay(run)
    everything, _ = replay(run, every_socket=True)
    assert everything.snapshot.phase is Phase.DONE
    assert everything.snapshot.outputs == own.snapshot.outputs
    assert frames_seen(replay(run, every_socket=True)[1]) == [(1, 12), (12, 12)]
    other = ProgressTracker("a-prompt-of-client-a", run.graph)
    for t, frame in frames(run, every_socket=True):
        other.feed(decode(frame), t)
    assert (other.snapshot.phase, other.snapshot.fraction, other.snapshot.outputs) == (Phase.QUEUED, 0.0, ())


def test_events_of_other_prompts_return_the_same_snapshot() -> None:
    tracker = ProgressTracker("ours")
    running = tracker.mark_running(1.0)
    assert tracker.feed(Progress("theirs", "5", 3, 20), 2.0) is running
    assert tracker.feed(ProgressState("theirs", ()), 2.0) is running
    assert tracker.feed(Executing("theirs", "5"), 2.0) is running
    assert tracker.feed(Status(4), 2.0) is running  # queue size says nothing once we run


def test_queue_position_follows_status_while_queued() -> None:
    run = run_named("queue_ops", "627b")
    tracker = ProgressTracker(run.prompt_id, run.graph)
    positions = []
    for t, frame in frames(run):
        snapshot = tracker.feed(decode(frame), t)
        if snapshot.phase is Phase.QUEUED and snapshot.queue_position not in positions[-1:]:
            positions.append(snapshot.queue_position)
    assert positions == [0, 1, 2, 3, 2, 1, 0]
    assert tracker.snapshot.queue_position is None


def test_exact_queue_position_from_http_only_shrinks_with_status() -> None:
    tracker = ProgressTracker("ours")
    assert tracker.mark_queued(2, 0.0).queue_position == 2
    assert tracker.feed(Status(9), 1.0).queue_position == 2  # jobs queued after ours are not ahead
    assert tracker.feed(Status(2), 2.0).queue_position == 1
    assert tracker.mark_running(3.0).queue_position is None


def test_resubmitted_prompt_is_queued_again_and_starts_its_nodes_over() -> None:
    run = run_named("ksampler", "6f97")
    tracker = ProgressTracker(run.prompt_id, run.graph)
    everything = list(frames(run))
    first_half = [(t, f) for t, f in everything if t < 0.8]
    for t, frame in first_half:
        tracker.feed(decode(frame), t)
    lost = tracker.snapshot
    assert (lost.phase, lost.nodes_done, lost.step_value) == (Phase.RUNNING, 4, 3)
    requeued = tracker.mark_queued(None, 1.0)
    assert (requeued.phase, requeued.nodes_done, requeued.current_node, requeued.queue_position) == (
        Phase.QUEUED,
        0,
        None,
        None,
    )
    assert requeued.fraction == lost.fraction
    snapshots = [requeued] + [tracker.feed(decode(frame), t + 1.0) for t, frame in everything if t < 1.33]
    assert_monotone(snapshots)
    assert tracker.snapshot.phase is Phase.DONE and tracker.snapshot.nodes_done == 7


# --- old servers: no progress_state, no prompt_id in progress, no execution_success, type-1 previews only ----------


def old_server(message: dict[str, Any]) -> dict[str, Any] | None:
    if message["type"] in ("progress_state", "execution_success", "feature_flags"):
        return None
    if message["type"] == "progress":
        message["data"] = {"value": message["data"]["value"], "max": message["data"]["max"]}
    return message


def ancient_server(message: dict[str, Any]) -> dict[str, Any] | None:
    rewritten = old_server(message)
    if rewritten is not None and rewritten["type"] == "executing":
        rewritten["data"].pop("prompt_id", None)
    return rewritten


@pytest.mark.parametrize("run", DONE_RUNS, ids=str)
def test_old_server_prompt_ends_done_on_executing_null(run: Run) -> None:
    new, new_snapshots = replay(run)
    old, old_snapshots = replay(run, rewrite=old_server)
    assert old.snapshot.phase is Phase.DONE
    assert old.snapshot.outputs == new.snapshot.outputs
    assert old.snapshot.nodes_done == old.snapshot.nodes_total
    assert steps_seen(old_snapshots) == steps_seen(new_snapshots)
    assert frames_seen(old_snapshots) == frames_seen(new_snapshots)
    assert_monotone(old_snapshots)


@pytest.mark.parametrize("name", ["ksampler_legacy_preview", "basic", "video"])
def test_ancient_server_without_any_prompt_id_in_executing_still_ends_done(name: str) -> None:
    run = runs_of(name)[-1]
    tracker, snapshots = replay(run, rewrite=ancient_server)
    assert tracker.snapshot.phase is Phase.DONE
    assert_monotone(snapshots)


def test_executing_null_without_prompt_id_is_not_our_end_before_we_ran() -> None:
    tracker = ProgressTracker("ours")
    assert tracker.feed(Executing(None, None), 1.0).phase is Phase.QUEUED
    tracker.feed(Executing("ours", "3"), 2.0)
    assert tracker.feed(Executing(None, None), 3.0).phase is Phase.DONE


def test_progress_without_prompt_id_is_ours_only_while_we_run() -> None:
    tracker = ProgressTracker("ours", {"5": {"class_type": "KSampler", "inputs": {"steps": 20}}})
    assert tracker.feed(Progress(None, None, 3, 20), 1.0).step_value is None
    tracker.feed(Executing("ours", "5"), 2.0)
    snapshot = tracker.feed(Progress(None, None, 3, 20), 3.0)
    assert (snapshot.step_value, snapshot.step_max, snapshot.current_node) == (3, 20, "5")


# --- what HTTP tells: the reconciliation layer's marks --------------------------------------------------------------


def history_outputs(name: str) -> tuple[OutputFile, ...]:
    run = runs_of(name)[-1]
    for record in records(name):
        if record["kind"] == "http" and record["path"] == f"/history/{run.prompt_id}" and record.get("response"):
            return parse_history(run.prompt_id, record["response"]).outputs
    raise AssertionError(f"no history for {name}")


def test_late_connect_is_collected_through_mark_done() -> None:
    run = run_named("late_connect")
    tracker, _ = replay(run)
    assert (tracker.snapshot.phase, tracker.snapshot.queue_position) == (Phase.QUEUED, 0)
    snapshot = tracker.mark_done(history_outputs("late_connect"), 3.0)
    assert (snapshot.phase, snapshot.nodes_done, snapshot.nodes_total, snapshot.fraction) == (Phase.DONE, 7, 7, 1.0)
    assert [o.filename for o in snapshot.outputs if not o.is_temporary] == ["bot_late_00001_.png"]


def test_no_client_id_prompt_runs_from_broadcasts_until_http_says_done() -> None:
    run = run_named("no_client_id")
    tracker, snapshots = replay(run)
    assert frames_seen(snapshots) == [(1, 12), (12, 12)]
    assert (tracker.snapshot.phase, tracker.snapshot.nodes_done, tracker.snapshot.nodes_total) == (Phase.RUNNING, 8, 8)
    assert tracker.snapshot.fraction < 1.0
    assert tracker.mark_done(history_outputs("no_client_id"), 1.0).phase is Phase.DONE


def test_marks_move_between_phases_and_terminal_is_final() -> None:
    tracker = ProgressTracker("ours", started_at=10.0)
    queued = tracker.snapshot
    running = tracker.mark_running(11.0)
    assert (queued.phase, running.phase, running.revision > queued.revision) == (Phase.QUEUED, Phase.RUNNING, True)
    assert tracker.mark_running(12.0) is running
    failed = tracker.mark_failed("the image server lost this job", 13.0)
    assert (failed.phase, failed.error, failed.elapsed) == (Phase.FAILED, "the image server lost this job", 3.0)
    assert tracker.mark_done((), 14.0) is failed
    assert tracker.mark_cancelled(14.0) is failed
    assert tracker.feed(Executing("ours", "3"), 15.0) is failed


def test_mark_cancelled_while_queued() -> None:
    tracker = ProgressTracker("ours")
    assert tracker.mark_cancelled(1.0).phase is Phase.CANCELLED


def test_eta_appears_once_estimable_and_elapsed_counts_from_start() -> None:
    _, snapshots = replay(run_named("reconnect"))
    assert snapshots[0].eta_seconds is None
    etas = [s.eta_seconds for s in snapshots if s.eta_seconds is not None]
    assert etas and all(eta > 0 for eta in etas)
    halfway = next(s for s in snapshots if s.frames_value == 200)
    assert halfway.eta_seconds is not None and 2.0 < halfway.eta_seconds < 12.0
    assert halfway.updated_at is not None and halfway.elapsed == pytest.approx(halfway.updated_at)
    assert snapshots[-1].eta_seconds is None and snapshots[-1].started_at == 0.0


def test_titles_come_from_meta_title() -> None:
    graph = {"5": {"class_type": "KSampler", "inputs": {"steps": 4}, "_meta": {"title": "Sampler of foxes"}}}
    tracker = ProgressTracker("ours", graph)
    assert tracker.feed(Executing("ours", "5"), 1.0).current_title == "Sampler of foxes"


def test_fraction_is_monotone_across_samplers_and_frame_passes() -> None:
    graph = {
        "1": {"class_type": "KSampler", "inputs": {"steps": 10}},
        "2": {"class_type": "BasicScheduler", "inputs": {"steps": 30}},
        "3": {"class_type": "SamplerCustomAdvanced", "inputs": {"sigmas": ["2", 0]}},
        "4": {"class_type": "ImageSharpen", "inputs": {"image": ["3", 0]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"batch_size": 16}},
    }
    tracker = ProgressTracker("ours", graph)
    seen = [tracker.snapshot]
    t = 0.0
    for node, total in (("5", 0), ("1", 10), ("2", 0), ("3", 30), ("4", 16), ("4", 16)):
        t += 1
        seen.append(tracker.feed(Executing("ours", node), t))
        for value in range(1, total + 1):
            t += 0.1
            seen.append(tracker.feed(Progress("ours", node, value, total), t))
    assert_monotone(seen)
    assert frames_seen(seen)[-1] == (16, 16)  # an unknown node whose max is the batch: frames
    sampling = [s.fraction for s in seen if s.current_node == "3"]
    assert sampling[-1] - sampling[0] > 0.4  # 30 steps through the scheduler's link: the bulk of the work
    assert 0.9 < seen[-1].fraction < 1.0


# --- property: whatever arrives, the tracker never raises, never goes back, never leaves a terminal phase -----------

GRAPHS = [run_named("ksampler").graph, run_named("video").graph, None, {"1": 3, "x": {"class_type": 5, "inputs": []}}]
_prompt_ids = st.sampled_from(["ours", "theirs", None, 3, ""])
_nodes = st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "8", "99", None, 5])
_numbers = st.integers(-3, 40) | st.floats(allow_nan=False, allow_infinity=False) | st.none() | st.text(max_size=2)
_node_state = st.fixed_dictionaries(
    {"state": st.sampled_from(["running", "finished", "pending", "odd", None]), "value": _numbers, "max": _numbers}
)
_data = st.fixed_dictionaries(
    {},
    optional={
        "prompt_id": _prompt_ids,
        "node": _nodes,
        "display_node": _nodes,
        "node_id": _nodes,
        "value": _numbers,
        "max": _numbers,
        "nodes": st.dictionaries(st.sampled_from(["1", "4", "5", "9"]), _node_state) | st.none() | st.just([1]),
        "output": st.just({"images": [{"filename": "a.png", "type": "output"}]}) | st.none() | st.just(3),
        "status": st.builds(lambda n: {"exec_info": {"queue_remaining": n}}, _numbers) | st.none(),
        "exception_message": st.text(max_size=10) | st.none(),
        "node_type": st.text(max_size=5) | st.none(),
    },
)
_types = st.sampled_from(
    [
        "status",
        "execution_start",
        "execution_cached",
        "executing",
        "progress",
        "progress_state",
        "executed",
        "execution_success",
        "execution_error",
        "execution_interrupted",
        "feature_flags",
        "who_knows",
    ]
)
_json_frames = st.builds(lambda kind, data: json.dumps({"type": kind, "data": data}), _types, _data | st.none())
_previews = st.builds(
    lambda kind, meta, image: (
        struct.pack(">II", 1, 1) + image
        if kind == 1
        else struct.pack(">II", 4, len(json.dumps(meta))) + json.dumps(meta).encode() + image
    ),
    st.sampled_from([1, 4]),
    st.fixed_dictionaries({}, optional={"prompt_id": _prompt_ids, "node_id": _nodes}),
    st.binary(max_size=6),
)
_garbage = st.text(max_size=20) | st.binary(max_size=12)
_marks = st.tuples(
    st.sampled_from(["queued", "running", "done", "failed", "cancelled"]), st.integers(-2, 5) | st.none()
)
_steps = st.lists(
    st.tuples(st.one_of(_json_frames, _json_frames, _previews, _garbage, _marks), st.floats(-1, 5)), max_size=60
)


def apply_mark(tracker: ProgressTracker, mark: tuple[str, int | None], now: float) -> Snapshot:
    kind, position = mark
    if kind == "queued":
        return tracker.mark_queued(position, now)
    if kind == "running":
        return tracker.mark_running(now)
    if kind == "done":
        return tracker.mark_done((OutputFile("9", "b.png", "", "output", MediaKind.IMAGE),), now)
    if kind == "failed":
        return tracker.mark_failed("lost", now)
    return tracker.mark_cancelled(now)


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(GRAPHS), _steps)
def test_random_event_streams_never_break_the_tracker(graph: dict[str, Any] | None, steps: list[Any]) -> None:
    tracker = ProgressTracker("ours", graph)
    snapshots = [tracker.snapshot]
    now = 0.0
    for item, dt in steps:
        now += dt  # clocks may even step back
        if isinstance(item, tuple):
            snapshots.append(apply_mark(tracker, item, now))
            continue
        try:
            event = decode(item)
        except ComfyProtocolError:
            continue
        snapshots.append(tracker.feed(event, now))
    assert_monotone(snapshots)
    for snapshot in snapshots:
        assert snapshot.nodes_done <= snapshot.nodes_total or snapshot.phase is Phase.DONE
        assert snapshot.eta_seconds is None or snapshot.eta_seconds >= 0
        assert (snapshot.queue_position is None) or snapshot.phase is Phase.QUEUED
        assert snapshot.fraction < 1.0 or snapshot.phase is Phase.DONE
