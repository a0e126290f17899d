"""The prompt queue and history, like ComfyUI's ``execution.PromptQueue``, and the ``/api/jobs`` views of them
(``comfy_execution/jobs.py``).

Queue items are ``[number, prompt_id, prompt, extra_data, outputs_to_execute]`` kept as a binary heap ordered by
``(number, prompt_id)``: ``queue_pending`` is the heap's array order, as the server answers it. Every change of the
queue broadcasts ``status`` with ``queue_remaining`` = pending + running. History keeps insertion order.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import ComfyEmulator

PREVIEWABLE = {"images", "video", "audio", "3d", "text"}
JOB_STATUSES = ["pending", "in_progress", "completed", "failed", "cancelled"]


@dataclass
class QueueItem:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]

    def __lt__(self, other: QueueItem) -> bool:
        return (self.number, self.prompt_id) < (other.number, other.prompt_id)

    def as_list(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue:
    def __init__(self, emu: ComfyEmulator) -> None:
        self.emu = emu
        self.pending: list[QueueItem] = []
        self.running: dict[int, QueueItem] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.task_counter = 0
        self.number = 0
        self._not_empty = asyncio.Event()

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": len(self.pending) + len(self.running)}}

    async def updated(self) -> None:
        await self.emu.hub.send_json("status", {"status": self.queue_info()})

    async def put(self, item: QueueItem) -> None:
        heapq.heappush(self.pending, item)
        self._not_empty.set()
        await self.updated()

    async def get(self) -> tuple[QueueItem, int]:
        while not self.pending:
            self._not_empty.clear()
            await self._not_empty.wait()
        item = heapq.heappop(self.pending)
        i = self.task_counter
        self.running[i] = copy.deepcopy(item)
        self.task_counter += 1
        await self.updated()
        return item, i

    async def task_done(self, item_id: int, result: dict[str, Any], status: dict[str, Any]) -> None:
        item = self.running.pop(item_id)
        self.history[item.prompt_id] = {"prompt": item.as_list(), "outputs": {}, "status": status, **result}
        await self.updated()

    def running_items(self) -> list[QueueItem]:
        return list(self.running.values())

    async def wipe(self) -> None:
        self.pending = []
        await self.updated()

    async def delete(self, prompt_id: str) -> bool:
        for i, item in enumerate(self.pending):
            if item.prompt_id == prompt_id:
                if len(self.pending) == 1:
                    await self.wipe()
                else:
                    self.pending.pop(i)
                    heapq.heapify(self.pending)
                await self.updated()
                return True
        return False

    def reset(self) -> None:
        """A process restart: queue, running set and history are gone (the counter too)."""
        self.pending, self.running, self.history = [], {}, {}
        self.task_counter, self.number = 0, 0

    def get_history(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        for i, (key, value) in enumerate(self.history.items()):
            if i >= offset:
                out[key] = value
                if max_items is not None and len(out) >= max_items:
                    break
        return copy.deepcopy(out)


# ---------------------------------------------------------------------------------------------- /api/jobs views
def _prune(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def queue_job(item: QueueItem, status: str) -> dict[str, Any]:
    return _prune(
        {
            "id": item.prompt_id,
            "status": status,
            "priority": item.number,
            "create_time": item.extra_data.get("create_time"),
            "outputs_count": 0,
            "previewable_outputs_count": 0,
            "workflow_id": item.extra_data.get("extra_pnginfo", {}).get("workflow", {}).get("id"),
        }
    )


def _outputs_summary(outputs: dict[str, Any]) -> tuple[int, int, dict[str, Any] | None]:
    count, previewable, preview, fallback = 0, 0, None, None
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            continue
        for media_type, items in node_outputs.items():
            if media_type == "animated" or not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                count += 1
                if media_type in PREVIEWABLE:
                    previewable += 1
                    enriched = {**item, "nodeId": node_id}
                    enriched.setdefault("mediaType", media_type)
                    if preview is None and item.get("type") == "output":
                        preview = enriched
                    elif fallback is None:
                        fallback = enriched
    return count, previewable, preview or fallback


def history_job(prompt_id: str, entry: dict[str, Any], include_outputs: bool = False) -> dict[str, Any]:
    number, _, prompt, extra_data, _ = entry["prompt"]
    status_info = entry.get("status") or {}
    start = end = error = None
    interrupted = False
    for event, data in status_info.get("messages", []):
        if event == "execution_start":
            start = data.get("timestamp")
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            if event == "execution_error":
                error = data
            elif event == "execution_interrupted":
                interrupted = True
    status_str = status_info.get("status_str")
    status = ("cancelled" if interrupted else "failed") if status_str == "error" else "completed"
    outputs = entry.get("outputs", {})
    count, previewable, preview = _outputs_summary(outputs)
    job = _prune(
        {
            "id": prompt_id,
            "status": status,
            "priority": number,
            "create_time": extra_data.get("create_time"),
            "execution_start_time": start,
            "execution_end_time": end,
            "execution_error": error,
            "outputs_count": count,
            "previewable_outputs_count": previewable,
            "preview_output": preview,
            "workflow_id": extra_data.get("extra_pnginfo", {}).get("workflow", {}).get("id"),
        }
    )
    if include_outputs:
        job["outputs"] = copy.deepcopy(outputs)
        job["execution_status"] = copy.deepcopy(status_info)
        job["workflow"] = {"prompt": copy.deepcopy(prompt), "extra_data": copy.deepcopy(extra_data)}
    return job


def get_job(queue: PromptQueue, prompt_id: str) -> dict[str, Any] | None:
    if prompt_id in queue.history:
        return history_job(prompt_id, queue.history[prompt_id], include_outputs=True)
    for item in queue.running_items():
        if item.prompt_id == prompt_id:
            return queue_job(item, "in_progress")
    for item in queue.pending:
        if item.prompt_id == prompt_id:
            return queue_job(item, "pending")
    return None


def all_jobs(queue: PromptQueue, statuses: list[str], sort_by: str, sort_order: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    if "in_progress" in statuses:
        jobs += [queue_job(item, "in_progress") for item in queue.running_items()]
    if "pending" in statuses:
        jobs += [queue_job(item, "pending") for item in queue.pending]
    wanted = {"completed", "failed", "cancelled"} & set(statuses)
    if wanted:
        for prompt_id, entry in queue.history.items():
            job = history_job(prompt_id, entry)
            if job["status"] in wanted:
                jobs.append(job)

    def key(job: dict[str, Any]) -> float:
        if sort_by == "execution_duration":
            start, end = job.get("execution_start_time", 0), job.get("execution_end_time", 0)
            return float(end - start) if end and start else 0.0
        return float(job.get("create_time", 0))

    return sorted(jobs, key=key, reverse=sort_order == "desc")
