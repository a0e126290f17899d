"""Typed views of ComfyUI's HTTP answers, built once at the edge from raw dicts.

Parsers here are pure and tolerant: a missing or null field becomes a default, never a KeyError; a body of the
wrong shape raises ``ComfyProtocolError`` (ours), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
