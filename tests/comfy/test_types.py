"""Typed views of recorded ComfyUI answers."""

from typing import Any

import pytest

from discomfy.comfy.types import (
    MediaKind,
    RemoteStatus,
    media_kind,
    parse_history,
    parse_job,
    parse_queue,
    parse_system_stats,
)
from discomfy.errors import ComfyProtocolError
from tests.comfy.recordings import records


def responses(scenario: str, path_prefix: str) -> list[tuple[str, Any]]:
    return [
        (r["path"], r["response"])
        for r in records(scenario)
        if r.get("kind") == "http" and r["path"].startswith(path_prefix) and "response" in r
    ]


def test_history_of_a_finished_job_lists_its_outputs() -> None:
    path, body = responses("basic", "/history/")[0]
    job = parse_history(path.rsplit("/", 1)[-1], body)
    assert job.status is RemoteStatus.DONE
    saved = [f for f in job.outputs if not f.is_temporary]
    assert [f.filename for f in saved] == ["bot_basic_00001_.png"]
    assert saved[0].node_id == "6"
    assert saved[0].kind is MediaKind.IMAGE


def test_history_of_a_failed_job_names_node_and_reason() -> None:
    path, body = responses("execution_error", "/history/")[0]
    job = parse_history(path.rsplit("/", 1)[-1], body)
    assert job.status is RemoteStatus.FAILED
    assert job.error.startswith("LoadImage: cannot identify image file")
    assert job.failed_node == "1"


def test_history_of_an_interrupted_job_is_cancelled() -> None:
    path, body = responses("interrupt", "/history/")[0]
    assert parse_history(path.rsplit("/", 1)[-1], body).status is RemoteStatus.CANCELLED


def test_history_without_the_id_is_unknown() -> None:
    assert parse_history("abc", {}).status is RemoteStatus.UNKNOWN


def test_video_history_outputs_are_typed_by_extension() -> None:
    path, body = responses("video", "/history/")[0]
    kinds = {f.filename.rsplit(".", 1)[-1]: f.kind for f in parse_history(path.rsplit("/", 1)[-1], body).outputs}
    assert kinds["mp4"] is MediaKind.VIDEO
    assert kinds["webm"] is MediaKind.VIDEO
    assert kinds["webp"] is MediaKind.ANIMATION


@pytest.mark.parametrize(
    ("scenario", "status"),
    [("basic", RemoteStatus.DONE), ("execution_error", RemoteStatus.FAILED), ("interrupt", RemoteStatus.CANCELLED)],
)
def test_api_jobs_status_maps_to_ours(scenario: str, status: RemoteStatus) -> None:
    _, body = next(r for r in responses(scenario, "/api/jobs/") if isinstance(r[1], dict) and "id" in r[1])
    assert parse_job(body).status is status


def test_api_jobs_failure_carries_the_error() -> None:
    _, body = responses("execution_error", "/api/jobs/")[0]
    assert parse_job(body).error.startswith("LoadImage: cannot identify")


def test_api_jobs_not_found_body_is_a_protocol_error() -> None:
    with pytest.raises(ComfyProtocolError):
        parse_job({"error": "Job not found"})


def test_recorded_queue_lists_running_and_pending_ids() -> None:
    _, body = responses("queue_ops", "/queue")[0]
    queue = parse_queue(body)
    assert len(queue.running) == 1
    assert queue.pending
    assert queue.size == 1 + len(queue.pending)


def test_recorded_system_stats_give_version_and_device() -> None:
    _, body = responses("misc", "/system_stats")[0]
    stats = parse_system_stats(body)
    assert stats.comfyui_version == "0.33.0"
    assert stats.python_version == "3.11.7"
    assert stats.devices == ("cpu",)


def test_media_kind_of_unknown_extension_is_other() -> None:
    assert media_kind("notes.txt") is MediaKind.OTHER
    assert media_kind("a.gif") is MediaKind.ANIMATION
    assert media_kind("a.webp") is MediaKind.IMAGE
