"""The gateway websocket: HELLO, heartbeats, IDENTIFY → READY + GUILD_CREATE, RESUME → replay + RESUMED.

nextcord connects to ``{url}?encoding=json&v=10&compress=zlib-stream``: with ``compress=zlib-stream`` every frame
the emulator sends is a binary chunk of one zlib stream per connection, each ending in a Z_SYNC_FLUSH (the
``00 00 ff ff`` suffix nextcord waits for); without it frames are JSON text. Every frame carries ``op``, ``d``,
``s`` and ``t`` (nextcord reads all four).

A session outlives its connection: dispatches made while the client is away are kept with their sequence
numbers and replayed when it RESUMEs, as Discord does. Faults (op 7, op 9, drops) act on the current session's
connection. This module must never answer for the REST API; the routes live in ``rest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from aiohttp import WSMsgType, web

from .records import GatewayRecord
from .state import EmulatorState

TRACE = ["discord-emulator-gateway"]
GUILD_MESSAGES_INTENT = 1 << 9


class Op(IntEnum):
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class GatewayConnection:
    """One websocket; sends are serialised because the zlib stream must stay in order."""

    def __init__(self, number: int, ws: web.WebSocketResponse, request: web.Request, compress: bool) -> None:
        self.number = number
        self.ws = ws
        self.request = request
        self._compressor = zlib.compressobj() if compress else None
        self._lock = asyncio.Lock()
        self.session: GatewaySession | None = None

    async def send(self, payload: dict[str, Any]) -> bool:
        text = json.dumps(payload, separators=(",", ":"))
        async with self._lock:
            if self.ws.closed:
                return False
            try:
                if self._compressor is not None:
                    chunk = self._compressor.compress(text.encode()) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(chunk)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return False
        return True


@dataclass
class GatewaySession:
    id: str
    intents: int
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    connection: GatewayConnection | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _frame(op: Op, data: Any = None) -> dict[str, Any]:
    return {"op": int(op), "d": data, "s": None, "t": None}


class GatewayServer:
    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self.sessions: dict[str, GatewaySession] = {}
        self.current: GatewaySession | None = None
        self.connections: set[GatewayConnection] = set()
        self._numbers = 0
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return self._state.base_url.replace("http", "ws", 1) + "/gateway"

    @property
    def resume_url(self) -> str:
        return self._state.base_url.replace("http", "ws", 1) + "/gateway-resume"

    @property
    def connected(self) -> bool:
        """Whether the current session has a live connection."""
        return self.current is not None and self.current.connection is not None

    def _log(self, connection: GatewayConnection, direction: str, payload: dict[str, Any]) -> None:
        self._state.gateway_log.append(
            GatewayRecord(
                time.monotonic(),
                connection.number,
                direction,
                int(payload.get("op", -1)),
                payload.get("t"),
                payload.get("s"),
                payload.get("d"),
            )
        )
        self._state.notifier.notify()

    async def _send(self, connection: GatewayConnection, payload: dict[str, Any]) -> None:
        if await connection.send(payload):
            self._log(connection, "send", payload)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=0.5, max_msg_size=0)
        await ws.prepare(request)
        self._numbers += 1
        connection = GatewayConnection(
            self._numbers, ws, request, compress=request.query.get("compress") == "zlib-stream"
        )
        self.connections.add(connection)
        try:
            if request.query.get("encoding", "json") != "json":
                await ws.close(code=4002, message=b"Error while decoding payload.")
                return ws
            interval_ms = int(self._state.config.heartbeat_interval * 1000)
            await self._send(connection, _frame(Op.HELLO, {"heartbeat_interval": interval_ms, "_trace": TRACE}))
            async for message in ws:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    payload = json.loads(message.data)
                except ValueError:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                self._log(connection, "recv", payload)
                await self._receive(connection, payload)
        except Exception as exc:
            # A bug in the emulator: kept so the fixture fails the test, and the client sees a broken socket.
            self._state.errors.append(exc)
            await ws.close(code=4000, message=b"Emulator error.")
        finally:
            self.connections.discard(connection)
            session = connection.session
            if session is not None and session.connection is connection:
                session.connection = None
            self._state.notifier.notify()
        return ws

    async def _receive(self, connection: GatewayConnection, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == Op.HEARTBEAT:
            await self._send(connection, _frame(Op.HEARTBEAT_ACK))
        elif op == Op.IDENTIFY:
            await self._identify(connection, data or {})
        elif op == Op.RESUME:
            await self._resume(connection, data or {})
        elif connection.session is None:
            await connection.ws.close(code=4003, message=b"Not authenticated.")
        elif op == Op.REQUEST_GUILD_MEMBERS:
            await self._members_chunk(connection.session, data or {})
        elif op not in (Op.PRESENCE_UPDATE, Op.VOICE_STATE_UPDATE):
            await connection.ws.close(code=4001, message=b"Unknown opcode.")

    def _token_ok(self, token: object) -> bool:
        return token in (self._state.bot_token, f"Bot {self._state.bot_token}")

    async def _identify(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        if connection.session is not None:
            await connection.ws.close(code=4005, message=b"Already authenticated.")
            return
        if not self._token_ok(data.get("token")):
            await connection.ws.close(code=4004, message=b"Authentication failed.")
            return
        world = self._state.world
        session = GatewaySession(secrets.token_hex(16), int(data.get("intents") or 0))
        self.sessions[session.id] = session
        self.current = session
        ready = {
            "v": 10,
            "user": {**world.bot_user.payload(), "verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(world.guild.id), "unavailable": True}],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_url,
            "application": {"id": str(world.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "_trace": TRACE,
        }
        if data.get("shard") is not None:
            ready["shard"] = data["shard"]
        async with session.lock:
            session.connection, connection.session = connection, session
            await self._dispatch_locked(session, "READY", ready)
            await self._dispatch_locked(session, "GUILD_CREATE", world.guild.payload())

    async def _resume(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or not self._token_ok(data.get("token")):
            await self._send(connection, _frame(Op.INVALID_SESSION, False))
            return
        last_seq = data.get("seq") or 0
        async with session.lock:
            previous = session.connection
            session.connection, connection.session = connection, session
            self.current = session
            if previous is not None and previous is not connection:
                self._close_later(previous, 4000)
            for event in session.events:
                if event["s"] > last_seq:
                    await self._send(connection, event)
            await self._dispatch_locked(session, "RESUMED", {"_trace": TRACE})

    async def _members_chunk(self, session: GatewaySession, data: dict[str, Any]) -> None:
        guild = self._state.world.guild
        wanted = {int(user_id) for user_id in data.get("user_ids") or []}
        members = [m.payload() for m in guild.members if not wanted or m.user.id in wanted]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        if data.get("presences"):
            chunk["presences"] = []
        async with session.lock:
            await self._dispatch_locked(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _dispatch_locked(self, session: GatewaySession, event: str, data: Any) -> int:
        session.seq += 1
        payload = {"op": int(Op.DISPATCH), "d": data, "s": session.seq, "t": event}
        session.events.append(payload)
        if session.connection is not None:
            await self._send(session.connection, payload)
        return session.seq

    async def dispatch(self, event: str, data: Any) -> int:
        """Sends a dispatch on the current session (kept for replay if the client is away); returns its seq."""
        session = self.current
        if session is None:
            raise RuntimeError("no gateway session: the client has not identified")
        async with session.lock:
            return await self._dispatch_locked(session, event, data)

    def wants_messages(self) -> bool:
        return self.current is not None and bool(self.current.intents & GUILD_MESSAGES_INTENT)

    # Faults ------------------------------------------------------------------------------------------------

    def _live_connection(self) -> GatewayConnection:
        if self.current is None or self.current.connection is None:
            raise RuntimeError("no live gateway connection")
        return self.current.connection

    def _close_later(self, connection: GatewayConnection, code: int) -> None:
        # A server-side close waits for the client's close frame, which nextcord never sends after it
        # gave up on a socket; close in the background so callers are not held up.
        task = asyncio.create_task(connection.ws.close(code=code))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drop(self, *, code: int | None = None) -> None:
        connection = self._live_connection()
        if code is None:
            transport = connection.request.transport
            if transport is not None:
                transport.abort()
        else:
            self._close_later(connection, code)

    async def send_reconnect(self) -> None:
        await self._send(self._live_connection(), _frame(Op.RECONNECT))

    async def invalidate_session(self, *, resumable: bool) -> None:
        connection = self._live_connection()
        if not resumable and self.current is not None:
            self.sessions.pop(self.current.id, None)
            self.current = None
        await self._send(connection, _frame(Op.INVALID_SESSION, resumable))

    async def close(self) -> None:
        for connection in list(self.connections):
            self._close_later(connection, 1001)
        if self._background:
            await asyncio.wait(set(self._background), timeout=2.0)
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
