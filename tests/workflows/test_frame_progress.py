"""``[frame_progress.NODE]`` in a manifest: a node whose progress counts frames although ComfyUI's tracker cannot
tell (a custom node looping over frames), carried from the manifest through binding to the job's tracker."""

from __future__ import annotations

import pytest

from discomfy.comfy.progress import ProgressTracker
from discomfy.config import DEFAULT_MODELS
from discomfy.jobs.runner import job_spec
from discomfy.workflows import WorkflowError, bind, parse_manifest
from tests.jobs.factories import make_job

from .conftest import shipped_graph

#: img2vid (SVD): 7 VAEDecode → 11 FrameInterpolate (10 its model) → 8 CreateVideo → 9 SaveVideo.
BASE = 'kind = "video"\n[params.image]\ntype = "image"\ntarget = "2.image"\n'
STAGE = (
    '[stages.interpolate]\nnodes = ["10", "11"]\nbypass = "11.images"\nfps = "8.fps"\nmultiplier = "11.multiplier"\n'
)


def problem(text: str) -> str:
    with pytest.raises(WorkflowError) as caught:
        parse_manifest(BASE + text, shipped_graph("img2vid"), "v")
    return caught.value.problem


def test_the_nodes_are_read_with_their_multiplier_input() -> None:
    text = BASE + '[frame_progress.7]\n[frame_progress.11]\nmultiplier = "multiplier"\n'
    workflow = parse_manifest(text, shipped_graph("img2vid"), "v")
    assert workflow.frame_progress == {"7": None, "11": "multiplier"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[frame_progress.99]\n", "no node '99'"),
        ('[frame_progress.11]\nmultiplier = "speed"\n', "must name one of the node's inputs"),
        ("[frame_progress.11]\nmultiplier = 2\n", "must name one of the node's inputs"),
        ("[frame_progress.11]\nframes = 3\n", "unknown key 'frames'"),
    ],
)
def test_mistakes_are_named(text: str, says: str) -> None:
    assert says in problem(text)


def test_frame_progress_must_be_sections() -> None:
    with pytest.raises(WorkflowError, match="must be tables"):
        parse_manifest('frame_progress = "11"\n' + BASE, shipped_graph("img2vid"), "v")


def test_binding_carries_the_nodes_the_graph_kept_to_the_jobs_tracker() -> None:
    text = BASE + STAGE + '[frame_progress.7]\n[frame_progress.11]\nmultiplier = "multiplier"\n'
    workflow = parse_manifest(text, shipped_graph("img2vid"), "v")
    models = dict(DEFAULT_MODELS)

    on = bind(workflow, {"image": "in.png", "interpolate": True}, models)
    off = bind(workflow, {"image": "in.png", "interpolate": False}, models)

    assert on.frame_nodes == {"7": None, "11": "multiplier"}
    assert off.frame_nodes == {"7": None}  # the stage's node was cut out with the stage
    spec = job_spec(make_job(), on, (), preview=False)
    assert spec.frame_nodes == on.frame_nodes
    tracker = ProgressTracker(spec.prompt_id, spec.graph, frame_nodes=spec.frame_nodes)
    assert tracker._graph.nodes["7"].per_frame and tracker._graph.nodes["11"].multiplier == 2
