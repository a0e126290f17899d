"""Replaying the recordings: a client that does what ``comfy_capture.py`` did, and the normalisation that makes a
recorded message sequence comparable with the emulator's.

``skeleton(messages)`` keeps every JSON message's type and data with ids, timestamps and file counters replaced
(``P0``, ``P1`` … for prompt ids in order of appearance, ``SID`` for the socket id, ``_N_`` for file counters,
``ComfyUI_temp_*`` for preview names), and leaves out what depends on wall-clock timing: ``progress`` messages,
the ``progress_state`` snapshots they come with, and preview frames. Those are checked by ``progress_runs``.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from .frames import decode_binary

TRANSCRIPTS = Path(__file__).parent / "transcripts"


def load(name: str) -> list[dict[str, Any]]:
    with (TRANSCRIPTS / f"{name}.jsonl").open() as f:
        return [json.loads(line) for line in f]


def recorded_requests(entries: list[dict[str, Any]], path: str = "/prompt") -> list[dict[str, Any]]:
    return [e for e in entries if e["kind"] == "http" and e["path"] == path]


def recorded_messages(entries: list[dict[str, Any]], to: str | None = None) -> list[dict[str, Any]]:
    """Recorded websocket frames (JSON messages as sent; binary frames as ``{"type": "__binary__", ...}``)."""
    out = []
    for e in entries:
        if to is not None and e.get("to") != to:
            continue
        if e["kind"] == "ws_json":
            out.append(e["msg"])
        elif e["kind"] == "ws_binary":
            out.append({"type": "__binary__", "data": e["frame"]})
    return out


class Client:
    """A websocket + HTTP client like the recorder's (aiohttp; feature flags sent first unless told not to)."""

    def __init__(self, url: str, client_id: str | None = None, feature_flags: bool = True) -> None:
        self.url = url
        self.client_id = client_id or uuid.uuid4().hex
        self.feature_flags = feature_flags
        self.session = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.messages: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None
        self._new = asyncio.Event()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
        await self.session.close()

    async def connect(self, client_id: str | None = None, wait_flags: bool = True) -> None:
        cid = client_id or self.client_id
        self.ws = await self.session.ws_connect(f"{self.url}/ws?clientId={cid}", max_msg_size=0)
        if self.feature_flags:
            await self.ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        self._reader = asyncio.create_task(self._read(self.ws))
        await self.wait_for(lambda m: m["type"] == "status")
        if self.feature_flags and wait_flags:
            await self.wait_for(lambda m: m["type"] == "feature_flags")

    async def disconnect(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        self.ws, self._reader = None, None

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self.messages.append({"type": "__binary__", "data": decode_binary(msg.data)})
            self._new.set()
        self._new.set()

    async def wait_for(self, pred: Any, since: int = 0, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        async def find() -> dict[str, Any]:
            while True:
                for m in self.messages[since:]:
                    if pred(m):
                        return m
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(find(), timeout)

    async def wait_done(self, prompt_id: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        def done(m: dict[str, Any]) -> bool:
            d = m.get("data") or {}
            return m["type"] == "executing" and d.get("node") is None and d.get("prompt_id") == prompt_id

        await self.wait_for(done, timeout=timeout)

    async def http(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.url + path, **kw) as r:
            raw = await r.read()
            body = json.loads(raw) if "json" in r.headers.get("Content-Type", "") else raw
            return r.status, body

    async def queue(self, prompt: dict[str, Any], with_client_id: bool = True, **extra: Any) -> tuple[int, Any]:
        payload = {"prompt": prompt, **extra}
        if with_client_id:
            payload["client_id"] = self.client_id
        return await self.http("POST", "/prompt", json=payload)


# ----------------------------------------------------------------------------------------------- normalising
_COUNTER = re.compile(r"_\d{5}_")
_TEMP = re.compile(r"ComfyUI_temp_[a-z]{5}")


class Normaliser:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def pid(self, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"[0-9a-f-]{36}", value):
            return self.ids.setdefault(value, f"P{len(self.ids)}")
        return value

    def value(self, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items() if k != "timestamp"}
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, str):
            return _TEMP.sub("ComfyUI_temp_*", _COUNTER.sub("_N_", str(self.pid(v))))
        return v


def _is_update(msg: dict[str, Any]) -> bool:
    """A progress_state sent by a progress update (a node running with a value above 0)."""
    nodes = msg["data"]["nodes"]
    return any(n["state"] == "running" and n["value"] not in (0, 0.0) for n in nodes.values())


def skeleton(messages: list[dict[str, Any]], norm: Normaliser | None = None) -> list[Any]:
    norm = norm or Normaliser()
    out: list[Any] = []
    for m in messages:
        kind, data = m["type"], m.get("data") or {}
        if kind == "progress" or (kind == "progress_state" and _is_update(m)):
            continue
        if kind == "__binary__":
            if data["event_type"] == 3:
                out.append(("text", data["node_id"], data["text"]))
            continue
        if kind == "status":
            out.append(("status", data["status"]["exec_info"]["queue_remaining"], "sid" in data))
        elif kind == "progress_state":
            nodes = [(n, s["state"], s["value"], s["max"]) for n, s in data["nodes"].items()]
            out.append(("progress_state", norm.pid(data["prompt_id"]), nodes))
        elif kind == "execution_error":
            keys = sorted(data)
            kept = {k: data[k] for k in ("node_id", "node_type", "executed", "exception_type")}
            out.append(("execution_error", norm.pid(data["prompt_id"]), keys, kept, sorted(data["current_outputs"])))
        elif kind == "feature_flags":
            out.append(("feature_flags", data))
        else:
            out.append((kind, norm.value(data)))
    return out


def progress_runs(messages: list[dict[str, Any]]) -> list[tuple[str, int, int, int]]:
    """Per run of ``progress`` for one node: (node, first value, last value, max)."""
    runs: list[tuple[str, int, int, int]] = []
    for m in messages:
        if m["type"] != "progress":
            continue
        d = m["data"]
        if runs and runs[-1][0] == d.get("node") and runs[-1][3] == d["max"]:
            node, first, _, top = runs[-1]
            runs[-1] = (node, first, d["value"], top)
        else:
            runs.append((d.get("node"), d["value"], d["value"], d["max"]))
    return runs
