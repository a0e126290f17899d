"""Outage switches (``emu.outages``): what a real ComfyUI 0.33 does when the network, not the server, fails.

Each was checked against a real ComfyUI 0.33.0 on CPU (commit 783545f6, ``../shared/comfyui-real/README.md``);
what it did there is in each docstring. Kept apart from ``faults.py`` (HTTP and job faults) so both can grow.

- ``lose_prompt_answer(down_for=0)``: the next ``POST /prompt`` is accepted and queued, then its connection is
  cut before the answer is written; with ``down_for``, the network is then out for that long (connections
  refused, sockets dropped) while the worker runs the prompt. Real server: a ``POST /prompt`` whose client
  connection was cut right after the request was sent (a proxy that forwarded the request and dropped the
  answer) was queued and ran to success; ``/api/jobs/{id}`` then said ``completed`` with its outputs, and
  ``/history/{id}`` had it. The server cannot tell a lost answer from a delivered one.
- ``network_outage(seconds)`` (async): the network is out for ``seconds`` — listening stops and every socket is
  aborted — but the process lives on: queue, worker, history and cache are kept (unlike ``go_down``).
- ``late_socket_cleanup(seconds)``: a socket's handler notices its closed connection ``seconds`` late, so its
  ``finally`` (``sockets.pop(sid)``) runs after the client has reconnected and unregisters the *new* socket
  (with ``config.dup_client_id_bug``, as the real server). Real server (``server.py``'s ``websocket_handler``:
  ``finally: self.sockets.pop(sid, None)``, no check of which socket holds ``sid``, no heartbeat): socket A with
  clientId X, then socket B with X while A is still open, then A closed: B got nothing of a prompt submitted
  with ``client_id`` X (``execution_start`` … ``execution_success`` all went nowhere), while the prompt ran to
  success and its result was in ``/history``. A *new* socket C with X opened after that received messages
  again (``status`` first, then the job's ``progress``/``executing`` for the rest of the run).
- ``huge_text_on_connect(size)`` / ``flood_on_connect(count)``: right after a socket with a clientId opens (and
  its ``status``), send one text frame of ``size`` bytes, or ``count`` small ``progress`` frames back to back.
  A hostile or broken server; the real one sends nothing like it: its text frames were 50–400 bytes
  (``executed`` of a 64-image batch: ~6 KiB), its previews (``--preview-size`` 512, JPEG) ~2–30 KiB, and it
  caps nothing it sends (``web.WebSocketResponse()`` with aiohttp's defaults caps only what it *receives*, at
  4 MiB). Its densest real traffic: ~60 ``progress`` frames in 6 s (``ColorTransfer`` over 400 frames).
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
