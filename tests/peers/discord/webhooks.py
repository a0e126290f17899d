"""Interaction callbacks, the interaction webhook (``@original`` and follow-ups) and the attachment CDN.

Callback rules, checked in Discord's order: unknown id or token → 404 / 10062; already answered → 400 / 40060;
first answer later than ``response_deadline`` → 404 / 10062; a type that does not fit the interaction (e.g. 8
to a command, 6 without a message) → 400 / 50035; then the limits of the message, modal or choices.

Webhook rules: wrong application → 404 / 10015; unknown or expired token (older than ``token_lifetime``, or
expired by a fault) → 401 / 50027; no answer yet → 404 / 10015; a message that is not this interaction's →
404 / 10008. The first follow-up after a deferred answer fills the loading message, as on Discord.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from . import errors
from .http_util import (
    STATE,
    Handler,
    announce,
    body_of,
    check_message_body,
    error_response,
    invalid_form,
    json_response,
    no_content,
)
from .interactions import ALLOWED_RESPONSES, InteractionRecord, InteractionResponse, InteractionType, ResponseType
from .limits import FormErrors, check_autocomplete, check_modal
from .messages import EPHEMERAL, LOADING, StoredMessage
from .state import EmulatorState

CHAT_INPUT_COMMAND_MESSAGE = 20


def _metadata(state: EmulatorState, record: InteractionRecord) -> dict[str, Any]:
    """The interaction fields Discord puts on messages made through an interaction."""
    user = record.user.payload()
    guild_id = str(state.world.guild.id)
    metadata: dict[str, Any] = {
        "id": str(record.id),
        "type": int(record.type),
        "user": user,
        "authorizing_integration_owners": {"0": guild_id},
    }
    if record.type == InteractionType.APPLICATION_COMMAND:
        metadata["name"] = record.data.get("name", "")
    if record.message_id is not None:
        metadata["interacted_message_id"] = str(record.message_id)
    legacy = {"id": str(record.id), "type": int(record.type), "name": record.data.get("name", ""), "user": user}
    app_id = state.world.application_id
    return {"webhook_id": app_id, "application_id": app_id, "interaction_metadata": metadata, "interaction": legacy}


def _new_message(
    state: EmulatorState,
    record: InteractionRecord,
    payload: dict[str, Any],
    request: web.Request,
    *,
    followup: bool = False,
    extra_flags: int = 0,
) -> StoredMessage:
    """A message made through the interaction: a command's answer is type 20, follow-ups are plain."""
    is_command_answer = record.type == InteractionType.APPLICATION_COMMAND and not followup
    return state.messages.create(
        channel_id=record.channel.id,
        guild_id=record.channel.guild_id,
        author=state.world.bot_user,
        payload=payload,
        files=body_of(request).files,
        message_type=CHAT_INPUT_COMMAND_MESSAGE if is_command_answer else 0,
        extra_flags=extra_flags,
        **_metadata(state, record),
    )


async def interaction_callback(request: web.Request) -> web.Response:
    state, body = request.app[STATE], body_of(request)
    arrived = time.monotonic()
    record = state.interactions.get(int(request.match_info["interaction_id"]))
    if record is None or record.token != request.match_info["token"]:
        return error_response(request, 404, errors.UNKNOWN_INTERACTION)
    if record.responses:
        record.refusals.append(errors.INTERACTION_ALREADY_ACKNOWLEDGED)
        return error_response(request, 400, errors.INTERACTION_ALREADY_ACKNOWLEDGED)
    if arrived - record.created > state.config.response_deadline:
        record.refusals.append(errors.UNKNOWN_INTERACTION)
        return error_response(request, 404, errors.UNKNOWN_INTERACTION)
    payload = body.payload
    kind, data = payload.get("type"), dict(payload.get("data") or {})
    allowed = ALLOWED_RESPONSES.get(record.type, frozenset())
    if kind not in allowed or (kind in (6, 7) and record.message_id is None):
        form = FormErrors()
        form.add(("type",), "BASE_TYPE_CHOICES", f"Value must be one of {sorted(allowed)}.")
        return invalid_form(request, form)
    form = FormErrors()
    if kind == ResponseType.MODAL:
        check_modal(data, state.config.limits, form)
    elif kind == ResponseType.APPLICATION_COMMAND_AUTOCOMPLETE_RESULT:
        check_autocomplete(data, state.config.limits, form)
    if form:
        return invalid_form(request, form)
    if kind in (4, 7):
        refusal = check_message_body(request, state, data, body.files, creating=kind == 4, prefix=("data",))
        if refusal is not None:
            return refusal
    await _apply(request, state, record, ResponseType(kind), data)
    record.responses.append(InteractionResponse(ResponseType(kind), data, arrived, body.files))
    state.notifier.notify()
    return no_content()


async def _apply(
    request: web.Request, state: EmulatorState, record: InteractionRecord, kind: ResponseType, data: dict[str, Any]
) -> None:
    if kind == ResponseType.CHANNEL_MESSAGE_WITH_SOURCE:
        message = _new_message(state, record, data, request)
        record.original_message_id = message.id
        await announce(request, "MESSAGE_CREATE", message)
    elif kind == ResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE:
        flags = int(data.get("flags") or 0) & EPHEMERAL
        message = _new_message(state, record, {"flags": flags}, request, extra_flags=LOADING)
        record.original_message_id = message.id
        await announce(request, "MESSAGE_CREATE", message)
    elif kind == ResponseType.DEFERRED_UPDATE_MESSAGE:
        record.original_message_id = record.message_id
    elif kind == ResponseType.UPDATE_MESSAGE and record.message_id is not None:
        message = state.messages.messages[record.message_id]
        state.messages.edit(message, data, body_of(request).files)
        record.original_message_id = message.id
        await announce(request, "MESSAGE_UPDATE", message)


def _webhook_interaction(request: web.Request) -> InteractionRecord | web.Response:
    state = request.app[STATE]
    if request.match_info["application_id"] != str(state.world.application_id):
        return error_response(request, 404, errors.UNKNOWN_WEBHOOK)
    record = state.tokens.get(request.match_info["token"])
    if record is None or state.token_expired(record):
        return error_response(request, 401, errors.INVALID_WEBHOOK_TOKEN)
    if not record.responses:
        return error_response(request, 404, errors.UNKNOWN_WEBHOOK)
    return record


def _webhook_message(request: web.Request, record: InteractionRecord) -> StoredMessage | web.Response:
    raw = request.match_info.get("message_id", "@original")
    message_id: int | None = record.original_message_id
    if raw != "@original":
        message_id = int(raw) if int(raw) in (record.original_message_id, *record.followup_ids) else None
    message = request.app[STATE].messages.get(message_id) if message_id is not None else None
    if message is None:
        return error_response(request, 404, errors.UNKNOWN_MESSAGE)
    return message


async def execute_webhook(request: web.Request) -> web.Response:
    record = _webhook_interaction(request)
    if isinstance(record, web.Response):
        return record
    state, body = request.app[STATE], body_of(request)
    payload = dict(body.payload)
    if (refusal := check_message_body(request, state, payload, body.files, creating=True)) is not None:
        return refusal
    original = state.messages.get(record.original_message_id) if record.original_message_id else None
    if original is not None and original.loading and not record.followup_ids:
        # The deferred "thinking…" message becomes the first follow-up; its ephemerality was set by the defer.
        payload.pop("flags", None)
        message = state.messages.edit(original, payload, body.files)
        await announce(request, "MESSAGE_UPDATE", message)
    else:
        message = _new_message(state, record, payload, request, followup=True)
        if record.original_message_id is not None and message.interaction_metadata is not None:
            message.interaction_metadata["original_response_message_id"] = str(record.original_message_id)
        record.followup_ids.append(message.id)
        await announce(request, "MESSAGE_CREATE", message)
    state.notifier.notify()
    if request.query.get("wait", "false").lower() in ("1", "true"):
        return json_response(request, state.message_payload(message))
    return no_content()


async def webhook_message(request: web.Request) -> web.Response:
    record = _webhook_interaction(request)
    if isinstance(record, web.Response):
        return record
    message = _webhook_message(request, record)
    if isinstance(message, web.Response):
        return message
    state, body = request.app[STATE], body_of(request)
    if request.method == "DELETE":
        state.messages.delete(message)
        await announce(request, "MESSAGE_DELETE", message)
        return no_content()
    if request.method == "PATCH":
        if (refusal := check_message_body(request, state, body.payload, body.files, creating=False)) is not None:
            return refusal
        state.messages.edit(message, body.payload, body.files)
        await announce(request, "MESSAGE_UPDATE", message)
    return json_response(request, state.message_payload(message))


async def cdn_file(request: web.Request) -> web.Response:
    """Attachment bytes at the ``url`` / ``proxy_url`` the emulator handed out."""
    attachment = request.app[STATE].messages.attachments.get(int(request.match_info["attachment_id"]))
    if attachment is None or attachment.filename != request.match_info["filename"]:
        return web.Response(status=404, text="Not Found")
    return web.Response(body=attachment.data, content_type=attachment.content_type or "application/octet-stream")


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/interactions/{interaction_id}/{token}/callback", interaction_callback),
    ("POST", "/webhooks/{application_id}/{token}", execute_webhook),
    *[
        (m, "/webhooks/{application_id}/{token}/messages/@original", webhook_message)
        for m in ("GET", "PATCH", "DELETE")
    ],
    *[
        (m, "/webhooks/{application_id}/{token}/messages/{message_id}", webhook_message)
        for m in ("GET", "PATCH", "DELETE")
    ],
]
CDN_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/cdn/{folder}/{attachment_id:\\d+}/{filename}", cdn_file),
    ("GET", "/media/{folder}/{attachment_id:\\d+}/{filename}", cdn_file),
]
