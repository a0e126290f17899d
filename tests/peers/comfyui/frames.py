"""ComfyUI's binary websocket frames (``protocol.BinaryEventTypes``), encoded as the server encodes them.

Every frame starts with a big-endian u32 event type:
1 ``PREVIEW_IMAGE``              ``[u32 1][u32 image type: 1 JPEG, 2 PNG][image bytes]``
3 ``TEXT``                       ``[u32 3][u32 node id length][node id utf-8][text utf-8]``
4 ``PREVIEW_IMAGE_WITH_METADATA`` ``[u32 4][u32 json length][json][image bytes]`` — only to sockets whose first
  message was ``{"type": "feature_flags", "data": {"supports_preview_metadata": true}}``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4


def preview_image(image: bytes, image_type: str = "JPEG") -> bytes:
    return struct.pack(">II", PREVIEW_IMAGE, 2 if image_type == "PNG" else 1) + image


def text(node_id: str, body: str) -> bytes:
    node = node_id.encode()
    return struct.pack(">II", TEXT, len(node)) + node + body.encode()


def preview_with_metadata(image: bytes, metadata: dict[str, Any], image_type: str = "JPEG") -> bytes:
    meta = {**metadata, "image_type": "image/png" if image_type == "PNG" else "image/jpeg"}
    blob = json.dumps(meta).encode()
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(blob)) + blob + image


def decode_binary(data: bytes) -> dict[str, Any]:
    """The header of a binary frame, in the shape ``comfy_capture.py`` recorded (``event_type``, ``name``, …)."""
    (event,) = struct.unpack(">I", data[:4])
    out: dict[str, Any] = {"event_type": event, "total_len": len(data)}
    if event == PREVIEW_IMAGE:
        (kind,) = struct.unpack(">I", data[4:8])
        out.update(name="PREVIEW_IMAGE", image_type={1: "JPEG", 2: "PNG"}.get(kind, kind), image_len=len(data) - 8)
        out["image_magic"] = data[8:12].hex()
    elif event == TEXT:
        (n,) = struct.unpack(">I", data[4:8])
        out.update(name="TEXT", node_id=data[8 : 8 + n].decode(), text=data[8 + n :].decode("utf-8", "replace"))
    elif event == PREVIEW_IMAGE_WITH_METADATA:
        (n,) = struct.unpack(">I", data[4:8])
        out.update(name="PREVIEW_IMAGE_WITH_METADATA", metadata=json.loads(data[8 : 8 + n]))
        out.update(image_len=len(data) - 8 - n, image_magic=data[8 + n : 12 + n].hex())
    else:
        out.update(name="UNKNOWN", head=data[:32].hex())
    return out
