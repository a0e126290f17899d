"""Fault switches (``emu.faults``): each is armed by a method and consumed as it fires.

HTTP faults match a request by an fnmatch pattern on its route template or its path (``"/history/*"``,
``"/prompt"``), optionally a ``method``, for the next ``count`` matching requests. Job faults act inside the
worker. Everything here is plain state; the server and the worker ask it what to do.
"""

from __future__ import annotations

import asyncio
import fnmatch
from dataclasses import dataclass


@dataclass
class HttpFault:
    kind: str  # "server_error" | "null" | "truncated" | "non_json"
    route: str
    method: str | None
    remaining: int
    status: int = 500

    def matches(self, method: str, route: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(route, self.route) or fnmatch.fnmatchcase(path, self.route)


@dataclass
class HttpDelay:
    route: str
    method: str | None
    seconds: float
    remaining: int | None

    def matches(self, method: str, route: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(route, self.route) or fnmatch.fnmatchcase(path, self.route)


@dataclass
class HostileOutput:
    ext: str | None
    data: bytes | None
    remaining: int | None


@dataclass
class HugeView:
    size: int
    declare_length: bool
    remaining: int | None


@dataclass
class SocketDrop:
    client_id: str | None
    at_node: str | None
    after_messages: int | None
    seen: int = 0


@dataclass
class NodeFailure:
    node_id: str | None
    class_type: str | None
    message: str
    exception_type: str
    remaining: int


class Faults:
    """Armed faults. All methods are synchronous and may be called while jobs run."""

    def __init__(self) -> None:
        self.http: list[HttpFault] = []
        self.http_delays: list[HttpDelay] = []
        self.socket_drops: list[SocketDrop] = []
        self.node_failures: list[NodeFailure] = []
        self.view_delay: float = 0.0
        self.view_delay_count: int | None = None
        self.ws_accept_delay: float = 0.0
        self.record_delay: float = 0.0
        self.hostile_outputs: list[HostileOutput] = []
        self.huge_views: list[HugeView] = []
        #: class type → released when set (``hold_progress``).
        self.holds: dict[str, asyncio.Event] = {}
        self.fired: list[str] = []

    # -- HTTP --------------------------------------------------------------------------------------------------
    def server_error(self, route: str, count: int = 1, *, status: int = 500, method: str | None = None) -> None:
        """Answer the next ``count`` matching requests with ``status`` (a plain-text body, as aiohttp's 500)."""
        self.http.append(HttpFault("server_error", route, method, count, status))

    def bad_body(self, route: str, kind: str = "null", count: int = 1, *, method: str | None = None) -> None:
        """Answer 200 with a broken body: ``"null"`` (JSON ``null``), ``"truncated"`` (the real JSON cut in half)
        or ``"non_json"`` (an HTML error page with a JSON content type), for the next ``count`` requests."""
        if kind not in ("null", "truncated", "non_json"):
            raise ValueError(f"unknown body fault {kind!r}")
        self.http.append(HttpFault(kind, route, method, count))

    def slow_view(self, seconds: float, count: int | None = None) -> None:
        """Delay ``GET /view`` by ``seconds`` (for the next ``count`` requests, or until cleared with 0)."""
        self.view_delay = seconds
        self.view_delay_count = count

    def slow_http(self, route: str, seconds: float, count: int | None = None, *, method: str | None = None) -> None:
        """Hold the next ``count`` matching requests (all of them with ``None``) for ``seconds`` before they are
        answered (with the state of the server when the answer is made), like a server too busy to answer."""
        self.http_delays.append(HttpDelay(route, method, seconds, count))

    def take_http_delay(self, method: str, route: str, path: str) -> float:
        for delay in self.http_delays:
            if delay.matches(method, route, path):
                if delay.remaining is not None:
                    delay.remaining -= 1
                    if delay.remaining <= 0:
                        self.http_delays.remove(delay)
                self.fired.append(f"slow_http {delay.seconds} {method} {path}")
                return delay.seconds
        return 0.0

    def take_http(self, method: str, route: str, path: str) -> HttpFault | None:
        for fault in self.http:
            if fault.remaining > 0 and fault.matches(method, route, path):
                fault.remaining -= 1
                self.fired.append(f"{fault.kind} {method} {path}")
                if fault.remaining == 0:
                    self.http.remove(fault)
                return fault
        return None

    def huge_view(self, size: int, *, declare_length: bool = True, count: int | None = None) -> None:
        """Answer the next ``count`` ``GET /view`` (all with ``None``) with ``size`` bytes — a PNG signature, then
        zeros — streamed in 1 MiB chunks that are never all in memory, with a ``Content-Length`` or (with
        ``declare_length=False``) chunked, as a hostile or broken server may send a body of any size.

        Seen on a real ComfyUI 0.33.0 (783545f): ``/view`` serves any file of its folders whole, with a
        ``Content-Length`` (a 100 MB file: ``Content-Length: 100000000``); chunked comes only from a proxy or a
        hostile server."""
        self.huge_views.append(HugeView(size, declare_length, count))

    def take_huge_view(self) -> HugeView | None:
        for huge in self.huge_views:
            if huge.remaining is not None:
                huge.remaining -= 1
                if huge.remaining <= 0:
                    self.huge_views.remove(huge)
            self.fired.append(f"huge_view {huge.size}")
            return huge
        return None

    def take_view_delay(self) -> float:
        if self.view_delay <= 0:
            return 0.0
        delay = self.view_delay
        if self.view_delay_count is not None:
            self.view_delay_count -= 1
            if self.view_delay_count <= 0:
                self.view_delay, self.view_delay_count = 0.0, None
        self.fired.append(f"slow_view {delay}")
        return delay

    # -- websocket ---------------------------------------------------------------------------------------------
    def drop_socket(
        self, client_id: str | None = None, *, at_node: str | None = None, after_messages: int | None = None
    ) -> None:
        """Abruptly close the socket of the running job's client (or ``client_id``) when the job reaches node
        ``at_node`` (just before its ``executing``) or after ``after_messages`` job messages were sent to it.
        Messages sent while it is down are lost, as on the real server."""
        if at_node is None and after_messages is None:
            raise ValueError("drop_socket needs at_node or after_messages")
        self.socket_drops.append(SocketDrop(client_id, at_node, after_messages))

    def delay_ws_accept(self, seconds: float) -> None:
        """Hold every new websocket handshake for ``seconds`` (a job can finish before the socket connects)."""
        self.ws_accept_delay = seconds

    # -- jobs --------------------------------------------------------------------------------------------------
    def delay_record(self, seconds: float) -> None:
        """Wait ``seconds`` between a prompt's last job message (``execution_success`` / ``_error`` /
        ``_interrupted``) and writing its history (then ``status`` and ``executing`` ``node: null``), as the real
        server's clean-up after a prompt takes (255 ms after a 400-frame run in ``transcripts/reconnect.jsonl``).
        Meanwhile ``/queue`` still lists the prompt as running and ``/api/jobs/{id}`` says ``in_progress``."""
        self.record_delay = seconds

    def fail_node(
        self,
        node_id: str | None = None,
        class_type: str | None = None,
        *,
        message: str = "emulated failure",
        exception_type: str = "RuntimeError",
        count: int = 1,
    ) -> None:
        """Make the next ``count`` executions of a node (by id or class) raise: ``execution_error`` follows."""
        if node_id is None and class_type is None:
            raise ValueError("fail_node needs node_id or class_type")
        self.node_failures.append(NodeFailure(node_id, class_type, message, exception_type, count))

    def hostile_output(self, *, ext: str | None = None, data: bytes | None = None, count: int | None = 1) -> None:
        """The next ``count`` image saves (``SaveImage``, ``PreviewImage``; all with ``None``) name their file
        ``<prefix>_<counter>_.<ext>`` instead of ``.png`` and/or write ``data`` instead of the picture: a server
        (a custom node, a compromised host) naming and filling its outputs as it likes (``executed``, history
        and ``/view`` all agree with the file).

        Seen on a real ComfyUI 0.33.0 (783545f): ``/view`` serves whatever file is in the output folder with a
        ``Content-Type`` guessed from its extension: ``text/x-sh`` for ``evil.sh``, ``image/png`` for a shell
        script named ``fake_00001_.png`` (as this emulator does). Its ``execution_error`` texts quote absolute
        paths: ``cannot identify image file '/tmp/…/input/broken.png'`` (``fail_node(message=...)``)."""
        self.hostile_outputs.append(HostileOutput(ext, data, count))

    def hold_progress(self, class_type: str) -> asyncio.Event:
        """The next node of ``class_type`` sends its first progress update, then waits (interrupts still stop it)
        until the returned event is set: a test sees that stage on the bot's side for sure, however slow or busy
        the machine, instead of hoping a timed stage lasts long enough. Not a server behaviour: a pause button."""
        self.holds[class_type] = asyncio.Event()
        return self.holds[class_type]

    def take_hold(self, class_type: str) -> asyncio.Event | None:
        held = self.holds.pop(class_type, None)
        if held is not None:
            self.fired.append(f"hold_progress {class_type}")
        return held

    def take_hostile_output(self) -> HostileOutput | None:
        for hostile in self.hostile_outputs:
            if hostile.remaining is not None:
                hostile.remaining -= 1
                if hostile.remaining <= 0:
                    self.hostile_outputs.remove(hostile)
            self.fired.append(f"hostile_output {hostile.ext}")
            return hostile
        return None

    def take_node_failure(self, node_id: str, class_type: str) -> NodeFailure | None:
        for failure in self.node_failures:
            if failure.node_id not in (None, node_id) or failure.class_type not in (None, class_type):
                continue
            failure.remaining -= 1
            if failure.remaining <= 0:
                self.node_failures.remove(failure)
            self.fired.append(f"fail_node {node_id} {class_type}")
            return failure
        return None

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]
