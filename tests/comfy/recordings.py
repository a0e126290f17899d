"""The real ComfyUI recordings (``../shared/comfyui-transcripts/``, copied beside the ComfyUI emulator because CI
may not have ``../shared``), read for tests and benchmarks: records, and real frames rebuilt from them."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "peers" / "comfyui" / "transcripts"


def records(name: str) -> list[dict[str, Any]]:
    """One scenario's records, in order (``{"t", "kind": "ws_json" | "ws_binary" | "http" | ..., ...}``)."""
    lines = (TRANSCRIPTS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def binary_frame(header: dict[str, Any]) -> bytes:
    """A real binary frame from a recorded header (the recordings keep headers, not image bytes)."""
    kind = header["event_type"]
    if kind == 1:
        image = bytes.fromhex(header["image_magic"]).ljust(header["image_len"], b"\0")
        return struct.pack(">II", 1, 1 if header["image_type"] == "JPEG" else 2) + image
    if kind == 3:
        node = header["node_id"].encode()
        return struct.pack(">II", 3, len(node)) + node + header["text"].encode()
    meta = json.dumps(header["metadata"]).encode()
    image = bytes.fromhex(header["image_magic"]).ljust(header["image_len"], b"\0")
    return struct.pack(">II", 4, len(meta)) + meta + image


def frame(record: dict[str, Any]) -> str | bytes:
    """A ``ws_json`` or ``ws_binary`` record as the socket received it."""
    return json.dumps(record["msg"]) if record["kind"] == "ws_json" else binary_frame(record["frame"])
