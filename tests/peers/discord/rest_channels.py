"""Channel, message and guild routes (bot token): create, edit, fetch, list and delete messages.

Ephemeral messages exist only for their interaction's webhook: channel routes neither list nor find them, as
on Discord. Messages are created by the bot user; a ``message_reference`` makes a reply (type 19).
"""

from __future__ import annotations

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
    json_response,
    no_content,
)
from .messages import StoredMessage
from .models import Channel, Permission

REPLY = 19


def _channel(request: web.Request) -> Channel | web.Response:
    channel = request.app[STATE].world.guild.channel(int(request.match_info["channel_id"]))
    if channel is None:
        return error_response(request, 404, errors.UNKNOWN_CHANNEL)
    return channel


def _message(request: web.Request, channel: Channel) -> StoredMessage | web.Response:
    state = request.app[STATE]
    message = state.messages.get(int(request.match_info["message_id"]))
    if message is None or message.channel_id != channel.id or message.ephemeral:
        return error_response(request, 404, errors.UNKNOWN_MESSAGE)
    return message


async def get_channel(request: web.Request) -> web.Response:
    """A channel the bot cannot view is 403 / 50001 Missing Access, as on Discord (its docs: Get Channel needs
    VIEW_CHANNEL in a guild channel); only this route checks it."""
    channel = _channel(request)
    if isinstance(channel, web.Response):
        return channel
    world = request.app[STATE].world
    if not world.guild.channel_permissions_for(world.bot_user.id, channel) & Permission.VIEW_CHANNEL:
        return error_response(request, 403, errors.MISSING_ACCESS)
    return json_response(request, channel.payload())


async def list_messages(request: web.Request) -> web.Response:
    channel = _channel(request)
    if isinstance(channel, web.Response):
        return channel
    state = request.app[STATE]
    query = request.query
    limit = max(1, min(100, int(query.get("limit", "50"))))
    messages = sorted(state.messages.in_channel(channel.id, include_ephemeral=False), key=lambda m: m.id, reverse=True)
    if "before" in query:
        messages = [m for m in messages if m.id < int(query["before"])]
    if "after" in query:
        messages = [m for m in messages if m.id > int(query["after"])][-limit:]
    if "around" in query:
        around = int(query["around"])
        older = [m for m in messages if m.id <= around][: (limit + 1) // 2]
        newer = [m for m in messages if m.id > around][-(limit // 2) :] if limit > 1 else []
        messages = newer + older
    return json_response(request, [state.message_payload(m) for m in messages[:limit]])


async def create_message(request: web.Request) -> web.Response:
    channel = _channel(request)
    if isinstance(channel, web.Response):
        return channel
    state, body = request.app[STATE], body_of(request)
    payload = dict(body.payload)
    if (refusal := check_message_body(request, state, payload, body.files, creating=True)) is not None:
        return refusal
    reference = payload.get("message_reference")
    if reference is not None:
        referenced = state.messages.get(int(reference.get("message_id", 0)))
        if referenced is None and reference.get("fail_if_not_exists", True):
            form = {"message_reference": {"_errors": [{"code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE"}]}}
            return json_response(request, errors.invalid_form_body(form), 400)
        payload["message_reference"] = {
            "type": 0,
            "message_id": str(reference.get("message_id")),
            "channel_id": str(channel.id),
            "guild_id": str(channel.guild_id),
        }
    payload["flags"] = int(payload.get("flags") or 0) & ~(1 << 6)  # no ephemeral messages outside interactions
    message = state.messages.create(
        channel_id=channel.id,
        guild_id=channel.guild_id,
        author=state.world.bot_user,
        payload=payload,
        files=body.files,
        message_type=REPLY if reference is not None else 0,
    )
    await announce(request, "MESSAGE_CREATE", message)
    return json_response(request, state.message_payload(message))


async def message_item(request: web.Request) -> web.Response:
    channel = _channel(request)
    if isinstance(channel, web.Response):
        return channel
    message = _message(request, channel)
    if isinstance(message, web.Response):
        return message
    state = request.app[STATE]
    if request.method == "DELETE":
        state.messages.delete(message)
        await announce(request, "MESSAGE_DELETE", message)
        return no_content()
    if request.method == "PATCH":
        body = body_of(request)
        if message.author.id != state.world.bot_user.id and set(body.payload) - {"flags"}:
            return error_response(request, 403, 50005, "Cannot edit a message authored by another user")
        if (refusal := check_message_body(request, state, body.payload, body.files, creating=False)) is not None:
            return refusal
        state.messages.edit(message, body.payload, body.files)
        await announce(request, "MESSAGE_UPDATE", message)
    return json_response(request, state.message_payload(message))


async def bulk_delete(request: web.Request) -> web.Response:
    channel = _channel(request)
    if isinstance(channel, web.Response):
        return channel
    state = request.app[STATE]
    ids = body_of(request).payload.get("messages") or []
    if not 2 <= len(ids) <= 100:
        form = {
            "messages": {
                "_errors": [{"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 2 and 100 in length."}]
            }
        }
        return json_response(request, errors.invalid_form_body(form), 400)
    for message_id in ids:
        message = state.messages.get(int(message_id))
        if message is not None and message.channel_id == channel.id:
            state.messages.delete(message)
    return no_content()


async def typing(request: web.Request) -> web.Response:
    channel = _channel(request)
    return channel if isinstance(channel, web.Response) else no_content()


def _guild_or_error(request: web.Request) -> web.Response | None:
    if int(request.match_info["guild_id"]) != request.app[STATE].world.guild.id:
        return error_response(request, 404, 10004, "Unknown Guild")
    return None


async def get_guild(request: web.Request) -> web.Response:
    if (refusal := _guild_or_error(request)) is not None:
        return refusal
    payload: dict[str, Any] = request.app[STATE].world.guild.payload()
    for key in ("channels", "members", "threads", "presences", "voice_states"):
        payload.pop(key)
    return json_response(request, payload)


async def get_guild_channels(request: web.Request) -> web.Response:
    if (refusal := _guild_or_error(request)) is not None:
        return refusal
    return json_response(request, [c.payload() for c in request.app[STATE].world.guild.channels])


async def get_guild_roles(request: web.Request) -> web.Response:
    if (refusal := _guild_or_error(request)) is not None:
        return refusal
    return json_response(request, [r.payload() for r in request.app[STATE].world.guild.roles])


async def get_member(request: web.Request) -> web.Response:
    if (refusal := _guild_or_error(request)) is not None:
        return refusal
    member = request.app[STATE].world.guild.member(int(request.match_info["user_id"]))
    if member is None:
        return error_response(request, 404, 10007, "Unknown Member")
    return json_response(request, member.payload())


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/channels/{channel_id}", get_channel),
    ("GET", "/channels/{channel_id}/messages", list_messages),
    ("POST", "/channels/{channel_id}/messages", create_message),
    ("POST", "/channels/{channel_id}/messages/bulk-delete", bulk_delete),
    ("POST", "/channels/{channel_id}/typing", typing),
    *[(m, "/channels/{channel_id}/messages/{message_id}", message_item) for m in ("GET", "PATCH", "DELETE")],
    ("GET", "/guilds/{guild_id}", get_guild),
    ("GET", "/guilds/{guild_id}/channels", get_guild_channels),
    ("GET", "/guilds/{guild_id}/roles", get_guild_roles),
    ("GET", "/guilds/{guild_id}/members/{user_id}", get_member),
]
