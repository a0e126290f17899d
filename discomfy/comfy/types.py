"""Typed views of ComfyUI's HTTP answers, built once at the edge from raw dicts.

Parsers here are pure and tolerant: a missing or null field becomes a default, never a KeyError; a body of the
wrong shape raises ``ComfyProtocolError`` (ours), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from discomfy.comfy.rejection import scrub_paths
from discomfy.errors import ComfyProtocolError


@dataclass(frozen=True)
class SystemStats:
    comfyui_version: str
    python_version: str
    devices: tuple[str, ...]


@dataclass(frozen=True)
class QueueState:
    running: tuple[str, ...]
    pending: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.running) + len(self.pending)


def parse_system_stats(raw: Any) -> SystemStats:
    """``GET /system_stats`` → ``{"system": {"comfyui_version", "python_version", ...}, "devices": [...]}``."""
    if not isinstance(raw, dict):
        raise ComfyProtocolError(f"/system_stats answered {type(raw).__name__}, not an object")
    system = raw.get("system")
    system = system if isinstance(system, dict) else {}
    devices = raw.get("devices")
    devices = devices if isinstance(devices, list) else []
    return SystemStats(
        comfyui_version=str(system.get("comfyui_version") or "unknown"),
        python_version=str(system.get("python_version") or "unknown").split(" ", 1)[0],
        devices=tuple(str(d.get("name") or d.get("type") or "?") for d in devices if isinstance(d, dict)),
    )


def parse_queue(raw: Any) -> QueueState:
    """``GET /queue`` → ``{"queue_running": [[number, prompt_id, prompt, extra, outputs], ...], ...}``."""
    if not isinstance(raw, dict):
        raise ComfyProtocolError(f"/queue answered {type(raw).__name__}, not an object")

    def ids(key: str) -> tuple[str, ...]:
        items = raw.get(key)
        if not isinstance(items, list):
            return ()
        return tuple(str(item[1]) for item in items if isinstance(item, list) and len(item) > 1)

    return QueueState(running=ids("queue_running"), pending=ids("queue_pending"))


class MediaKind(StrEnum):
    IMAGE = "image"
    ANIMATION = "animation"
    VIDEO = "video"
    OTHER = "other"


_VIDEO_EXTENSIONS = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"}
_IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def media_kind(filename: str, animated: bool = False) -> MediaKind:
    """ComfyUI lists videos and animations under ``images`` too: the extension decides."""
    ext = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext in _VIDEO_EXTENSIONS:
        return MediaKind.VIDEO
    if ext == ".gif" or (animated and ext in {".webp", ".png"}):
        return MediaKind.ANIMATION
    if ext in _IMAGE_EXTENSIONS:
        return MediaKind.IMAGE
    return MediaKind.OTHER


@dataclass(frozen=True)
class OutputFile:
    """One file a node produced, as ``/view`` wants it: ``filename``, ``subfolder``, ``type`` (output/temp)."""

    node_id: str
    filename: str
    subfolder: str
    folder_type: str
    kind: MediaKind

    @property
    def is_temporary(self) -> bool:
        """PreviewImage outputs land in ``temp``: shown while running, not delivered as results."""
        return self.folder_type == "temp"


def parse_node_outputs(node_id: str, output: Any) -> tuple[OutputFile, ...]:
    """One node's ``output`` dict (from ``executed`` or history): ``images``/``gifs``/``videos`` lists."""
    if not isinstance(output, dict):
        return ()
    animated_flags = output.get("animated")
    animated = isinstance(animated_flags, list) and any(flag is True for flag in animated_flags)
    files = []
    for key in ("images", "gifs", "videos", "animated_images"):
        items = output.get(key)
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("filename"), str) and item["filename"]:
                name = item["filename"]
                files.append(
                    OutputFile(
                        node_id=node_id,
                        filename=name,
                        subfolder=str(item.get("subfolder") or ""),
                        folder_type=str(item.get("type") or "output"),
                        kind=media_kind(name, animated or key == "gifs"),
                    )
                )
    return tuple(files)


def parse_outputs(outputs: Any) -> tuple[OutputFile, ...]:
    """History's ``outputs``: ``{node_id: {"images": [...]}, ...}``, in node order as the server listed them."""
    if not isinstance(outputs, dict):
        return ()
    return tuple(f for node_id, out in outputs.items() for f in parse_node_outputs(str(node_id), out))


class RemoteStatus(StrEnum):
    """What the server says about a prompt_id, from ``/api/jobs/{id}``, ``/queue`` or ``/history/{id}``."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: The server does not know the id: never submitted, deleted from the queue, or lost in a restart.
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in (RemoteStatus.DONE, RemoteStatus.FAILED, RemoteStatus.CANCELLED)


@dataclass(frozen=True)
class RemoteJob:
    prompt_id: str
    status: RemoteStatus
    outputs: tuple[OutputFile, ...] = ()
    #: For FAILED: "LoadImage: cannot identify image file …" (node type and the exception's message).
    error: str = ""
    failed_node: str = ""


_JOB_STATUSES = {
    "pending": RemoteStatus.PENDING,
    "in_progress": RemoteStatus.RUNNING,
    "completed": RemoteStatus.DONE,
    "failed": RemoteStatus.FAILED,
    "cancelled": RemoteStatus.CANCELLED,
}


def parse_job(raw: Any) -> RemoteJob:
    """``GET /api/jobs/{id}`` (newer servers)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise ComfyProtocolError("/api/jobs answered something that is not a job")
    status = _JOB_STATUSES.get(str(raw.get("status")), RemoteStatus.UNKNOWN)
    error, node = _error_from(raw.get("execution_error"))
    if not error:
        error, node = _error_from_messages(_messages(raw.get("execution_status")))
    return RemoteJob(raw["id"], status, parse_outputs(raw.get("outputs")), error, node)


def parse_history(prompt_id: str, raw: Any) -> RemoteJob:
    """``GET /history/{id}`` → ``{id: {prompt, outputs, status: {status_str, completed, messages}}}`` or ``{}``.

    An entry exists only once the job ended. Interrupted jobs have ``status_str: error`` too; the
    ``execution_interrupted`` message tells them apart from failures.
    """
    if not isinstance(raw, dict):
        raise ComfyProtocolError("/history answered something that is not an object")
    entry = raw.get(prompt_id)
    if not isinstance(entry, dict):
        return RemoteJob(prompt_id, RemoteStatus.UNKNOWN)
    status = entry.get("status")
    status = status if isinstance(status, dict) else {}
    messages = _messages(status)
    kinds = {m[0] for m in messages}
    outputs = parse_outputs(entry.get("outputs"))
    if "execution_interrupted" in kinds:
        return RemoteJob(prompt_id, RemoteStatus.CANCELLED, outputs)
    error, node = _error_from_messages(messages)
    if status.get("status_str") == "error" or error:
        return RemoteJob(prompt_id, RemoteStatus.FAILED, outputs, error or "the workflow failed", node)
    return RemoteJob(prompt_id, RemoteStatus.DONE, outputs)


def _messages(status: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(status, dict) or not isinstance(status.get("messages"), list):
        return []
    return [
        (m[0], m[1])
        for m in status["messages"]
        if isinstance(m, list) and len(m) == 2 and isinstance(m[0], str) and isinstance(m[1], dict)
    ]


def _error_from_messages(messages: list[tuple[str, dict[str, Any]]]) -> tuple[str, str]:
    for kind, data in messages:
        if kind == "execution_error":
            return _error_from(data)
    return "", ""


def _error_from(data: Any) -> tuple[str, str]:
    if not isinstance(data, dict):
        return "", ""
    node_type = str(data.get("node_type") or "a node")
    message = str(data.get("exception_message") or data.get("exception_type") or "failed").strip()
    return scrub_paths(f"{node_type}: {message}"), str(data.get("node_id") or "")
