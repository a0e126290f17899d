"""Fixtures for the workflow tests: the shipped workflows, the configured models, a real server's /object_info.

``object_info.json`` is the ``GET /object_info`` answer of a real ComfyUI 0.33.0 server (commit 783545f) for the
node classes the shipped workflows and the detection tests use, with the default model files installed (the two
frame interpolation nodes come from the real capture ``tests/peers/comfyui/object_info_frames.json``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from discomfy.config import DEFAULT_MODELS
from discomfy.workflows import Graph, parse_api_graph

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parent.parent / "workflows"
SHIPPED_NAMES = ("txt2img", "upscale", "upscale_simple", "img2vid", "img2vid_ltxv", "img2vid_wan22")


def shipped_graph(name: str) -> Graph:
    return parse_api_graph(json.loads((SHIPPED / f"{name}.json").read_text(encoding="utf-8")), name)


@pytest.fixture(scope="session")
def _object_info() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "object_info.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def object_info(_object_info: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy per test, so a test may break it."""
    return copy.deepcopy(_object_info)


@pytest.fixture
def models() -> dict[str, str]:
    return dict(DEFAULT_MODELS)


@pytest.fixture
def txt2img_graph() -> Graph:
    return shipped_graph("txt2img")
