"""The ``/ws`` endpoint and message delivery, as ComfyUI's ``server.py`` does them.

``sockets`` maps a clientId (``sid``) to one socket. A connection without ``clientId`` gets a random hex sid. On
connect the server sends ``status`` (with ``sid``) and, if this sid's job is running, ``executing`` with the
current node and no ``prompt_id``. A first message ``{"type": "feature_flags", ...}`` is stored and answered with
the server's flags (not in legacy mode). A message to a sid without a socket is lost (recorded as ``"lost"``);
``sid=None`` broadcasts.

ComfyUI's reconnect bug is reproduced on purpose: a new socket with the same clientId replaces the old one in
``sockets``, and when the old one's handler ends it pops the clientId, unregistering the *new* socket, which then
receives nothing (``dup_client_id.jsonl``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .frames import decode_binary
from .records import WsRecord

if TYPE_CHECKING:
    from .server import ComfyEmulator

SERVER_FEATURES: dict[str, Any] = {
    "supports_preview_metadata": True,
    "supports_model_type_tags": True,
    "max_upload_size": 104857600,
    "extension": {"manager": {"supports_v4": True}},
    "node_replacements": True,
    "assets": False,
}


class SocketHub:
    def __init__(self, emu: ComfyEmulator) -> None:
        self.emu = emu
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.serials: dict[int, int] = {}  # id(ws) -> serial
        self.metadata: dict[str, dict[str, Any]] = {}
        self.all_open: set[web.WebSocketResponse] = set()
        #: Handshakes held by ``faults.delay_ws_accept``: cut short when the server goes down or stops.
        self._held: set[asyncio.Future[None]] = set()
        self._next_serial = 0
        self._lock = asyncio.Lock()

    def supports_preview_metadata(self, sid: str | None) -> bool:
        if sid is None:
            return False
        flags = self.metadata.get(sid, {}).get("feature_flags", {})
        return bool(flags.get("supports_preview_metadata", False))

    def _record(
        self, direction: str, sid: str, ws: web.WebSocketResponse | None, kind: str, data: Any, raw: bytes | None = None
    ) -> None:
        serial = self.serials.get(id(ws), -1) if ws is not None else -1
        self.emu.ws_log.append(WsRecord(time.monotonic(), direction, sid, serial, kind, data, raw))
        self.emu.notify()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.emu.faults.ws_accept_delay > 0:
            held = asyncio.ensure_future(asyncio.sleep(self.emu.faults.ws_accept_delay))
            self._held.add(held)
            try:
                await asyncio.wait({held})
            finally:
                self._held.discard(held)
            if held.cancelled():  # the server went down meanwhile: the connection dies with it
                if request.transport is not None:
                    request.transport.abort()
                raise web.HTTPServiceUnavailable()
            if request.transport is None or request.transport.is_closing():
                raise web.HTTPServiceUnavailable()  # the client gave up waiting (a cancelled job, say)
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            if not self.emu.config.dup_client_id_bug:
                old = self.sockets.get(sid)
                if old is not None:
                    await old.close()
            self.sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        self._next_serial += 1
        self.serials[id(ws)] = self._next_serial
        self.sockets[sid] = ws
        self.metadata[sid] = {"feature_flags": {}}
        self.all_open.add(ws)
        self._record("open", sid, ws, "open", None)
        try:
            await self.send_json("status", {"status": self.emu.queue.queue_info(), "sid": sid}, sid)
            if request.rel_url.query.get("clientId"):
                await self.emu.outages.on_open(ws, sid)
            running = self.emu.worker.running_client_id
            if running == sid and self.emu.worker.last_node_id is not None:
                await self.send_json("executing", {"node": self.emu.worker.last_node_id}, sid)
            first = True
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except json.JSONDecodeError:
                        self._record("in", sid, ws, "invalid", msg.data)
                        continue
                    kind = data.get("type", "") if isinstance(data, dict) else ""
                    self._record("in", sid, ws, str(kind), data.get("data") if isinstance(data, dict) else data)
                    if first and kind == "feature_flags" and not self.emu.config.legacy:
                        self.metadata.setdefault(sid, {})["feature_flags"] = data.get("data", {})
                        await self.send_json("feature_flags", dict(SERVER_FEATURES), sid)
                    first = False
                elif msg.type == WSMsgType.BINARY:
                    self._record("in", sid, ws, "binary", None, bytes(msg.data))
        finally:
            await self.emu.outages.before_cleanup()  # a dead peer noticed late (``outages.late_socket_cleanup``)
            # The bug, kept: pops whatever socket holds this sid now, even a newer one.
            if self.emu.config.dup_client_id_bug or self.sockets.get(sid) is ws:
                self.sockets.pop(sid, None)
                self.metadata.pop(sid, None)
            self.all_open.discard(ws)
            self._record("close", sid, ws, "close", None)
        return ws

    async def send_json(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        message = {"type": event, "data": data}
        if sid is None:
            for key, ws in list(self.sockets.items()):
                await self._send(key, ws, event, data, message=message)
        elif sid in self.sockets:
            await self._send(sid, self.sockets[sid], event, data, message=message)
        else:
            self._record("lost", sid, None, event, data)

    async def send_bytes(self, payload: bytes, sid: str | None = None) -> None:
        kind = f"binary:{int.from_bytes(payload[:4], 'big')}"
        if sid is None:
            for key, ws in list(self.sockets.items()):
                await self._send(key, ws, kind, decode_binary(payload), raw=payload)
        elif sid in self.sockets:
            await self._send(sid, self.sockets[sid], kind, decode_binary(payload), raw=payload)
        else:
            self._record("lost", sid, None, kind, decode_binary(payload), payload)

    async def _send(
        self,
        sid: str,
        ws: web.WebSocketResponse,
        kind: str,
        data: Any,
        *,
        message: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> None:
        if ws.closed:
            self._record("lost", sid, ws, kind, data, raw)
            return
        try:
            if raw is not None:
                await ws.send_bytes(raw)
            else:
                await ws.send_str(json.dumps(message))
        except (ConnectionError, RuntimeError):
            # ComfyUI's send_socket_catch_exception: a failed send is logged and forgotten.
            self._record("lost", sid, ws, kind, data, raw)
            return
        self._record("out", sid, ws, kind, data, raw)

    async def drop(self, sid: str) -> None:
        """Abort a client's socket without a close handshake (the network went away)."""
        ws = self.sockets.get(sid)
        if ws is None:
            return
        self._record("close", sid, ws, "dropped", None)
        transport = ws._req.transport if ws._req is not None else None
        if transport is not None:
            transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 1.0)

    async def close_all(self) -> None:
        for held in list(self._held):
            held.cancel()
        for ws in list(self.all_open):
            transport = ws._req.transport if ws._req is not None else None
            if transport is not None:
                transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1.0)
        self.sockets.clear()
        self.metadata.clear()
