"""Shared pieces of the HTTP side: app keys, request body parsing, Discord-style JSON answers, validation.

Discord answers JSON with ``Content-Type: application/json`` exactly — no charset: nextcord compares the header
verbatim and would otherwise hand the caller a string — so answers are built from bytes with that header set.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from . import errors
from .limits import FormErrors, check_message, is_empty_message
from .messages import StoredMessage
from .records import FileRecord
from .state import EmulatorState

if TYPE_CHECKING:
    from .faults import Faults
    from .gateway import GatewayServer

API_PREFIX = "/api/v10"
STATE = web.AppKey("discord_state", EmulatorState)
GATEWAY: web.AppKey[GatewayServer] = web.AppKey("discord_gateway")
FAULTS: web.AppKey[Faults] = web.AppKey("discord_faults")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RESPONSE_JSON = web.RequestKey("discord_response_json", object)


@dataclass(frozen=True)
class Body:
    json: Any
    files: tuple[FileRecord, ...]

    @property
    def payload(self) -> dict[str, Any]:
        return self.json if isinstance(self.json, dict) else {}


BODY = web.RequestKey("discord_body", Body)


async def parse_body(request: web.Request) -> Body:
    """JSON, or multipart with ``payload_json`` and ``files[n]`` parts (in any order)."""
    if not request.body_exists:
        return Body(None, ())
    if request.content_type.startswith("multipart/"):
        parsed: Any = None
        files: list[FileRecord] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            data = await part.read(decode=False)
            if part.filename is not None:
                content_type = part.headers.get("Content-Type")
                files.append(FileRecord(part.name or "", part.filename, content_type, bytes(data)))
            elif part.name == "payload_json":
                parsed = json.loads(bytes(data).decode())
        return Body(parsed, tuple(files))
    raw = await request.read()
    if not raw:
        return Body(None, ())
    try:
        return Body(json.loads(raw.decode()), ())
    except ValueError:
        return Body(raw.decode(errors="replace"), ())


def body_of(request: web.Request) -> Body:
    body: Body = request[BODY]
    return body


def json_response(
    request: web.Request, data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    request[RESPONSE_JSON] = data
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def error_response(request: web.Request, status: int, code: int, message: str | None = None) -> web.Response:
    return json_response(request, errors.error_body(code, message), status)


def no_content() -> web.Response:
    return web.Response(status=204)


def invalid_form(request: web.Request, form: FormErrors) -> web.Response:
    return json_response(request, errors.invalid_form_body(form.tree), 400)


def check_message_body(
    request: web.Request,
    state: EmulatorState,
    payload: dict[str, Any],
    files: tuple[FileRecord, ...],
    *,
    creating: bool,
    prefix: tuple[str, ...] = (),
) -> web.Response | None:
    """Discord's 400s for a message create/edit body, or None if it is acceptable."""
    limits = state.config.limits
    form = FormErrors()
    check_message(payload, limits, form, prefix)
    if len(files) > limits.files:
        form.add((*prefix, "attachments"), "BASE_TYPE_MAX_LENGTH", f"Must be {limits.files} or fewer in length.")
    if form:
        return invalid_form(request, form)
    if creating and is_empty_message(payload, len(files)):
        return error_response(request, 400, errors.CANNOT_SEND_EMPTY_MESSAGE)
    return None


async def announce(request: web.Request, event: str, message: StoredMessage) -> None:
    """MESSAGE_CREATE/UPDATE/DELETE on the gateway, if the client asked for guild messages."""
    gateway = request.app[GATEWAY]
    if message.ephemeral or not gateway.wants_messages():
        return
    state = request.app[STATE]
    if event == "MESSAGE_DELETE":
        data: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "guild_id": str(message.guild_id),
        }
    else:
        data = state.message_payload(message)
    await gateway.dispatch(event, data)
