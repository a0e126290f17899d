"""ComfyUI's execution order (``comfy_execution/graph.py``: ``TopologicalSort`` + ``ExecutionList``), ported.

``add_node(output)`` walks upstream depth-first with a stack (inputs pushed in input order, popped last-first),
registering each uncached node in ``pending`` (insertion order matters) and the links between them. A node is
ready when nothing pending blocks it. Among ready nodes ``ux_friendly_pick_node`` chooses an output node first,
then a node that directly blocks an output, then one that blocks a node that blocks an output, else the first
ready node. The recordings' orders (``1 3 4 7 2 5 6`` for the basic graph, ``2 1 3 4 8 5 6 7`` for the video
graph) come out of exactly this. Lazy inputs, subgraph expansion and async nodes are not emulated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .object_info import is_output_node


class ExecutionList:
    def __init__(self, prompt: dict[str, Any], is_cached: Callable[[str], bool]) -> None:
        self.prompt = prompt
        self.is_cached = is_cached
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, dict[int, bool]]] = {}
        self.staged: str | None = None

    def _add_strong_link(self, from_id: str, socket: int, to_id: str) -> None:
        if not self.is_cached(from_id):
            self.add_node(from_id)
            if to_id not in self.blocking[from_id]:
                self.blocking[from_id][to_id] = {}
                self.block_count[to_id] += 1
            self.blocking[from_id][to_id][socket] = True

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, int, str]] = []
        while stack:
            unique_id = stack.pop()
            if unique_id in self.pending:
                continue
            self.pending[unique_id] = True
            self.block_count[unique_id] = 0
            self.blocking[unique_id] = {}
            for value in self.prompt[unique_id].get("inputs", {}).values():
                if isinstance(value, list) and len(value) == 2:
                    from_id, socket = value
                    if not self.is_cached(from_id):
                        stack.append(from_id)
                    links.append((from_id, socket, unique_id))
        for link in links:
            self._add_strong_link(*link)

    def is_empty(self) -> bool:
        return not self.pending

    def ready(self) -> list[str]:
        return [nid for nid in self.pending if self.block_count[nid] == 0]

    def _is_output(self, node_id: str) -> bool:
        return is_output_node(self.prompt[node_id]["class_type"])

    def stage_node_execution(self) -> str:
        available = self.ready()
        if not available:
            raise RuntimeError("Dependency cycle detected")
        self.staged = self._pick(available)
        return self.staged

    def _pick(self, nodes: list[str]) -> str:
        for nid in nodes:
            if self._is_output(nid):
                return nid
        for nid in nodes:
            if any(self._is_output(b) for b in self.blocking[nid]):
                return nid
        for nid in nodes:
            for b in self.blocking[nid]:
                if any(self._is_output(b1) for b1 in self.blocking[b]):
                    return nid
        return nodes[0]

    def complete_node_execution(self) -> None:
        node_id = self.staged
        assert node_id is not None
        del self.pending[node_id]
        for blocked in self.blocking[node_id]:
            self.block_count[blocked] -= 1
        del self.blocking[node_id]
        self.staged = None
