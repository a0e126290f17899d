"""Typed ComfyUI websocket events: what ``discomfy.comfy.protocol.decode`` turns a frame into.

One frozen dataclass per message type ComfyUI sends, named after it; ``Unknown`` for everything else (custom
nodes send their own types). Every field that ComfyUI may omit, or that older servers lack, is optional here:
``None`` means "the server did not say", never "zero". Node ids are strings, as in the API-format graph.

These classes hold data only: no parsing (that is ``protocol.py``) and no behaviour (that is ``progress.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from discomfy.comfy.types import OutputFile


@dataclass(frozen=True, slots=True)
class Status:
    """``status``: broadcast to every socket whenever the queue changes, and first on every new socket."""

    queue_remaining: int | None
    #: Only in the first ``status`` a socket receives: the clientId the server registered it under.
    sid: str | None = None


@dataclass(frozen=True, slots=True)
class FeatureFlags:
    """``feature_flags``: the server's answer to ours (``supports_preview_metadata`` and friends)."""

    flags: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExecutionStart:
    """``execution_start``: the prompt left the queue and began to run."""

    prompt_id: str | None


@dataclass(frozen=True, slots=True)
class ExecutionCached:
    """``execution_cached``: nodes whose results are reused; they never appear in ``executing``."""

    prompt_id: str | None
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Executing:
    """``executing``: ``node`` starts; ``node is None`` means the prompt is over (history is written).

    ``prompt_id`` is missing on very old servers, and in the one ``executing`` a reconnected socket receives
    when its job is still running.
    """

    prompt_id: str | None
    node: str | None
    display_node: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """``progress``: ``value`` of ``max`` for one node (sampler steps, frames, tiles …); throttled by the server.

    Old servers send neither ``prompt_id`` nor ``node``.
    """

    prompt_id: str | None
    node: str | None
    value: float
    max: float


class NodeState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    UNKNOWN = "unknown"


class NodeProgress(NamedTuple):
    """One node in ``progress_state``. A named tuple, not a frozen dataclass: just as immutable, and twice as
    fast to build, which counts here (one per node in every ``progress_state``, the most frequent message)."""

    node_id: str
    state: NodeState
    value: float | None = None
    max: float | None = None
    display_node_id: str | None = None
    parent_node_id: str | None = None
    real_node_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProgressState:
    """``progress_state`` (newer servers): a full snapshot of every node the prompt has touched so far."""

    prompt_id: str | None
    nodes: tuple[NodeProgress, ...] = ()


@dataclass(frozen=True, slots=True)
class Executed:
    """``executed``: a node finished and has UI output (saved or temporary files)."""

    prompt_id: str | None
    node: str | None
    display_node: str | None = None
    outputs: tuple[OutputFile, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecutionSuccess:
    """``execution_success`` (newer servers): every output ran; history is written just after."""

    prompt_id: str | None


@dataclass(frozen=True, slots=True)
class ExecutionError:
    """``execution_error``: a node raised; the prompt is over."""

    prompt_id: str | None
    node_id: str | None = None
    node_type: str | None = None
    exception_message: str = ""
    exception_type: str = ""
    traceback: tuple[str, ...] = ()
    executed: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """Readable for a person: ``"LoadImage: cannot identify image file 'x.png'"``."""
        message = self.exception_message.strip() or self.exception_type.strip() or "failed"
        return f"{self.node_type or 'a node'}: {message}"


@dataclass(frozen=True, slots=True)
class ExecutionInterrupted:
    """``execution_interrupted``: ``/interrupt`` (or the atomic cancel) stopped the prompt."""

    prompt_id: str | None
    node_id: str | None = None
    node_type: str | None = None
    executed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Preview:
    """Binary frame 1 (``PREVIEW_IMAGE``, no ids) or 4 (``PREVIEW_IMAGE_WITH_METADATA``)."""

    image: bytes
    mime_type: str
    node_id: str | None = None
    prompt_id: str | None = None
    display_node_id: str | None = None
    parent_node_id: str | None = None
    real_node_id: str | None = None

    def __repr__(self) -> str:  # a preview is tens of kilobytes: keep reprs (and test failures) readable
        return f"Preview({self.mime_type}, {len(self.image)} bytes, node={self.node_id}, prompt={self.prompt_id})"


@dataclass(frozen=True, slots=True)
class Text:
    """Binary frame 3 (``TEXT``): a node's text output, e.g. from a "show text" node."""

    node_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """A JSON message type or binary event type we do not handle: ``kind`` is its ``type`` (or the number)."""

    kind: str | int
    data: Any = None


type Event = (
    Status
    | FeatureFlags
    | ExecutionStart
    | ExecutionCached
    | Executing
    | Progress
    | ProgressState
    | Executed
    | ExecutionSuccess
    | ExecutionError
    | ExecutionInterrupted
    | Preview
    | Text
    | Unknown
)
