"""protocol.decode: every recorded ComfyUI frame, hand-built binary frames, garbage, and a fuzzer."""

import contextlib
import json
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discomfy.comfy.events import (
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    FeatureFlags,
    NodeState,
    Preview,
    Progress,
    ProgressState,
    Status,
    Text,
    Unknown,
)
from discomfy.comfy.protocol import decode
from discomfy.comfy.types import MediaKind
from discomfy.errors import ComfyProtocolError
from tests.comfy.recordings import TRANSCRIPTS as TRANSCRIPTS_DIR
from tests.comfy.recordings import binary_frame, records

TRANSCRIPTS = sorted(p.stem for p in TRANSCRIPTS_DIR.glob("*.jsonl"))
EVENT_CLASSES = {
    "status": Status,
    "feature_flags": FeatureFlags,
    "execution_start": ExecutionStart,
    "execution_cached": ExecutionCached,
    "executing": Executing,
    "progress": Progress,
    "progress_state": ProgressState,
    "executed": Executed,
    "execution_success": ExecutionSuccess,
    "execution_error": ExecutionError,
    "execution_interrupted": ExecutionInterrupted,
}


def first(name: str, message_type: str) -> dict[str, Any]:
    return next(r["msg"] for r in records(name) if r["kind"] == "ws_json" and r["msg"]["type"] == message_type)


def test_transcripts_are_found() -> None:
    assert len(TRANSCRIPTS) >= 16


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_every_recorded_message_decodes_to_its_typed_event(name: str) -> None:
    for record in records(name):
        if record["kind"] == "ws_json":
            event = decode(json.dumps(record["msg"]))
            assert type(event) is EVENT_CLASSES[record["msg"]["type"]], record
            assert getattr(event, "prompt_id", None) == record["msg"]["data"].get("prompt_id")
        elif record["kind"] == "ws_binary":
            assert not isinstance(decode(binary_frame(record["frame"])), Unknown)


def test_status_carries_queue_remaining_and_sid() -> None:
    assert decode(json.dumps(first("basic", "status"))) == Status(0, "78ab9858cd424462829669e2f151dda4")
    assert decode('{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 3}}}}') == Status(3)


def test_execution_cached_lists_the_cached_nodes() -> None:
    event = decode(json.dumps(first("cached", "execution_cached")))
    assert isinstance(event, ExecutionCached)
    assert event.nodes == ("1", "2", "3", "4", "5", "7")


def test_executing_after_reconnect_has_no_prompt_id() -> None:
    executing = [
        decode(json.dumps(r["msg"])) for r in records("reconnect") if r.get("msg", {}).get("type") == "executing"
    ]
    assert Executing(None, "4") in executing
    assert Executing("8fe4e427-dc02-45a8-970d-8615ac0d3c33", None) in executing


def test_progress_has_value_max_node_and_prompt() -> None:
    event = decode(json.dumps(first("ksampler", "progress")))
    assert event == Progress("6f970e38-e417-40f7-ae77-d4dd80c68127", "5", 1, 8)


def test_progress_of_an_old_server_has_no_prompt_id_or_node() -> None:
    assert decode('{"type": "progress", "data": {"value": 3, "max": 20}}') == Progress(None, None, 3, 20)


def test_progress_state_is_a_snapshot_of_every_node() -> None:
    states = [
        decode(json.dumps(r["msg"])) for r in records("ksampler") if r.get("msg", {}).get("type") == "progress_state"
    ]
    sampling = next(s for s in states if isinstance(s, ProgressState) and any(n.max == 8 for n in s.nodes))
    assert isinstance(sampling, ProgressState)
    by_id = {n.node_id: n for n in sampling.nodes}
    assert by_id["1"].state is NodeState.FINISHED
    assert by_id["5"].state is NodeState.RUNNING
    assert (by_id["5"].value, by_id["5"].max) == (1, 8)
    assert by_id["5"].display_node_id == "5"
    assert by_id["5"].real_node_id == "5"


def test_executed_outputs_become_output_files() -> None:
    outputs = [decode(json.dumps(r["msg"])) for r in records("video") if r.get("msg", {}).get("type") == "executed"]
    files = [f for event in outputs if isinstance(event, Executed) for f in event.outputs]
    assert [(f.node_id, f.filename, f.subfolder, f.kind) for f in files] == [
        ("8", "bot_video_00001_.webm", "", MediaKind.VIDEO),
        ("5", "bot_video_00002_.webp", "", MediaKind.ANIMATION),
        ("7", "bot_video_00001_.mp4", "video", MediaKind.VIDEO),
    ]


def test_execution_error_has_a_readable_reason() -> None:
    event = decode(json.dumps(first("execution_error", "execution_error")))
    assert isinstance(event, ExecutionError)
    assert (event.node_id, event.node_type, event.exception_type) == ("1", "LoadImage", "PIL.UnidentifiedImageError")
    assert event.reason == "LoadImage: cannot identify image file '/opt/comfy_data/input/broken.png'"
    assert len(event.traceback) > 3


def test_execution_interrupted_names_the_node() -> None:
    event = decode(json.dumps(first("interrupt", "execution_interrupted")))
    assert event == ExecutionInterrupted(
        "ae12ca17-4bf5-4e23-b572-4b0b60fcb98c", node_id="4", node_type="ColorTransfer", executed=("2", "1")
    )


def test_feature_flags_keep_the_servers_flags() -> None:
    event = decode(json.dumps(first("basic", "feature_flags")))
    assert isinstance(event, FeatureFlags)
    assert event.flags["supports_preview_metadata"] is True


def test_preview_with_metadata_names_node_prompt_and_type() -> None:
    header = next(r["frame"] for r in records("ksampler") if r["kind"] == "ws_binary")
    event = decode(binary_frame(header))
    assert isinstance(event, Preview)
    assert (event.node_id, event.prompt_id, event.display_node_id, event.real_node_id, event.parent_node_id) == (
        "5",
        "6f970e38-e417-40f7-ae77-d4dd80c68127",
        "5",
        "5",
        None,
    )
    assert event.mime_type == "image/jpeg"
    assert len(event.image) == header["image_len"] and event.image.startswith(b"\xff\xd8")


def test_legacy_preview_has_only_the_image() -> None:
    header = next(r["frame"] for r in records("ksampler_legacy_preview") if r["kind"] == "ws_binary")
    event = decode(binary_frame(header))
    assert event == Preview(binary_frame(header)[8:], "image/jpeg")
    assert decode(struct.pack(">II", 1, 2) + b"\x89PNG") == Preview(b"\x89PNG", "image/png")


def test_text_frame_names_its_node() -> None:
    header = next(r["frame"] for r in records("basic") if r["kind"] == "ws_binary")
    assert decode(binary_frame(header)) == Text("2", "width: 64, height: 64\n batch size: 1")


def test_preview_without_image_type_is_sniffed() -> None:
    meta = b'{"node_id": "3"}'
    event = decode(struct.pack(">II", 4, len(meta)) + meta + b"\x89PNG\r\n")
    assert isinstance(event, Preview)
    assert (event.mime_type, event.node_id, event.prompt_id) == ("image/png", "3", None)


def test_preview_with_garbled_metadata_keeps_the_image() -> None:
    event = decode(struct.pack(">II", 4, 3) + b"{x]" + b"\xff\xd8\xff")
    assert event == Preview(b"\xff\xd8\xff", "image/jpeg")


def test_bytearray_and_memoryview_frames_are_binary() -> None:
    raw = struct.pack(">II", 3, 1) + b"7hi"
    assert decode(bytearray(raw)) == decode(memoryview(raw)) == Text("7", "hi")


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "crystools.monitor", "data": {"cpu": 3}}', Unknown("crystools.monitor", {"cpu": 3})),
        ('{"type": "executing", "data": null}', Unknown("executing", None)),
        ('{"type": "progress", "data": {"value": "x", "max": 3}}', Unknown("progress", {"value": "x", "max": 3})),
        ('{"data": {}}', Unknown("", {})),
        ('{"type": 7}', Unknown("", None)),
        (struct.pack(">I", 2) + b"raw pixels", Unknown(2)),
        (struct.pack(">I", 99), Unknown(99)),
        (struct.pack(">II", 1, 9) + b"img", Unknown(1, {"image_format": 9})),
    ],
)
def test_what_we_do_not_know_is_unknown(frame: str | bytes, expected: Unknown) -> None:
    assert decode(frame) == expected


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "executing", "data": {}}', Executing(None, None)),
        ('{"type": "executing", "data": {"node": 5, "prompt_id": null}}', Executing(None, "5")),
        ('{"type": "execution_cached", "data": {"nodes": ["1", null, 2, {}]}}', ExecutionCached(None, ("1", "2"))),
        ('{"type": "execution_cached", "data": {"nodes": null}}', ExecutionCached(None, ())),
        ('{"type": "status", "data": {"status": null}}', Status(None)),
        ('{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": -1}}}}', Status(None)),
        ('{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": true}}}}', Status(None)),
        ('{"type": "progress", "data": {"value": 2.5, "max": 10.0, "node": []}}', Progress(None, None, 2.5, 10)),
        ('{"type": "progress", "data": {"value": NaN, "max": 10}}', Unknown("progress", None)),
        ('{"type": "progress", "data": {"value": 1e999, "max": 10}}', Unknown("progress", None)),
        ('{"type": "progress_state", "data": {"nodes": {"4": {"state": "weird"}, "5": 3}}}', None),
        ('{"type": "executed", "data": {"node": "9", "output": null}}', Executed(None, "9")),
        ('{"type": "executed", "data": {"output": {"images": [{"filename": 3}, "x"]}}}', Executed(None, None)),
        ('{"type": "execution_error", "data": {"exception_message": null}}', ExecutionError(None)),
        ('{"type": "execution_interrupted", "data": {"executed": "3"}}', ExecutionInterrupted(None, executed=("3",))),
    ],
)
def test_missing_null_and_mistyped_fields_become_defaults(frame: str, expected: object) -> None:
    event = decode(frame)
    if isinstance(event, Unknown):
        assert isinstance(expected, Unknown) and event.kind == expected.kind
    elif expected is None:
        assert isinstance(event, ProgressState)
        assert [(n.node_id, n.state, n.value) for n in event.nodes] == [("4", NodeState.UNKNOWN, None)]
    else:
        assert event == expected


def test_an_error_without_a_message_still_reads() -> None:
    assert ExecutionError(None).reason == "a node: failed"
    assert ExecutionError(None, node_type="VAEDecode", exception_type="OOM").reason == "VAEDecode: OOM"


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "not json",
        "[1, 2]",
        "null",
        '"status"',
        "[" * 100_000,
        b"",
        b"\x00\x00\x00",
        struct.pack(">I", 1) + b"\x00",
        struct.pack(">I", 4),
        struct.pack(">II", 3, 10) + b"short",
        struct.pack(">II", 4, 2**32 - 1) + b"{}",
    ],
)
def test_frames_we_cannot_read_raise_our_protocol_error(frame: str | bytes) -> None:
    with pytest.raises(ComfyProtocolError):
        decode(frame)


def test_a_frame_of_another_type_raises_our_protocol_error() -> None:
    with pytest.raises(ComfyProtocolError):
        decode(42)  # type: ignore[arg-type]


# --- fuzzing: the only exception decode may raise is ComfyProtocolError ------------------------------------------

_ids = st.one_of(st.none(), st.text(max_size=8), st.integers(), st.booleans(), st.floats(allow_nan=True))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "prompt_id": _ids,
        "node": _ids,
        "node_id": _ids,
        "display_node": _ids,
        "value": _json,
        "max": _json,
        "nodes": _json
        | st.dictionaries(
            st.text(max_size=3), st.dictionaries(st.sampled_from(["state", "value", "max", "node_id"]), _json)
        ),
        "output": _json,
        "status": _json,
        "exception_message": _json,
        "traceback": _json,
        "executed": _json,
    },
)
_messages = st.fixed_dictionaries(
    {"type": st.sampled_from([*EVENT_CLASSES, "other", ""]) | _json, "data": _fields | _json}
)
_binary = st.builds(
    lambda kind, head, body: struct.pack(">II", kind, head)[: 4 + (len(body) % 5)] + body,
    st.sampled_from([0, 1, 2, 3, 4, 5, 2**32 - 1]),
    st.integers(0, 2**32 - 1) | st.integers(0, 40),
    st.binary(max_size=64),
)


def _decodes_or_refuses(frame: str | bytes) -> None:
    with contextlib.suppress(ComfyProtocolError):
        decode(frame)


_FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.text() | st.binary())
def test_fuzz_arbitrary_frames(frame: str | bytes) -> None:
    _decodes_or_refuses(frame)


@_FUZZ
@given(_messages)
def test_fuzz_json_objects_always_decode(message: dict[str, Any]) -> None:
    decode(json.dumps(message))  # a JSON object never raises, whatever its fields hold


@_FUZZ
@given(_binary)
def test_fuzz_binary_frames(frame: bytes) -> None:
    _decodes_or_refuses(frame)


def test_every_recorded_scenario_is_here() -> None:
    assert len(TRANSCRIPTS) == 17  # the parametrized tests above would pass silently over an empty folder
