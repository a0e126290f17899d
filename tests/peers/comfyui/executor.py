"""The worker: runs queued prompts one at a time, like ComfyUI's ``prompt_worker`` + ``PromptExecutor``.

Per prompt: ``execution_start``; ``execution_cached`` (every node whose signature — class, constant inputs,
upstream signatures — has a cached result); then the execution list dissolves the graph in ComfyUI's order
(``comfy_execution/graph.py``: roots added depth-first from each output, ready nodes picked by
``ux_friendly_pick_node``: an output node first, else a node feeding an output, else one two steps from an output,
else the first ready node in insertion order). Per executed node: ``progress_state`` (running), ``executing``, the
node's ``progress`` / previews / text frames, ``executed`` (nodes with a UI), ``progress_state`` (finished). A
cached output node only re-sends its ``executed``. Then ``execution_success`` | ``execution_error`` |
``execution_interrupted``, history written (``status`` broadcast), and ``executing`` ``node: null``.

Job messages go to the prompt's ``client_id`` only; with no ``client_id``, ``executing`` / ``executed`` /
``execution_*`` are not sent, but ``progress``, ``progress_state`` and ``execution_interrupted`` are broadcast, as
on the real server (``no_client_id.jsonl``). Interrupts are noticed at a node's start and at progress updates.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from PIL import Image

from . import frames, media, nodes_ltxv  # noqa: F401  (nodes_ltxv registers LTX-Video's nodes)
from .nodes import NODES
from .object_info import NODE_SPECS, input_spec, is_output_node
from .queue import QueueItem
from .topo import ExecutionList

if TYPE_CHECKING:
    from .server import ComfyEmulator

P = ParamSpec("P")
T = TypeVar("T")
PREVIEW_METHODS = {"auto", "latent2rgb", "taesd"}


class Interrupted(Exception):
    """ComfyUI's ``InterruptProcessingException``."""


class InjectedError(Exception):
    """A node failure switched on with ``emu.faults.fail_node``; reported with the chosen exception type."""

    def __init__(self, message: str, exception_type: str) -> None:
        super().__init__(message)
        self.exception_type = exception_type


class ProgressBar:
    """``comfy.utils.ProgressBar``: the first, last and preview-carrying updates always go out; others only when
    ≥100 ms and ≥0.5 % since the last one sent."""

    def __init__(self, run: PromptRun, node_id: str, total: int) -> None:
        self.run, self.node_id, self.total = run, node_id, total
        self._last_time = 0.0
        self._last_value = -1

    async def update_absolute(self, value: int, total: int | None = None, preview: Image.Image | None = None) -> None:
        if total is not None:
            self.total = total
        value = min(value, self.total)
        now = time.perf_counter()
        if preview is None and self._last_value >= 0 and value < self.total:
            percent = (value - max(0, self._last_value)) / self.total * 100 if self.total > 0 else 100
            if now - self._last_time < 0.1 or percent < 0.5:
                return
        first = self._last_value < 0
        self._last_time, self._last_value = now, value
        await self.run.progress_hook(self.node_id, value, self.total, preview)
        held = self.run.emu.faults.take_hold(self.run.prompt[self.node_id]["class_type"]) if first else None
        while held is not None and not held.is_set():  # hold_progress: paused, but an interrupt still stops it
            self.run.check_interrupt()
            await asyncio.sleep(0.01)


class NodeContext:
    """What a node sees of the server while it runs (see ``nodes.py``)."""

    def __init__(self, run: PromptRun, node_id: str) -> None:
        self.run, self.node_id = run, node_id
        self.previews = run.previews
        self.output_dir, self.temp_dir = run.emu.output_dir, run.emu.temp_dir

    def progress(self, total: int) -> ProgressBar:
        return ProgressBar(self.run, self.node_id, total)

    async def step(self) -> None:
        await asyncio.sleep(self.run.emu.config.step_duration)
        self.run.check_interrupt()

    async def send_text(self, text: str) -> None:
        # GetImageSize calls send_progress_text without a sid: a broadcast.
        await self.run.emu.hub.send_bytes(frames.text(self.node_id, text), None)

    async def blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def input_path(self, name: str) -> Path:
        return self.run.emu.input_dir / name

    def model_list(self, folder: str) -> list[str]:
        return self.run.emu.file_list(folder)


def _format_value(x: Any) -> Any:
    if x is None or isinstance(x, int | float | bool | str):
        return x
    return str(x)


class PromptRun:
    def __init__(self, emu: ComfyEmulator, item: QueueItem) -> None:
        self.emu, self.item = emu, item
        self.prompt_id, self.prompt = item.prompt_id, item.prompt
        self.client_id: str | None = item.extra_data.get("client_id")
        method = item.extra_data.get("preview_method") or emu.config.preview_method
        self.previews = method in PREVIEW_METHODS
        self.status_messages: list[list[Any]] = []
        self.executed: list[str] = []
        self.ui_outputs: dict[str, dict[str, Any]] = {}
        self.progress_nodes: dict[str, dict[str, Any]] = {}
        self.legacy = emu.config.legacy
        self.messages_to_client = 0

    # -- sending -----------------------------------------------------------------------------------------------
    async def send(self, event: str, data: dict[str, Any], *, to_all_if_anonymous: bool = False) -> None:
        if self.client_id is None and not to_all_if_anonymous:
            return
        await self._before_job_message()
        await self.emu.hub.send_json(event, data, self.client_id)

    async def send_binary(self, payload: bytes) -> None:
        await self._before_job_message()
        await self.emu.hub.send_bytes(payload, self.client_id)

    async def _before_job_message(self) -> None:
        self.messages_to_client += 1
        for drop in list(self.emu.faults.socket_drops):
            if drop.client_id not in (None, self.client_id) or drop.after_messages is None:
                continue
            if self.messages_to_client > drop.after_messages and self.client_id is not None:
                self.emu.faults.socket_drops.remove(drop)
                self.emu.faults.fired.append(f"drop_socket {self.client_id} after {drop.after_messages}")
                await self.emu.hub.drop(self.client_id)

    async def add_message(self, event: str, data: dict[str, Any], broadcast: bool = False) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.status_messages.append([event, data])
        if self.client_id is not None or broadcast:
            await self.send(event, data, to_all_if_anonymous=True)

    async def send_progress_state(self) -> None:
        if self.legacy:
            return
        nodes = {
            nid: {
                **state,
                "node_id": nid,
                "prompt_id": self.prompt_id,
                "display_node_id": nid,
                "parent_node_id": None,
                "real_node_id": nid,
            }
            for nid, state in self.progress_nodes.items()
        }
        await self.send("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes}, to_all_if_anonymous=True)

    async def progress_hook(self, node_id: str, value: int, total: int, preview: Image.Image | None) -> None:
        self.check_interrupt()
        self.progress_nodes[node_id] = {"value": value, "max": total, "state": "running"}
        await self.send_progress_state()
        jpeg = media.encode_preview(preview) if preview is not None else None
        supports_meta = self.emu.hub.supports_preview_metadata(self.client_id) and not self.legacy
        if jpeg is not None and supports_meta:
            meta = {
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            await self.send_binary(frames.preview_with_metadata(jpeg, meta))
        progress: dict[str, Any] = {"value": value, "max": total, "prompt_id": self.prompt_id, "node": node_id}
        if self.legacy:
            del progress["prompt_id"]
        await self.send("progress", progress, to_all_if_anonymous=True)
        if jpeg is not None and not supports_meta:
            await self.send_binary(frames.preview_image(jpeg))

    def check_interrupt(self) -> None:
        if self.emu.worker.interrupt_flag:
            raise Interrupted()

    # -- running -----------------------------------------------------------------------------------------------
    async def execute(self) -> bool:
        worker = self.emu.worker
        worker.interrupt_flag = False
        await self.add_message("execution_start", {"prompt_id": self.prompt_id})
        cache = worker.cache
        signatures = worker.signatures(self.prompt)
        # ComfyUI's cache holds one entry per node id and forgets ids the new prompt lacks (clean_unused).
        for stale in [nid for nid in cache if nid not in self.prompt]:
            del cache[stale]

        def hit(nid: str) -> bool:
            return nid in cache and cache[nid][0] == signatures[nid]

        cached = [nid for nid in self.prompt if hit(nid)]
        await self.add_message("execution_cached", {"nodes": cached, "prompt_id": self.prompt_id})
        outputs: dict[str, tuple[Any, ...]] = {nid: cache[nid][1] for nid in cached}
        execution = ExecutionList(self.prompt, is_cached=hit)
        for nid in self.item.outputs:
            execution.add_node(nid)
        while not execution.is_empty():
            node_id = execution.stage_node_execution()
            class_type = self.prompt[node_id]["class_type"]
            if hit(node_id):
                _, values, ui = cache[node_id]
                outputs[node_id] = values
                if ui is not None:
                    self.ui_outputs[node_id] = ui
                    await self.send("executed", self._executed(node_id, ui))
                await self._finish_progress(node_id, cached=True)
                execution.complete_node_execution()
                continue
            inputs: dict[str, Any] = {}
            try:
                inputs = self._inputs(node_id, outputs)
                self.progress_nodes[node_id] = {"value": 0.0, "max": 1.0, "state": "running"}
                await self.send_progress_state()
                await self._maybe_drop_at(node_id)
                worker.last_node_id = node_id
                await self.send("executing", {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id})
                self.check_interrupt()
                failure = self.emu.faults.take_node_failure(node_id, class_type)
                if failure is not None:
                    raise InjectedError(failure.message, failure.exception_type)
                values, ui = await NODES[class_type](NodeContext(self, node_id), **inputs)
            except Interrupted:
                await self.add_message(
                    "execution_interrupted",
                    {
                        "prompt_id": self.prompt_id,
                        "node_id": node_id,
                        "node_type": class_type,
                        "executed": list(self.executed),
                    },
                    broadcast=True,
                )
                return False
            except Exception as ex:
                await self._report_error(node_id, class_type, ex, inputs)
                return False
            outputs[node_id] = values
            if ui is not None:
                self.ui_outputs[node_id] = ui
                await self.send("executed", self._executed(node_id, ui))
            cache[node_id] = (signatures[node_id], values, ui)
            await self._finish_progress(node_id)
            self.executed.append(node_id)
            execution.complete_node_execution()
        if not self.legacy:
            await self.add_message("execution_success", {"prompt_id": self.prompt_id})
        return True

    async def _maybe_drop_at(self, node_id: str) -> None:
        for drop in list(self.emu.faults.socket_drops):
            if drop.at_node == node_id and drop.client_id in (None, self.client_id) and self.client_id is not None:
                self.emu.faults.socket_drops.remove(drop)
                self.emu.faults.fired.append(f"drop_socket {self.client_id} at {node_id}")
                await self.emu.hub.drop(self.client_id)

    def _executed(self, node_id: str, ui: dict[str, Any]) -> dict[str, Any]:
        return {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.prompt_id}

    async def _finish_progress(self, node_id: str, cached: bool = False) -> None:
        entry = self.progress_nodes.setdefault(node_id, {"value": 0, "max": 1, "state": "pending"})
        entry["state"], entry["value"] = "finished", entry["max"]
        await self.send_progress_state()

    def _inputs(self, node_id: str, outputs: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
        spec = input_spec(self.prompt[node_id]["class_type"], self.emu.file_list)
        raw = self.prompt[node_id].get("inputs", {})
        inputs: dict[str, Any] = {}
        for category in ("required", "optional"):
            for name in spec[category]:
                if name not in raw:
                    continue
                value = raw[name]
                if isinstance(value, list):
                    value = outputs[value[0]][value[1]]
                inputs[name.replace(".", "_")] = value
        return inputs

    async def _report_error(self, node_id: str, class_type: str, ex: Exception, inputs: dict[str, Any]) -> None:
        if isinstance(ex, InjectedError):
            exception_type = ex.exception_type
        else:
            kind = type(ex)
            exception_type = (
                kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
            )
        await self.add_message(
            "execution_error",
            {
                "prompt_id": self.prompt_id,
                "node_id": node_id,
                "node_type": class_type,
                "executed": list(self.executed),
                "exception_message": f"{ex}\n",
                "exception_type": exception_type,
                "traceback": traceback.format_tb(sys.exc_info()[2]),
                "current_inputs": {k: [_format_value(v)] for k, v in inputs.items()},
                "current_outputs": list(self.prompt),
            },
        )

    def history_result(self) -> dict[str, Any]:
        meta = {
            nid: {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
            for nid in self.ui_outputs
        }
        return {"outputs": dict(self.ui_outputs), "meta": meta}


class Worker:
    """The one prompt worker task: FIFO by number, one prompt at a time."""

    def __init__(self, emu: ComfyEmulator) -> None:
        self.emu = emu
        self.cache: dict[str, tuple[str, tuple[Any, ...], dict[str, Any] | None]] = {}
        self.interrupt_flag = False
        self.running_client_id: str | None = None
        self.last_node_id: str | None = None
        self.current: QueueItem | None = None

    def signatures(self, prompt: dict[str, Any]) -> dict[str, str]:
        """ComfyUI's input signature: class, constant inputs and upstream signatures (recursively);
        ``LoadImage`` adds the file's size and mtime (its ``IS_CHANGED`` hashes the file)."""
        sigs: dict[str, str] = {}

        def sig(nid: str) -> str:
            if nid not in sigs:
                node = prompt[nid]
                parts: dict[str, Any] = {"class": node["class_type"]}
                for name, value in sorted(node.get("inputs", {}).items()):
                    parts[name] = ["link", sig(value[0]), value[1]] if isinstance(value, list) else value
                if node["class_type"] == "LoadImage":
                    path = self.emu.input_dir / str(node.get("inputs", {}).get("image", ""))
                    stat = path.stat() if path.is_file() else None
                    parts["changed"] = [stat.st_size, stat.st_mtime_ns] if stat else None
                sigs[nid] = json.dumps(parts, sort_keys=True, default=str)
            return sigs[nid]

        for nid in prompt:
            sig(nid)
        return sigs

    async def run_forever(self) -> None:
        queue = self.emu.queue
        while True:
            item, item_id = await queue.get()
            self.current = item
            self.running_client_id = item.extra_data.get("client_id")
            run = PromptRun(self.emu, item)
            try:
                success = await run.execute()
            finally:
                self.last_node_id = None
            status = {
                "status_str": "success" if success else "error",
                "completed": success,
                "messages": run.status_messages,
            }
            if self.emu.faults.record_delay > 0:
                self.emu.faults.fired.append(f"delay_record {self.emu.faults.record_delay}")
                await asyncio.sleep(self.emu.faults.record_delay)
            await queue.task_done(item_id, run.history_result(), status)
            self.current = None
            self.running_client_id = None
            if run.client_id is not None:
                await run.send("executing", {"node": None, "prompt_id": item.prompt_id})
            self.emu.notify()

    def interrupt(self) -> None:
        self.interrupt_flag = True


def known_class(class_type: str) -> bool:
    return class_type in NODE_SPECS and class_type in NODES


__all__ = ["ExecutionList", "PromptRun", "Worker", "is_output_node", "known_class"]
