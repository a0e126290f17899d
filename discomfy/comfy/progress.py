"""The progress of one ComfyUI prompt, as immutable snapshots: a pure state machine fed decoded events.

How it works:
- ``ProgressTracker(prompt_id, graph)`` reads the API-format graph once (``GraphInfo``): each node's title
  (``_meta.title`` or its class), its weight, whether it is a sampler or a per-frame node, and the graph's frame
  counts. ``feed(event, now)`` applies one event from ``protocol.decode``; the ``mark_*`` methods apply what the
  reconciliation layer learnt over HTTP. Each returns the latest ``Snapshot``; a new one (with ``revision`` + 1)
  only when something a person could see changed, else the very same object.
- Whose message is it: job messages carrying another ``prompt_id`` are ignored. Without a ``prompt_id``
  (old servers' ``progress``, previews of type 1) a message is ours only while our prompt is running, because
  job messages go only to the socket whose clientId submitted the prompt, and our clientId is our job's.
  ``executing`` with a node but no ``prompt_id`` is what a reconnected socket gets when its job still runs: ours.
- The end: ``execution_success`` → DONE; on old servers without it, ``executing`` with ``node: null`` and our
  ``prompt_id`` → DONE, and so does one without any ``prompt_id`` while we run and were last told of a node of
  ours. ``execution_error`` → FAILED (reason: "NodeType: message"), ``execution_interrupted`` → CANCELLED.
  Terminal phases are final: later events and marks change nothing. The one way back, RUNNING → QUEUED, is
  ``mark_queued`` after a resubmission (the server lost the prompt).
- Nodes: the total is the graph's nodes minus ``execution_cached`` ones. A node is done when ``executing``
  moves on from it, when it sends ``executed``, or when ``progress_state`` says finished. When we watched the
  prompt finish, the total becomes the count we saw done (the server skips nodes no output needs); when HTTP
  tells us it is done (``mark_done``), done becomes the total.
- Weights (``graph_info.py``): a sampler weighs twice its steps, slow nodes 3, others 1 (10 once they report
  progress). ``raw`` = weight done (plus the running nodes' partial progress) / total weight.
- ``fraction`` never goes backwards: when ``raw`` shrinks (a node turned out heavier), the shown fraction keeps
  its value and the rest of ``raw`` is stretched over the rest of the bar. While running it stays below 1.
- Frames: the progress of a non-sampler node counts as frames when its class is a known per-frame node
  (``ColorTransfer``, ``FrameInterpolate`` — whose ticks are turned into true output frames, see
  ``graph_info.NodeInfo.frames``) or its ``max`` equals one of the graph's frame counts (a literal ``batch_size``,
  ``length``, ``frames``, ``num_frames``, ``frame_count`` or ``video_frames`` ≥ 2). A sampler's is steps; with
  no graph at all, any progress is taken for steps.
- ETA: the fraction's average rate since the prompt began running; ``None`` until 2 % and half a second.

Never: do I/O, import asyncio, read a clock (``now`` is always given), raise on any event, move ``fraction``
backwards, or leave a terminal phase.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
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
    NodeState,
    Preview,
    Progress,
    ProgressState,
    Status,
)
from discomfy.comfy.graph_info import PROGRESS_WEIGHT, GraphInfo
from discomfy.comfy.rejection import scrub_paths
from discomfy.comfy.types import OutputFile
from discomfy.outcome import Failure

__all__ = ["Phase", "ProgressTracker", "Snapshot"]

RUNNING_CAP = 0.99
ETA_MIN_FRACTION = 0.02
ETA_MIN_SECONDS = 0.5


class Phase(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({Phase.DONE, Phase.FAILED, Phase.CANCELLED})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a renderer needs to draw one job's progress; ``revision`` grows with every visible change."""

    prompt_id: str
    phase: Phase
    revision: int = 0
    #: Jobs ahead of ours (from ``status`` queue_remaining, or exact from HTTP); ``None`` unless QUEUED.
    queue_position: int | None = None
    nodes_done: int = 0
    nodes_total: int = 0
    current_node: str | None = None
    current_title: str | None = None
    #: The current node's own progress, whatever it counts; ``step_*`` / ``frames_*`` say what it counts.
    node_value: float | None = None
    node_max: float | None = None
    step_value: float | None = None
    step_max: float | None = None
    frames_value: float | None = None
    frames_max: float | None = None
    preview: Preview | None = None
    outputs: tuple[OutputFile, ...] = ()
    #: Why the job failed (a kind), with ``error`` as its detail.
    failure: Failure | None = None
    error: str | None = None
    fraction: float = 0.0
    started_at: float | None = None
    elapsed: float = 0.0
    eta_seconds: float | None = None
    #: The ``now`` of the event that made this snapshot (an ETA is relative to it).
    updated_at: float | None = None

    @property
    def is_terminal(self) -> bool:
        return self.phase in _TERMINAL


class ProgressTracker:
    """Feed it events (and what HTTP says); read ``snapshot``. See the module docstring for the rules."""

    def __init__(
        self,
        prompt_id: str,
        graph: Mapping[str, Any] | None = None,
        *,
        started_at: float | None = None,
        frame_nodes: Mapping[str, str | None] | None = None,
    ) -> None:
        self.prompt_id = prompt_id
        self._graph = GraphInfo(graph, frame_nodes)
        self._weights = {node_id: node.weight for node_id, node in self._graph.nodes.items()}
        self._phase = Phase.QUEUED
        self._queue_position: int | None = None
        self._exact_position = False
        self._cached: set[str] = set()
        self._seen: set[str] = set()  # nodes we were told of, for graph-less counting
        self._plan: tuple[set[str], float] | None = None  # (nodes to run, their weight); None: recompute
        self._done: set[str] = set()
        self._progress: dict[str, tuple[float, float]] = {}
        self._current: str | None = None
        self._current_key: str | None = None
        self._outputs: dict[tuple[str, str, str, str], OutputFile] = {}
        self._preview: Preview | None = None
        self._previews = 0  # counts previews, so that a new one is a change even if it looks the same
        self._error: str | None = None
        self._failure: Failure | None = None
        self._nodes_final: tuple[int, int] | None = None
        self._started_at = started_at
        self._running_since: float | None = None
        self._fraction = 0.0
        self._anchor = (0.0, 0.0)  # (raw, fraction) where the bar was last re-stretched
        self._key: tuple[Any, ...] = ()
        self._snapshot = Snapshot(prompt_id, Phase.QUEUED, started_at=started_at)

    @property
    def snapshot(self) -> Snapshot:
        """The latest snapshot (what the last ``feed`` or ``mark_*`` returned)."""
        return self._snapshot

    # --- the public surface -------------------------------------------------------------------------------------

    def feed(self, event: Event, now: float) -> Snapshot:
        """Apply one decoded websocket event; returns the latest snapshot (the same object if nothing changed)."""
        if self._phase in _TERMINAL:
            return self._snapshot
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, now)
        return self._publish(now)

    def rename(self, prompt_id: str) -> None:
        """The server knows the job by another id (an older ComfyUI minted its own): follow that one."""
        self.prompt_id = prompt_id

    def mark_queued(self, position: int | None, now: float) -> Snapshot:
        """The prompt is pending, ``position`` jobs ahead (``None``: unknown).

        While running, this means it was submitted again (the server lost it): back to QUEUED with the node
        count started over; ``fraction`` holds, and the new run fills the rest of the bar.
        """
        if self._phase is Phase.RUNNING:
            self._phase, self._running_since = Phase.QUEUED, None
            self._cached, self._seen, self._done, self._progress = set(), set(), set(), {}
            self._current = self._current_key = self._plan = None
            self._outputs, self._exact_position = {}, False
            self._anchor = (0.0, self._fraction)
        if self._phase is Phase.QUEUED and position is not None:
            self._queue_position, self._exact_position = max(0, position), True
        return self._publish(now)

    def mark_running(self, now: float) -> Snapshot:
        """HTTP says the prompt is running (we may have missed ``execution_start``)."""
        if self._phase is Phase.QUEUED:
            self._start(now)
        return self._publish(now)

    def mark_done(self, outputs: Sequence[OutputFile], now: float) -> Snapshot:
        """HTTP says the prompt finished, with these outputs. We may have missed messages: done := total."""
        if self._phase not in _TERMINAL:
            for output in outputs:
                self._add_output(output)
            total = self._count()[1]
            self._finish(Phase.DONE, now, nodes=(total, total))
        return self._publish(now)

    def mark_failed(self, reason: str | None, now: float, failure: Failure = Failure.SERVER) -> Snapshot:
        if self._phase not in _TERMINAL:
            self._failure, self._error = failure, reason
            self._finish(Phase.FAILED, now)
        return self._publish(now)

    def mark_cancelled(self, now: float) -> Snapshot:
        if self._phase not in _TERMINAL:
            self._finish(Phase.CANCELLED, now)
        return self._publish(now)

    # --- one handler per ComfyUI message ----------------------------------------------------------------------

    def _on_status(self, event: Status, now: float) -> None:
        # status (broadcast): queue_remaining counts the running prompt and every pending one, ours included.
        if self._phase is Phase.QUEUED and event.queue_remaining is not None:
            ahead = max(0, event.queue_remaining - 1)
            if self._exact_position and self._queue_position is not None:
                ahead = min(ahead, self._queue_position)  # after HTTP's exact answer, only fewer can be ahead
            self._queue_position = ahead

    def _on_execution_start(self, event: ExecutionStart, now: float) -> None:
        if event.prompt_id == self.prompt_id and self._phase is Phase.QUEUED:
            self._start(now)

    def _on_execution_cached(self, event: ExecutionCached, now: float) -> None:
        if event.prompt_id == self.prompt_id:
            self._start(now)
            self._cached.update(event.nodes)
            self._plan = None

    def _on_executing(self, event: Executing, now: float) -> None:
        if event.node is None:
            # executing null: the prompt is over and history is written. With our prompt_id on a server that
            # has no execution_success (error and interrupt came before and are terminal already): done. Without
            # any prompt_id (very old servers): ours only if we run and were last told of a node of ours.
            ours_ended = event.prompt_id == self.prompt_id or (
                event.prompt_id is None and self._phase is Phase.RUNNING and self._current is not None
            )
            if ours_ended:
                self._finish(Phase.DONE, now, nodes=None)
            return
        # executing without prompt_id: the one a reconnected socket gets while its (our) prompt runs.
        if event.prompt_id is not None and event.prompt_id != self.prompt_id:
            return
        self._start(now)
        key = self._key_of(event.node, event.display_node)
        if self._current_key is not None and self._current_key != key:
            self._done.add(self._current_key)
        self._current, self._current_key = event.node, key
        self._see(key)

    def _on_progress(self, event: Progress, now: float) -> None:
        # progress: old servers send neither prompt_id nor node; then it is the running prompt's (ours if we run).
        if not self._claims(event.prompt_id) or event.max <= 0:
            return
        self._start(now)
        node = event.node or self._current
        if node is None:
            return
        key = self._key_of(node, None)
        if self._current is None:
            self._current, self._current_key = node, key
        self._set_progress(key, event.value, event.max)

    def _on_progress_state(self, event: ProgressState, now: float) -> None:
        # progress_state (newer servers): every node touched so far, with its state and value/max.
        if not self._claims(event.prompt_id):
            return
        self._start(now)
        for entry in event.nodes:
            key = self._key_of(entry.node_id, entry.display_node_id, entry.real_node_id)
            if entry.state is NodeState.FINISHED:
                self._done.add(key)
                self._see(key)
            elif entry.state is NodeState.RUNNING:
                self._see(key)
                if entry.value is not None and entry.max is not None and entry.max > 1:
                    self._set_progress(key, entry.value, entry.max)  # 0/1 is only a placeholder
                if self._current_key is None or self._current_key in self._done:
                    self._current, self._current_key = entry.node_id, key

    def _on_executed(self, event: Executed, now: float) -> None:
        # executed: a node finished with UI output (also re-sent for cached output nodes).
        if not self._claims(event.prompt_id):
            return
        self._start(now)
        for output in event.outputs:
            self._add_output(output)
        if event.node is not None:
            key = self._key_of(event.node, event.display_node)
            self._done.add(key)
            self._see(key)

    def _on_execution_success(self, event: ExecutionSuccess, now: float) -> None:
        if event.prompt_id == self.prompt_id:
            self._finish(Phase.DONE, now, nodes=None)

    def _on_execution_error(self, event: ExecutionError, now: float) -> None:
        if event.prompt_id == self.prompt_id:
            # ComfyUI's words are shown to the user: never with the server's file paths in them.
            self._failure, self._error = Failure.WORKFLOW, scrub_paths(event.reason)[:1000]
            self._finish(Phase.FAILED, now)

    def _on_execution_interrupted(self, event: ExecutionInterrupted, now: float) -> None:
        if event.prompt_id == self.prompt_id:
            self._finish(Phase.CANCELLED, now)

    def _on_preview(self, event: Preview, now: float) -> None:
        # Binary 4 names its prompt (another's is ignored); binary 1 names none: ours only while we run.
        if event.image and self._claims(event.prompt_id):
            self._preview = event
            self._previews += 1

    # --- the state behind them -------------------------------------------------------------------------------

    def _claims(self, prompt_id: str | None) -> bool:
        return prompt_id == self.prompt_id or (prompt_id is None and self._phase is Phase.RUNNING)

    def _key_of(self, node: str, display: str | None, real: str | None = None) -> str:
        """The graph node an id stands for: expanded and subgraph nodes report their ``display``/``real`` node."""
        nodes = self._graph.nodes
        if not nodes or node in nodes:
            return node
        for other in (real, display):
            if other is not None and other in nodes:
                return other
        return node

    def _start(self, now: float) -> None:
        if self._phase is Phase.QUEUED:
            self._phase, self._queue_position, self._running_since = Phase.RUNNING, None, now

    def _set_progress(self, key: str, value: float, maximum: float) -> None:
        self._progress[key] = (value, maximum)
        node = self._graph.nodes.get(key)
        heavier = (node is None or not node.is_sampler) and maximum >= 2
        if heavier and self._weights.get(key, 1.0) < PROGRESS_WEIGHT:
            self._weights[key], self._plan = PROGRESS_WEIGHT, None

    def _add_output(self, output: OutputFile) -> None:
        self._outputs.setdefault((output.node_id, output.filename, output.subfolder, output.folder_type), output)

    def _finish(self, phase: Phase, now: float, nodes: tuple[int, int] | None = None) -> None:
        if phase is Phase.DONE:
            if nodes is None and self._running_since is None:  # it ended before we saw it run
                total = self._count()[1]
                nodes = (total, total)
            elif nodes is None:  # we watched it finish: what we saw done is what had to run
                done = self._count()[0]
                nodes = (done, done)
            self._nodes_final, self._fraction = nodes, 1.0
            self._current = self._current_key = None
        self._phase, self._queue_position = phase, None

    def _see(self, key: str) -> None:
        if key not in self._seen:
            self._seen.add(key)
            self._plan = None

    def _planned(self) -> tuple[set[str], float]:
        if self._plan is None:
            to_run = (self._graph.nodes.keys() if self._graph.nodes else self._seen) - self._cached
            total = sum(self._weights.get(key, 1.0) for key in to_run)
            if not self._graph.nodes:
                total += 1.0  # without a graph, something always remains unknown
            self._plan = (to_run, total)
        return self._plan

    def _count(self) -> tuple[int, int]:
        if self._nodes_final is not None:
            return self._nodes_final
        to_run = self._planned()[0]
        return len(self._done & to_run), len(to_run)

    def _raw(self) -> float:
        to_run, total = self._planned()
        weights = self._weights
        done = sum(weights.get(key, 1.0) for key in self._done & to_run)
        for key, (value, maximum) in self._progress.items():
            if key in to_run and key not in self._done:
                done += weights.get(key, 1.0) * min(1.0, max(0.0, value / maximum))
        return min(1.0, done / total) if total > 0 else 0.0

    def _advance(self) -> None:
        """Move ``fraction`` towards ``raw`` without ever going back (see the module docstring)."""
        raw = self._raw()
        anchor_raw, anchor_fraction = self._anchor
        span = 1.0 - anchor_raw
        target = anchor_fraction + (1.0 - anchor_fraction) * (raw - anchor_raw) / span if span > 0 else 0.0
        if target < self._fraction:
            self._anchor = (raw, self._fraction)
        else:
            self._fraction = min(target, RUNNING_CAP)

    def _publish(self, now: float) -> Snapshot:
        if self._started_at is None:
            self._started_at = now
        if self._phase is Phase.RUNNING:
            self._advance()
        done, total = self._count()
        current = self._current_key
        value = maximum = step = frames = None
        if current is not None and current in self._progress and current not in self._done:
            value, maximum = self._progress[current]
            node = self._graph.nodes.get(current)
            if (node is not None and node.is_sampler) or not self._graph.nodes:
                step = (value, maximum)
            elif node is not None and node.per_frame:
                frames = node.frames(value, maximum)
            elif maximum in self._graph.frame_counts:
                frames = (value, maximum)
        title = self._graph.nodes[current].title if current in self._graph.nodes else None
        key: tuple[Any, ...] = (self._phase, self._queue_position, done, total, self._current, title, value, maximum)
        key += (self._previews, len(self._outputs), self._error, self._fraction)
        if key == self._key:
            return self._snapshot
        self._key = key
        elapsed = max(0.0, now - self._started_at)
        eta = None
        since = self._running_since
        if self._phase is Phase.RUNNING and since is not None and self._fraction >= ETA_MIN_FRACTION:
            running = now - since
            if running >= ETA_MIN_SECONDS:
                eta = running * (1.0 - self._fraction) / self._fraction
        self._snapshot = Snapshot(
            prompt_id=self.prompt_id,
            phase=self._phase,
            revision=self._snapshot.revision + 1,
            queue_position=self._queue_position,
            nodes_done=done,
            nodes_total=total,
            current_node=self._current,
            current_title=title,
            node_value=value,
            node_max=maximum,
            step_value=step[0] if step else None,
            step_max=step[1] if step else None,
            frames_value=frames[0] if frames else None,
            frames_max=frames[1] if frames else None,
            preview=self._preview,
            outputs=tuple(self._outputs.values()),
            failure=self._failure,
            error=self._error,
            fraction=self._fraction,
            started_at=self._started_at,
            elapsed=elapsed,
            eta_seconds=eta,
            updated_at=now,
        )
        return self._snapshot


_HANDLERS: dict[type, Callable[[ProgressTracker, Any, float], None]] = {
    Status: ProgressTracker._on_status,
    ExecutionStart: ProgressTracker._on_execution_start,
    ExecutionCached: ProgressTracker._on_execution_cached,
    Executing: ProgressTracker._on_executing,
    Progress: ProgressTracker._on_progress,
    ProgressState: ProgressTracker._on_progress_state,
    Executed: ProgressTracker._on_executed,
    ExecutionSuccess: ProgressTracker._on_execution_success,
    ExecutionError: ProgressTracker._on_execution_error,
    ExecutionInterrupted: ProgressTracker._on_execution_interrupted,
    Preview: ProgressTracker._on_preview,
}
