"""A bare Discord client for tests that speak the protocol themselves, without nextcord.

:class:`RawGateway` is one gateway websocket (zlib-stream or plain JSON); :class:`RawBot` makes REST calls with
the bot token and answers nothing by itself, so tests can send exactly the request they mean (a second
callback, an oversized file, six action rows, ...).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from dataclasses import dataclass
from typing import Any, Self

import aiohttp

from .server import DiscordEmulator


class RawGateway:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._inflator = zlib.decompressobj()
        self._buffer = bytearray()
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, url: str, *, compress: bool = True) -> Self:
        query = "?encoding=json&v=10" + ("&compress=zlib-stream" if compress else "")
        return cls(await session.ws_connect(url + query, autoclose=False))

    async def receive(self, timeout: float = 2.0) -> dict[str, Any]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                message = await self.ws.receive()
                if message.type is aiohttp.WSMsgType.TEXT:
                    frame: dict[str, Any] = json.loads(message.data)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    self._buffer.extend(message.data)
                    if not self._buffer.endswith(b"\x00\x00\xff\xff"):
                        continue
                    frame = json.loads(self._inflator.decompress(bytes(self._buffer)))
                    self._buffer.clear()
                else:
                    raise ConnectionError(f"gateway closed: {message.type.name} {self.ws.close_code}")
                self.frames.append(frame)
                return frame

    async def send(self, op: int, data: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": data}))

    async def dispatch(self, event: str, timeout: float = 2.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The next dispatch named ``event`` (other frames are skipped)."""
        while True:
            frame = await self.receive(timeout)
            if frame["op"] == 0 and frame["t"] == event:
                return frame

    async def identify(self, token: str, intents: int = 1) -> dict[str, Any]:
        """HELLO, IDENTIFY, READY; returns the READY frame."""
        hello = await self.receive()
        assert hello["op"] == 10, hello
        await self.send(2, {"token": token, "intents": intents, "properties": {"os": "linux"}})
        return await self.dispatch("READY")

    async def close(self) -> None:
        await self.ws.close()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


class RawBot:
    """REST calls as the bot, plus a raw gateway session (open it with :meth:`connect`)."""

    def __init__(self, emulator: DiscordEmulator, session: aiohttp.ClientSession) -> None:
        self.emulator = emulator
        self.session = session
        self.gateway: RawGateway | None = None

    async def connect(self) -> dict[str, Any]:
        self.gateway = await RawGateway.connect(self.session, self.emulator.gateway_url)
        return await self.gateway.identify(self.emulator.bot_token)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        files: list[tuple[str, bytes]] | None = None,
        auth: bool = True,
    ) -> Answer:
        headers = {"Authorization": f"Bot {self.emulator.bot_token}"} if auth else {}
        data: Any = None
        if files is not None:
            form = aiohttp.FormData()
            form.add_field("payload_json", json.dumps(json_body or {}), content_type="application/json")
            for index, (filename, content) in enumerate(files):
                form.add_field(f"files[{index}]", content, filename=filename, content_type="application/octet-stream")
            data = form
        elif json_body is not None:
            data = json.dumps(json_body)
            headers["Content-Type"] = "application/json"
        url = self.emulator.api_base + path
        async with self.session.request(method, url, data=data, headers=headers) as response:
            text = await response.text()
            body = json.loads(text) if response.headers.get("Content-Type") == "application/json" else text
            return Answer(response.status, dict(response.headers), body)

    async def callback(self, interaction_id: int, token: str, payload: dict[str, Any], **kw: Any) -> Answer:
        return await self.call("POST", f"/interactions/{interaction_id}/{token}/callback", json_body=payload, **kw)

    def webhook(self, token: str, tail: str = "") -> str:
        return f"/webhooks/{self.emulator.application_id}/{token}{tail}"
