"""ProgressTracker fed the real frame-wise recording (``frames_colortransfer.jsonl``: ColorTransfer over 300 and
then 10 frames, see ``tests/peers/test_comfyui_emulator_frames.py``): what it reports as frames today."""

import itertools
import json
from typing import Any

import pytest

from discomfy.comfy.progress import Phase, ProgressTracker, Snapshot
from discomfy.comfy.protocol import decode
from tests.comfy.recordings import records
from tests.comfy.test_progress import Run, assert_monotone, replay, run_named

LONG = run_named("frames_colortransfer", "3f5b")  # 300 frames, 512 px
SHORT = run_named("frames_colortransfer", "b051")  # 10 frames, reference image cached


def recorded_ticks(run: Run) -> list[tuple[int, int]]:
    return [
        (r["msg"]["data"]["value"], r["msg"]["data"]["max"])
        for r in records(run.name)
        if r["kind"] == "ws_json" and r["msg"]["type"] == "progress" and r["msg"]["data"]["prompt_id"] == run.prompt_id
    ]


def frames_seen(run: Run) -> list[tuple[float | None, float | None]]:
    _, snapshots = replay(run)
    seen = [(s.frames_value, s.frames_max) for s in snapshots if s.frames_value is not None]
    return list(dict.fromkeys(seen))


def test_every_recorded_frame_tick_is_reported_as_frame_x_of_y() -> None:
    assert frames_seen(LONG) == recorded_ticks(LONG)
    assert frames_seen(LONG)[0] == (1, 300) and frames_seen(LONG)[-1] == (300, 300) and len(frames_seen(LONG)) == 47
    assert frames_seen(SHORT) == recorded_ticks(SHORT) == [(1, 10), (10, 10)]


def test_frames_are_not_steps_and_belong_to_the_colortransfer_node() -> None:
    for run in (LONG, SHORT):
        _, snapshots = replay(run)
        framed = [s for s in snapshots if s.frames_value is not None]
        assert {(s.current_node, s.current_title) for s in framed} == {("3", "ColorTransfer")}
        assert all(s.step_value is None and s.step_max is None for s in snapshots)
        assert all((s.node_value, s.node_max) == (s.frames_value, s.frames_max) for s in framed)
        # The savers after it report no frames (they send no progress).
        last = max(i for i, s in enumerate(snapshots) if s.frames_value is not None)
        after = snapshots[last + 1 :]
        assert after
        assert all(s.frames_value is None for s in after)


def test_fraction_grows_with_every_frame_tick_and_ends_done() -> None:
    for run in (LONG, SHORT):
        tracker, snapshots = replay(run)
        assert_monotone(snapshots)
        framed = [s for s in snapshots if s.frames_value is not None]
        for before, after in itertools.pairwise(framed):
            if after.frames_value != before.frames_value:
                assert after.fraction > before.fraction
        assert all(s.fraction < 1.0 for s in snapshots if s.phase is Phase.RUNNING)
        assert tracker.snapshot.phase is Phase.DONE and tracker.snapshot.fraction == 1.0


def test_frame_stage_takes_most_of_the_long_job_bar() -> None:
    _, snapshots = replay(LONG)
    framed = [s for s in snapshots if s.frames_value is not None]
    # The 300-frame node moves the bar from ~0.12 to ~0.71 (weights: per-frame node 10, savers 3, others 1).
    assert framed[0].fraction < 0.15 and framed[-1].fraction > 0.65
    assert (snapshots[-1].nodes_done, snapshots[-1].nodes_total) == (6, 6)


def test_without_a_graph_frame_ticks_are_taken_for_steps() -> None:
    """Documented: with no graph, any progress counts as steps (the tracker cannot know what it counts)."""
    bare = Run(LONG.name, LONG.prompt_id, {}, LONG.client_id)
    _, snapshots = replay(bare)
    assert all(s.frames_value is None for s in snapshots)
    steps = list(dict.fromkeys((s.step_value, s.step_max) for s in snapshots if s.step_value is not None))
    assert steps == recorded_ticks(LONG)


# --- FrameInterpolate: ticks are new frames, reported as output frames --------------------------------------------
# Not recorded (a real run needs a RIFE or FILM file). The messages have the shape of the recording above; the
# ticks follow ComfyUI's nodes_frame_interpolation.py: ProgressBar((n - 1) * (m - 1)), moved by m - 1 per pair.

PID = "6f1c0f0e-4a53-4c1e-9a57-1d8d5b0a0b01"


def interpolation_graph(frames: int, multiplier: int, node_class: str = "FrameInterpolate") -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": frames, "color": 0}},
        "2": {"class_type": "FrameInterpolationModelLoader", "inputs": {"model_name": "rife47.pth"}},
        "3": {
            "class_type": node_class,
            "inputs": {"interp_model": ["2", 0], "images": ["1", 0], "multiplier": multiplier},
            "_meta": {"title": "Interpolating"},
        },
        "4": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "fps": 16.0}},
        "5": {"class_type": "SaveVideo", "inputs": {"video": ["4", 0], "filename_prefix": "v", "format": "mp4"}},
    }


def interpolation_run(
    frames: int, multiplier: int, node_class: str = "FrameInterpolate", frame_nodes: dict[str, str | None] | None = None
) -> list[Snapshot]:
    tracker = ProgressTracker(PID, interpolation_graph(frames, multiplier, node_class), frame_nodes=frame_nodes)
    ticks = (frames - 1) * (multiplier - 1)
    messages: list[dict[str, Any]] = [{"type": "execution_start", "data": {"prompt_id": PID}}]
    for node in ("1", "2", "3"):
        messages.append({"type": "executing", "data": {"node": node, "display_node": node, "prompt_id": PID}})
    for value in range(multiplier - 1, ticks + 1, multiplier - 1):
        messages.append({"type": "progress", "data": {"value": value, "max": ticks, "prompt_id": PID, "node": "3"}})
    for node in ("4", "5"):
        messages.append({"type": "executing", "data": {"node": node, "display_node": node, "prompt_id": PID}})
    messages.append({"type": "execution_success", "data": {"prompt_id": PID}})
    return [tracker.feed(decode(json.dumps(m)), 1.0 + i * 0.1) for i, m in enumerate(messages)]


@pytest.mark.parametrize(
    ("frames", "multiplier", "shown"),
    [
        (5, 2, [(3, 9), (5, 9), (7, 9), (9, 9)]),
        (5, 3, [(4, 13), (7, 13), (10, 13), (13, 13)]),
        (3, 4, [(5, 9), (9, 9)]),
    ],
)
def test_interpolation_ticks_are_reported_as_output_frames_written(
    frames: int, multiplier: int, shown: list[tuple[int, int]]
) -> None:
    snapshots = interpolation_run(frames, multiplier)
    framed = list(dict.fromkeys((s.frames_value, s.frames_max) for s in snapshots if s.frames_value is not None))
    assert framed == shown
    assert shown[-1][1] == (frames - 1) * multiplier + 1
    assert {s.current_title for s in snapshots if s.frames_value is not None} == {"Interpolating"}
    assert all(s.step_value is None for s in snapshots)
    assert_monotone(snapshots)


def test_an_interpolation_without_a_literal_multiplier_reports_its_ticks_as_they_are() -> None:
    graph = interpolation_graph(5, 2)
    graph["3"]["inputs"]["multiplier"] = ["9", 0]
    tracker = ProgressTracker(PID, graph)
    tracker.feed(decode(json.dumps({"type": "execution_start", "data": {"prompt_id": PID}})), 1.0)
    tracker.feed(decode(json.dumps({"type": "executing", "data": {"node": "3", "prompt_id": PID}})), 1.1)
    progress = {"type": "progress", "data": {"value": 2, "max": 4, "prompt_id": PID, "node": "3"}}
    snapshot = tracker.feed(decode(json.dumps(progress)), 1.2)
    assert (snapshot.frames_value, snapshot.frames_max) == (2, 4)


# --- nodes a manifest names (``[frame_progress.NODE]``): custom nodes count frames too ------------------------


def test_a_custom_interpolation_node_named_by_the_manifest_is_counted_as_frameinterpolate_is() -> None:
    # e.g. "RIFE VFI" of ComfyUI-Frame-Interpolation: ComfyUI's own tracker cannot know its ticks are new frames.
    named = interpolation_run(5, 2, "RIFE VFI", frame_nodes={"3": "multiplier"})
    framed = list(dict.fromkeys((s.frames_value, s.frames_max) for s in named if s.frames_value is not None))
    assert framed == [(3, 9), (5, 9), (7, 9), (9, 9)]
    assert_monotone(named)

    unnamed = interpolation_run(5, 2, "RIFE VFI")
    # Without the manifest: its ticks are the node's own progress, never frames.
    assert all(s.frames_value is None for s in unnamed)
    assert [(s.node_value, s.node_max) for s in unnamed if s.node_value is not None][-1] == (4, 4)


def test_a_named_node_without_a_multiplier_counts_one_frame_per_tick() -> None:
    named = interpolation_run(5, 2, "Custom per-frame upscale", frame_nodes={"3": None})
    framed = list(dict.fromkeys((s.frames_value, s.frames_max) for s in named if s.frames_value is not None))
    assert framed == [(1, 4), (2, 4), (3, 4), (4, 4)]
