"""Outage switches (``emu.outages``): what a real ComfyUI 0.33 does when the network, not the server, fails.

Each was checked against a real ComfyUI 0.33.0 on CPU (commit 783545f6, ``../shared/comfyui-real/README.md``);
what it did there is in each docstring. Kept apart from ``faults.py`` (HTTP and job faults) so both can grow.

- ``lose_prompt_answer(down_for=0)``: the next ``POST /prompt`` is accepted and queued, then its connection is
  cut before the answer is written; with ``down_for``, the network is then out for that long (connections
  refused, sockets dropped) while the worker runs the prompt. Real server: a ``POST /prompt`` sent on a raw
  socket that was reset right after the request went out (the answer never read), then 5 s of silence: the
  prompt had been queued and ran to success; ``/api/jobs/{id}`` said ``completed`` with its output and
  ``/history/{id}`` had it. A prompt id it never saw: ``/api/jobs/{id}`` answers 404 ("unknown"). The server
  cannot tell a lost answer from a delivered one.
- ``network_outage(seconds)`` (async): the network is out for ``seconds`` — listening stops and every socket is
  aborted — but the process lives on: queue, worker, history and cache are kept (unlike ``go_down``).
- ``late_socket_cleanup(seconds)``: a socket's handler notices its closed connection ``seconds`` late, so its
  ``finally`` (``sockets.pop(sid)``) runs after the client has reconnected and unregisters the *new* socket
  (with ``config.dup_client_id_bug``, as the real server). Real server (``server.py``'s ``websocket_handler``:
  ``finally: self.sockets.pop(sid, None)``, no check of which socket holds ``sid``, no heartbeat): socket A with
  clientId X, then socket B with X while A is still open, then A closed, then a prompt with ``client_id`` X:
  in 2 s of its ~6 s run B received only its own ``status``, while the prompt ran to success. B closed and a
  *new* socket C with X opened mid-run received everything again: ``status``, then 4 ``executing``, 75
  ``progress``, 82 ``progress_state``, ``executed``, ``execution_success``.
- ``huge_text_on_connect(size)`` / ``flood_on_connect(count)``: right after a socket with a clientId opens (and
  its ``status``), send one text frame of ``size`` bytes, or ``count`` small ``progress`` frames back to back.
  A hostile or broken server; the real one sends nothing like it. Measured on it: text frames up to 1.4 KiB
  (an ``executed`` naming 64 saved images: 4.5 KiB), previews (tiny SD1.5, ``latent2rgb``) up to 53 KiB; the
  densest traffic 98 frames in 5.9 s (``ColorTransfer`` over 400 frames of 256 px). It caps nothing it sends
  (``web.WebSocketResponse()`` with aiohttp's defaults caps only what it *receives*: a 5 MiB text frame sent
  to it closed the connection).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from .server import ComfyEmulator


class Outages:
    def __init__(self, emu: ComfyEmulator) -> None:
        self.emu = emu
        #: Armed by ``lose_prompt_answer``: None = off, else the outage (seconds) that follows the lost answer.
        self.prompt_answer_lost: float | None = None
        self.cleanup_delay = 0.0
        self.huge_text: int = 0
        self.flood: int = 0
        self.fired: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # -- switches ----------------------------------------------------------------------------------------------
    def lose_prompt_answer(self, down_for: float = 0.0) -> None:
        """The next ``POST /prompt`` is queued and its answer lost (connection cut); then ``down_for`` seconds of
        network outage (see the module doc)."""
        self.prompt_answer_lost = down_for

    def late_socket_cleanup(self, seconds: float) -> None:
        """A closed socket's handler runs its ``finally`` ``seconds`` late (0: off)."""
        self.cleanup_delay = seconds

    def huge_text_on_connect(self, size: int) -> None:
        """Send one text frame of about ``size`` bytes to every socket with a clientId as it opens (0: off)."""
        self.huge_text = size

    def flood_on_connect(self, count: int) -> None:
        """Send ``count`` ``progress`` frames back to back to every socket with a clientId as it opens (0: off)."""
        self.flood = count

    async def network_outage(self, seconds: float) -> None:
        """The network is out for ``seconds``: no listening, every socket aborted; queue and worker live on."""
        self.fired.append(f"network_outage {seconds}")
        await self.emu._unlisten()
        await asyncio.sleep(seconds)
        await self.emu._listen()
        self.emu.notify()

    def clear(self) -> None:
        self.prompt_answer_lost, self.cleanup_delay, self.huge_text, self.flood = None, 0.0, 0, 0

    # -- hooks the server calls --------------------------------------------------------------------------------
    def after_prompt(self, request: web.Request, response: web.StreamResponse) -> bool:
        """Called after ``POST /prompt`` was handled; True when its answer must be lost (the connection is cut)."""
        down_for = self.prompt_answer_lost
        if down_for is None or response.status != 200:
            return False
        self.prompt_answer_lost = None
        self.fired.append(f"lose_prompt_answer {down_for}")
        if request.transport is not None:
            request.transport.abort()
        if down_for > 0:
            self._spawn(self.network_outage(down_for))
        return True

    async def before_cleanup(self) -> None:
        if self.cleanup_delay > 0:
            self.fired.append(f"late_socket_cleanup {self.cleanup_delay}")
            await asyncio.sleep(self.cleanup_delay)

    async def on_open(self, ws: web.WebSocketResponse, sid: str) -> None:
        if self.huge_text > 0:
            self.fired.append(f"huge_text {self.huge_text}")
            pad = "x" * max(0, self.huge_text - 60)
            await ws.send_str(json.dumps({"type": "x_huge", "data": {"pad": pad}}))
        if self.flood > 0:
            self.fired.append(f"flood {self.flood}")
            for n in range(self.flood):
                data = {"value": n % 100, "max": 100, "prompt_id": "00000000-0000-4000-8000-0000000f100d", "node": "1"}
                frame = {"type": "progress", "data": data}
                await ws.send_str(json.dumps(frame))

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
