"""What the emulator saw and sent: every HTTP request and every websocket frame, in order, for assertions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class HttpRecord:
    """One HTTP request: monotonic ``time``, ``method``, ``route`` (the template, ``/history/{prompt_id}``),
    ``path``, ``query``, parsed ``json`` body (``None`` when absent or not JSON), ``form`` fields of a multipart
    upload (file fields as ``(filename, bytes)``), the answer's ``status`` and JSON ``response``, and ``fault``
    (the name of the fault that shaped the answer, if any)."""

    time: float
    method: str
    route: str
    path: str
    query: dict[str, str]
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)
    status: int = 0
    response: Any = None
    fault: str | None = None


@dataclass
class WsRecord:
    """One websocket event. ``direction`` is ``"out"`` (sent by the emulator), ``"in"`` (sent by the client),
    ``"open"``, ``"close"`` or ``"lost"`` (a frame for a client id with no registered socket, dropped as the
    server drops it). ``client_id`` is the socket's clientId (sid), ``socket`` its serial number (two sockets
    of one clientId differ), ``type`` the JSON ``type`` or ``"binary:N"``; ``data`` the JSON ``data`` or, for
    binary frames, the decoded header (see :func:`frames.decode_binary`)."""

    time: float
    direction: str
    client_id: str
    socket: int
    type: str
    data: Any = None
    raw: bytes | None = None
