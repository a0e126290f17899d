"""Decode ComfyUI websocket frames into the typed events of ``events.py``.

How it works:
- A text frame is one JSON object ``{"type": ..., "data": {...}}``. Each known ``type`` has a parser that reads
  ``data`` field by field through small coercing helpers (``_str``, ``_num``, ``_int``, ``_strs``): a missing
  field, a ``null`` or a value of the wrong type becomes ``None`` (or an empty tuple), never an exception. A
  known type whose ``data`` is not an object, and every type we do not know, becomes ``Unknown``.
- A binary frame starts with a big-endian u32 event type (ComfyUI's ``BinaryEventTypes``):
  1 ``PREVIEW_IMAGE`` ``[u32 1=JPEG|2=PNG][image]``; 3 ``TEXT`` ``[u32 len][node id][text]``;
  4 ``PREVIEW_IMAGE_WITH_METADATA`` ``[u32 json_len][json][image]``. Any other number becomes ``Unknown``.

Never: raise anything but ``ComfyProtocolError`` — and that only for a text frame that is not a JSON object,
or a binary frame too short for its own header; keep state between frames; do I/O.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

from discomfy.comfy.events import (
    Event,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    FeatureFlags,
    NodeProgress,
    NodeState,
    Preview,
    Progress,
    ProgressState,
    Status,
    Text,
    Unknown,
)
from discomfy.comfy.types import parse_node_outputs
from discomfy.errors import ComfyProtocolError

__all__ = ["decode"]

_U32 = struct.Struct(">I")
#: Binary frame 1 names its image format by number.
_PREVIEW_FORMATS = {1: "image/jpeg", 2: "image/png"}
_NODE_STATES = {state.value: state for state in NodeState}


def decode(frame: str | bytes) -> Event:
    """One websocket frame → one event. Text frames are JSON messages, binary frames previews and text."""
    if isinstance(frame, str):
        return _decode_text(frame)
    if isinstance(frame, bytes | bytearray | memoryview):
        return _decode_binary(bytes(frame))
    raise ComfyProtocolError(f"a websocket frame of type {type(frame).__name__}")


# --- text frames -----------------------------------------------------------------------------------------------


def _decode_text(frame: str) -> Event:
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested garbage
        raise ComfyProtocolError(f"a text frame that is not JSON ({str(exc)[:80]})") from exc
    if not isinstance(message, dict):
        raise ComfyProtocolError(f"a text frame that is JSON {type(message).__name__}, not an object")
    kind = message.get("type")
    data = message.get("data")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None or not isinstance(data, dict):
        # A null ``data`` for a known type says nothing we could act on safely (an ``executing`` without
        # fields would read as "the prompt is over"), so it is as good as unknown.
        return Unknown(kind if isinstance(kind, str) else "", data)
    return parser(data)


def _str(value: Any) -> str | None:
    """Node and prompt ids: strings; some servers and custom nodes send node ids as numbers."""
    if type(value) is str:  # the common case first: this runs for every field of every message
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _num(value: Any) -> float | None:
    """A finite number (ints stay ints, so ``3/8`` renders as such), or ``None``. Runs for every value."""
    if type(value) is int:  # exact type: a bool is not a number here
        if -(2**53) < value < 2**53:
            return int(value)
        try:
            value = float(value)
        except OverflowError:
            return None
    elif type(value) is not float:
        return None
    if value - value != 0:  # inf and nan
        return None
    return int(value) if value.is_integer() and -(2**53) < value < 2**53 else float(value)


def _int(value: Any) -> int | None:
    number = _num(value)
    return int(number) if number is not None and number == int(number) else None


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        return ()
    return tuple(s for s in (_str(item) for item in value) if s is not None)


def _status(data: dict[str, Any]) -> Status:
    # status: {"status": {"exec_info": {"queue_remaining": N}}, "sid": "..."} (sid only on a new socket)
    status = data.get("status")
    exec_info = status.get("exec_info") if isinstance(status, dict) else None
    remaining = _int(exec_info.get("queue_remaining")) if isinstance(exec_info, dict) else None
    return Status(remaining if remaining is None or remaining >= 0 else None, _str(data.get("sid")))


def _feature_flags(data: dict[str, Any]) -> FeatureFlags:
    return FeatureFlags(dict(data))


def _execution_start(data: dict[str, Any]) -> ExecutionStart:
    return ExecutionStart(_str(data.get("prompt_id")))


def _execution_cached(data: dict[str, Any]) -> ExecutionCached:
    return ExecutionCached(_str(data.get("prompt_id")), _strs(data.get("nodes")))


def _executing(data: dict[str, Any]) -> Executing:
    return Executing(_str(data.get("prompt_id")), _str(data.get("node")), _str(data.get("display_node")))


def _progress(data: dict[str, Any]) -> Progress | Unknown:
    value, maximum = _num(data.get("value")), _num(data.get("max"))
    if value is None or maximum is None:
        return Unknown("progress", data)
    return Progress(_str(data.get("prompt_id")), _str(data.get("node")), value, maximum)


def _progress_state(data: dict[str, Any]) -> ProgressState:
    # progress_state: {"prompt_id", "nodes": {id: {value, max, state, node_id, display_node_id, ...}}}
    nodes = data.get("nodes")
    entries = []
    if isinstance(nodes, dict):
        for key, entry in nodes.items():
            if not isinstance(entry, dict):
                continue
            state = entry.get("state")
            entries.append(
                NodeProgress(
                    node_id=_str(entry.get("node_id")) or str(key),
                    state=_NODE_STATES.get(state, NodeState.UNKNOWN) if isinstance(state, str) else NodeState.UNKNOWN,
                    value=_num(entry.get("value")),
                    max=_num(entry.get("max")),
                    display_node_id=_str(entry.get("display_node_id")),
                    parent_node_id=_str(entry.get("parent_node_id")),
                    real_node_id=_str(entry.get("real_node_id")),
                )
            )
    return ProgressState(_str(data.get("prompt_id")), tuple(entries))


def _executed(data: dict[str, Any]) -> Executed:
    node = _str(data.get("node"))
    return Executed(
        _str(data.get("prompt_id")),
        node,
        _str(data.get("display_node")),
        parse_node_outputs(node or "", data.get("output")),
    )


def _execution_success(data: dict[str, Any]) -> ExecutionSuccess:
    return ExecutionSuccess(_str(data.get("prompt_id")))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _execution_error(data: dict[str, Any]) -> ExecutionError:
    return ExecutionError(
        _str(data.get("prompt_id")),
        node_id=_str(data.get("node_id")),
        node_type=_str(data.get("node_type")),
        exception_message=_text(data.get("exception_message")),
        exception_type=_text(data.get("exception_type")),
        traceback=_strs(data.get("traceback")),
        executed=_strs(data.get("executed")),
    )


def _execution_interrupted(data: dict[str, Any]) -> ExecutionInterrupted:
    return ExecutionInterrupted(
        _str(data.get("prompt_id")),
        node_id=_str(data.get("node_id")),
        node_type=_str(data.get("node_type")),
        executed=_strs(data.get("executed")),
    )


_PARSERS: dict[str, Callable[[dict[str, Any]], Event]] = {
    "status": _status,
    "feature_flags": _feature_flags,
    "execution_start": _execution_start,
    "execution_cached": _execution_cached,
    "executing": _executing,
    "progress": _progress,
    "progress_state": _progress_state,
    "executed": _executed,
    "execution_success": _execution_success,
    "execution_error": _execution_error,
    "execution_interrupted": _execution_interrupted,
}


# --- binary frames ---------------------------------------------------------------------------------------------


def _decode_binary(frame: bytes) -> Event:
    if len(frame) < 4:
        raise ComfyProtocolError(f"a binary frame of {len(frame)} bytes, shorter than its event type")
    (kind,) = _U32.unpack_from(frame, 0)
    if kind not in (1, 3, 4):
        return Unknown(kind, None)
    if len(frame) < 8:
        raise ComfyProtocolError(f"a binary frame of type {kind} with {len(frame)} bytes, shorter than its header")
    (head,) = _U32.unpack_from(frame, 4)
    if kind == 1:
        # PREVIEW_IMAGE: [u32 1][u32 image format][image bytes] — no node or prompt id (older protocol)
        mime = _PREVIEW_FORMATS.get(head)
        return Preview(frame[8:], mime) if mime is not None else Unknown(1, {"image_format": head})
    if 8 + head > len(frame):
        raise ComfyProtocolError(f"a binary frame of type {kind} announcing {head} bytes it does not carry")
    if kind == 3:
        # TEXT: [u32 3][u32 node id length][node id utf8][text utf8]
        return Text(frame[8 : 8 + head].decode("utf-8", "replace"), frame[8 + head :].decode("utf-8", "replace"))
    # PREVIEW_IMAGE_WITH_METADATA: [u32 4][u32 json length][json][image bytes]; sent only to sockets that
    # announced supports_preview_metadata in their first feature_flags message.
    meta = _json_object(frame[8 : 8 + head])
    image = frame[8 + head :]
    mime = meta.get("image_type")
    return Preview(
        image,
        mime if isinstance(mime, str) and mime.startswith("image/") else _sniff_mime(image),
        node_id=_str(meta.get("node_id")),
        prompt_id=_str(meta.get("prompt_id")),
        display_node_id=_str(meta.get("display_node_id")),
        parent_node_id=_str(meta.get("parent_node_id")),
        real_node_id=_str(meta.get("real_node_id")),
    )


def _json_object(raw: bytes) -> dict[str, Any]:
    """A preview's metadata; unreadable metadata still leaves a usable image, so it becomes ``{}``."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _sniff_mime(image: bytes) -> str:
    if image.startswith(b"\x89PNG"):
        return "image/png"
    if image.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "image/webp"
    if image.startswith(b"GIF8"):
        return "image/gif"
    return "application/octet-stream"
