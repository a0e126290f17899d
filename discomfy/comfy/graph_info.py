"""What an API-format graph tells the progress tracker: each node's title, weight and kind, and its frame counts.

How it works: one pass over the graph (node id → ``{class_type, inputs, _meta: {title}}``) when a tracker is
made. A sampler (KSampler, KSamplerAdvanced, SamplerCustom, SamplerCustomAdvanced, other ``KSampler*``) weighs
``STEP_WEIGHT × steps``: its literal ``steps`` input (KSamplerAdvanced: only ``start_at_step``..``end_at_step``),
else the literal ``steps`` of the scheduler node linked to its ``sigmas`` (SamplerCustom*), else
``DEFAULT_STEPS``. Loaders, VAE encode/decode, model upscaling and video encoders weigh ``SLOW_WEIGHT``; known
per-frame nodes ``PROGRESS_WEIGHT``; every other node 1 (the tracker raises a node that reports progress to
``PROGRESS_WEIGHT``). ``NodeInfo.frames`` turns a per-frame node's ticks into frames: one tick per frame, but
``FrameInterpolate``'s ticks are its new frames only, mapped to output frames with its literal ``multiplier``.
Which nodes count frames: ComfyUI's own (``FRAME_NODES_BY_CLASS``), and any node a workflow's manifest names
(``frame_nodes``: node id → the input holding its multiplier when its ticks are new frames, else None), so a
custom node's progress reads "frame x/y" too. Frame counts are the literal ``batch_size``/``length``/``frames``/…
inputs ≥ 2.

Never: raise on a graph of the wrong shape (whatever is not understood is skipped), or mutate the graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SAMPLER_CLASSES = frozenset({"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"})
#: ComfyUI's per-frame nodes → the input holding the multiplier when their ticks are new frames only (else None).
#: ``ColorTransfer`` (comfy_extras/nodes_post_processing.py) ticks once per frame (the recording
#: frames_colortransfer.jsonl); ``FrameInterpolate`` (comfy_extras/nodes_frame_interpolation.py) makes
#: ``ProgressBar((frames - 1) * (multiplier - 1))`` and ticks once per interpolated frame (per pair, or per batch
#: within a pair), writing each pair's end frame after its ticks.
FRAME_NODES_BY_CLASS: Mapping[str, str | None] = {"ColorTransfer": None, "FrameInterpolate": "multiplier"}
FRAME_INPUTS = frozenset({"batch_size", "length", "frames", "num_frames", "frame_count", "video_frames"})
SLOW_CLASSES = frozenset({"VAEDecode", "VAEEncode", "ImageUpscaleWithModel", "SaveVideo", "SaveWEBM"})
DEFAULT_STEPS = 20
STEP_WEIGHT = 2.0
SLOW_WEIGHT = 3.0
PROGRESS_WEIGHT = 10.0


def _literal(value: Any) -> float | None:
    """A literal positive number in a graph input (a link is a ``[node, slot]`` list, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if 0 < number < 1e9 else None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    title: str | None
    weight: float
    is_sampler: bool
    per_frame: bool
    #: ``FrameInterpolate``'s literal ``multiplier`` (≥ 2): its ticks are mapped to output frames (``frames``).
    multiplier: int | None = None

    def frames(self, value: float, maximum: float) -> tuple[float, float]:
        """A per-frame node's progress as (frames done, frames in all). Ticks are frames, except for an
        interpolation: after ``v`` of its ``(n - 1)(m - 1)`` ticks, ``1 + v + v // (m - 1)`` of its
        ``(n - 1)m + 1`` output frames are written (the first frame, the new ones, each finished pair's end)."""
        if self.multiplier is None:
            return value, maximum
        per_pair = self.multiplier - 1
        return 1 + value + int(value) // per_pair, 1 + maximum + int(maximum) // per_pair


class GraphInfo:
    """What the API-format graph says about each node; garbage in the graph is skipped, never raised."""

    def __init__(self, graph: Mapping[str, Any] | None, frame_nodes: Mapping[str, str | None] | None = None) -> None:
        raw = graph if isinstance(graph, Mapping) else {}
        named = frame_nodes or {}
        nodes = {str(k): v for k, v in raw.items() if isinstance(v, Mapping)}
        self.nodes: dict[str, NodeInfo] = {}
        frames: set[float] = set()
        for node_id, node in nodes.items():
            cls = node.get("class_type")
            cls = cls if isinstance(cls, str) else ""
            inputs = node.get("inputs")
            inputs = inputs if isinstance(inputs, Mapping) else {}
            meta = node.get("_meta")
            title = meta.get("title") if isinstance(meta, Mapping) else None
            title = title if isinstance(title, str) and title.strip() else (cls or None)
            is_sampler = cls in SAMPLER_CLASSES or cls.startswith("KSampler")
            per_frame = not is_sampler and (node_id in named or cls in FRAME_NODES_BY_CLASS)
            rule = named[node_id] if node_id in named else FRAME_NODES_BY_CLASS.get(cls)
            if is_sampler:
                weight = STEP_WEIGHT * self._steps(inputs, nodes)
            elif per_frame:
                weight = PROGRESS_WEIGHT
            elif cls in SLOW_CLASSES or "Loader" in cls or cls.startswith(("VAEDecode", "VAEEncode")):
                weight = SLOW_WEIGHT
            else:
                weight = 1.0
            multiplier = _literal(inputs.get(rule)) if per_frame and rule is not None else None
            self.nodes[node_id] = NodeInfo(
                title,
                weight,
                is_sampler,
                per_frame,
                int(multiplier) if multiplier is not None and multiplier >= 2 else None,
            )
            for name in FRAME_INPUTS & inputs.keys():
                count = _literal(inputs[name])
                if count is not None and count >= 2:
                    frames.add(count)
        self.frame_counts = frozenset(frames)

    @staticmethod
    def _steps(inputs: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]]) -> float:
        steps = _literal(inputs.get("steps"))
        if steps is None:
            # SamplerCustom(Advanced): the steps live on the scheduler node linked to ``sigmas``.
            link = inputs.get("sigmas")
            source = nodes.get(str(link[0])) if isinstance(link, list) and link else None
            source_inputs = source.get("inputs") if source is not None else None
            steps = _literal(source_inputs.get("steps")) if isinstance(source_inputs, Mapping) else None
        else:
            # KSamplerAdvanced runs only from start_at_step to end_at_step.
            start = _literal(inputs.get("start_at_step")) or 0.0
            end = _literal(inputs.get("end_at_step")) or steps
            steps = max(1.0, min(end, steps) - start)
        return min(max(steps or DEFAULT_STEPS, 1.0), 10_000.0)
