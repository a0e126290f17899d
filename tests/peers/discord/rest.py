"""The REST API under ``/api/v10``: the front middleware, login, gateway discovery, commands, channels, guild.

The middleware runs for every API request, in Discord's order: unknown route (404) → bot authorization
(401, except webhook and interaction-callback routes) → injected faults → the rate limits (429: the global
limit, the route's bucket, the optional shared limit; ``buckets.py`` says which request counts against which)
→ upload size (413) → the route. It records each request (see ``records.py``) once answered, and puts the route
bucket's ``X-RateLimit-*`` headers on every answer. Interaction and webhook routes are in ``webhooks.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from . import errors, rest_channels, webhooks
from .buckets import RequestLimits, limits_for
from .faults import FaultRule
from .http_util import (
    API_PREFIX,
    BODY,
    FAULTS,
    GATEWAY,
    RESPONSE_JSON,
    STATE,
    Handler,
    body_of,
    error_response,
    json_response,
    no_content,
    parse_body,
)
from .limits import FormErrors, check_command
from .ratelimit import Decision, bucket_hash, ratelimit_headers, too_many_requests
from .records import RequestRecord
from .state import EmulatorState

CDN_BUCKET = bucket_hash("cdn")
_NO_AUTH_PREFIXES = ("/webhooks/", "/interactions/", "/gateway")


def _route_template(request: web.Request) -> str | None:
    if request.match_info.http_exception is not None:
        return None
    resource = request.match_info.route.resource
    if resource is None:
        return None
    canonical = resource.canonical
    return canonical[len(API_PREFIX) :] if canonical.startswith(API_PREFIX) else canonical


def _message_target(state: EmulatorState, route: str, params: Mapping[str, str]) -> tuple[int | None, int | None]:
    """The (channel id, message id) a message write touches; the message id is ``None`` for a new message."""
    raw_id = params.get("message_id")
    if "channel_id" in params:
        return int(params["channel_id"]), int(raw_id) if raw_id is not None else None
    record = state.tokens.get(params["token"])
    if record is None:
        return None, None
    if route.endswith("/@original"):
        return record.channel.id, record.original_message_id
    return record.channel.id, int(raw_id) if raw_id is not None else None


def _limits(state: EmulatorState, request: web.Request, record: RequestRecord, route: str) -> RequestLimits:
    params = request.match_info
    return limits_for(
        state.config,
        request.method,
        route,
        params,
        authorized_as=state.bot_token if record.authorized else None,
        target=lambda: _message_target(state, route, params),
    )


def _refusal(
    request: web.Request, record: RequestRecord, route: Decision, bucket: str, scope: str, retry_after: float | None
) -> web.Response:
    """Discord's 429; ``retry_after`` ``None`` means the route bucket itself refused (see ``too_many_requests``)."""
    scale = request.app[STATE].config.time_scale
    headers, body = too_many_requests(
        route, bucket, time.time(), scope=scope, time_scale=scale, retry_after=retry_after
    )
    record.ratelimit_scope = scope
    return json_response(request, body, 429, headers)


def _fault_response(
    request: web.Request, record: RequestRecord, fault: FaultRule, limits: RequestLimits | None
) -> web.Response:
    record.fault = fault.kind
    if fault.kind == "rate_limit":
        if limits is None:  # the CDN: no buckets
            return _refusal(request, record, Decision(False, 1, 0, fault.retry_after), CDN_BUCKET, fault.scope, None)
        if fault.scope == "shared":
            route = request.app[STATE].buckets.state(limits.route, time.monotonic())
            return _refusal(request, record, route, limits.route.bucket, "shared", fault.retry_after)
        refused = Decision(False, limits.route.limit, 0, fault.retry_after)
        return _refusal(request, record, refused, limits.route.bucket, fault.scope, None)
    reasons = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    return json_response(
        request, errors.http_error_body(fault.status, reasons.get(fault.status, "Error")), fault.status
    )


async def _answer_cdn(request: web.Request, handler: Handler, record: RequestRecord) -> web.StreamResponse:
    """Attachment downloads: no auth or buckets, but faults apply (a flaky CDN)."""
    fault = request.app[FAULTS].take(request.method, record.route, record.path)
    if fault is not None:
        return _fault_response(request, record, fault, None)
    return await handler(request)


async def _answer_api(request: web.Request, handler: Handler, record: RequestRecord) -> web.StreamResponse:
    state, faults = request.app[STATE], request.app[FAULTS]
    route = record.route
    if route is None:
        exc = request.match_info.http_exception
        status = exc.status if exc is not None else 404
        reason = "Method Not Allowed" if status == 405 else "Not Found"
        return json_response(request, errors.http_error_body(status, reason), status)
    if not route.startswith(_NO_AUTH_PREFIXES) and not record.authorized:
        return json_response(request, errors.http_error_body(401, "Unauthorized"), 401)
    limits = _limits(state, request, record, route)
    bucket = limits.route.bucket
    record.bucket, record.bucket_resource = bucket, limits.route.resource
    fault = faults.take(request.method, route, record.path)
    if fault is not None and fault.kind != "slow":
        return _fault_response(request, record, fault, limits)
    verdict = state.buckets.admit(
        limits.route, time.monotonic(), global_limit=limits.global_limit, shared=limits.shared
    )
    if verdict.scope == "user":
        return _refusal(request, record, verdict.route, bucket, "user", None)
    if verdict.scope is not None:
        return _refusal(request, record, verdict.route, bucket, verdict.scope, verdict.retry_after)
    if any(upload.size > state.config.upload_limit for upload in record.files):
        return error_response(request, 413, errors.REQUEST_ENTITY_TOO_LARGE)
    response = await handler(request)
    response.headers.update(ratelimit_headers(verdict.route, bucket, time.time()))
    if fault is not None:  # "slow": done, and answered late
        await asyncio.sleep(fault.delay)
    return response


@web.middleware
async def front_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Parses, records and polices every API and CDN request (the gateway websocket passes through)."""
    is_api = request.path.startswith(API_PREFIX + "/")
    if not is_api and not request.path.startswith(("/cdn/", "/media/")):
        return await handler(request)
    state = request.app[STATE]
    record = RequestRecord(
        index=-1,
        time=time.monotonic(),
        wall_time=time.time(),
        method=request.method,
        path=request.path[len(API_PREFIX) :] if is_api else request.path,
        route=_route_template(request),
        query=dict(request.query),
        authorized=request.headers.get("Authorization") == f"Bot {state.bot_token}",
    )
    try:
        body = await parse_body(request)
        request[BODY] = body
        record.json, record.files = body.json, body.files
        answer = _answer_api if is_api else _answer_cdn
        response = await answer(request, handler, record)
    except web.HTTPException as exc:
        response = json_response(request, errors.http_error_body(exc.status, exc.reason), exc.status)
    except Exception as exc:
        # A bug in the emulator, not a Discord outage: kept so the fixture can fail the test loudly.
        state.errors.append(exc)
        record.fault = "emulator_error"
        response = json_response(request, errors.http_error_body(500, "Internal Server Error"), 500)
    record.status = response.status
    record.response = request.get(RESPONSE_JSON)
    record.end_time = time.monotonic()
    record.index = len(state.requests)
    state.requests.append(record)
    state.notifier.notify()
    return response


# Login, gateway discovery, application ----------------------------------------------------------------------


async def get_current_user(request: web.Request) -> web.Response:
    bot = request.app[STATE].world.bot_user
    extra = {"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US", "premium_type": 0}
    return json_response(request, {**bot.payload(), **extra})


async def get_current_user_guilds(request: web.Request) -> web.Response:
    """``GET /users/@me/guilds`` (Discord's docs, Resources → User → Get Current User Guilds): partial guilds with
    the bot's ``owner`` flag and base ``permissions``."""
    world = request.app[STATE].world
    return json_response(request, [world.guild.partial_payload(world.bot_user.id)])


async def get_user(request: web.Request) -> web.Response:
    world = request.app[STATE].world
    user_id = int(request.match_info["user_id"])
    user = next((u for u in (*world.users.values(), world.bot_user) if u.id == user_id), None)
    if user is None:
        return error_response(request, 404, 10013, "Unknown User")
    return json_response(request, user.payload())


async def get_gateway(request: web.Request) -> web.Response:
    return json_response(request, {"url": request.app[GATEWAY].url})


async def get_gateway_bot(request: web.Request) -> web.Response:
    limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
    return json_response(request, {"url": request.app[GATEWAY].url, "shards": 1, "session_start_limit": limit})


async def get_application(request: web.Request) -> web.Response:
    world = request.app[STATE].world
    owner = world.guild.member(world.guild.owner_id)
    data: dict[str, Any] = {
        "id": str(world.application_id),
        "name": world.bot_user.username,
        "icon": None,
        "description": "",
        "summary": "",
        "rpc_origins": [],
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": 0,
        "team": None,
        "owner": owner.user.payload() if owner else world.users["alice"].payload(),
        "bot": world.bot_user.payload(),
    }
    return json_response(request, data)


# Application commands ---------------------------------------------------------------------------------------


def _command_scope(request: web.Request) -> int | web.Response | None:
    state = request.app[STATE]
    if int(request.match_info["application_id"]) != state.world.application_id:
        return error_response(request, 404, 10002, "Unknown Application")
    if "guild_id" not in request.match_info:
        return None
    guild_id = int(request.match_info["guild_id"])
    if guild_id != state.world.guild.id:
        return error_response(request, 403, 50001, "Missing Access")
    return guild_id


def _command_errors(request: web.Request, payloads: list[Any]) -> web.Response | None:
    form = FormErrors()
    limits = request.app[STATE].config.limits
    for index, payload in enumerate(payloads):
        if not isinstance(payload, dict):
            form.add((index,), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        else:
            check_command(payload, limits, form, (index,) if len(payloads) > 1 else ())
    if form:
        return json_response(request, errors.invalid_form_body(form.tree), 400)
    return None


async def commands_list(request: web.Request) -> web.Response:
    scope = _command_scope(request)
    if isinstance(scope, web.Response):
        return scope
    return json_response(request, request.app[STATE].commands.in_scope(scope))


async def commands_create(request: web.Request) -> web.Response:
    scope = _command_scope(request)
    if isinstance(scope, web.Response):
        return scope
    payload = body_of(request).json
    if (refusal := _command_errors(request, [payload])) is not None:
        return refusal
    command, created = request.app[STATE].commands.upsert(scope, payload)
    return json_response(request, command, 201 if created else 200)


async def commands_overwrite(request: web.Request) -> web.Response:
    scope = _command_scope(request)
    if isinstance(scope, web.Response):
        return scope
    payloads = body_of(request).json
    if not isinstance(payloads, list):
        return json_response(request, errors.invalid_form_body({"_errors": [{"code": "BASE_TYPE_ARRAY"}]}), 400)
    if (refusal := _command_errors(request, payloads)) is not None:
        return refusal
    return json_response(request, request.app[STATE].commands.overwrite(scope, payloads))


async def command_item(request: web.Request) -> web.Response:
    scope = _command_scope(request)
    if isinstance(scope, web.Response):
        return scope
    commands = request.app[STATE].commands
    command_id = int(request.match_info["command_id"])
    command: dict[str, Any] | None
    if request.method == "DELETE":
        if commands.delete(scope, command_id):
            return no_content()
        command = None
    elif request.method == "PATCH":
        changes = body_of(request).payload
        command = commands.get(scope, command_id)
        if command is not None and (refusal := _command_errors(request, [{**command, **changes}])) is not None:
            return refusal
        command = commands.edit(scope, command_id, changes)
    else:
        command = commands.get(scope, command_id)
    if command is None:
        return error_response(request, 404, errors.UNKNOWN_APPLICATION_COMMAND)
    return json_response(request, command)


def add_routes(app: web.Application) -> None:
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/users/@me", get_current_user),
        ("GET", "/users/@me/guilds", get_current_user_guilds),
        ("GET", "/users/{user_id}", get_user),
        ("GET", "/gateway", get_gateway),
        ("GET", "/gateway/bot", get_gateway_bot),
        ("GET", "/oauth2/applications/@me", get_application),
        ("GET", "/applications/@me", get_application),
    ]
    for base in ("/applications/{application_id}", "/applications/{application_id}/guilds/{guild_id}"):
        routes += [
            ("GET", f"{base}/commands", commands_list),
            ("POST", f"{base}/commands", commands_create),
            ("PUT", f"{base}/commands", commands_overwrite),
        ]
        routes += [(method, f"{base}/commands/{{command_id}}", command_item) for method in ("GET", "PATCH", "DELETE")]
    routes += rest_channels.ROUTES + webhooks.ROUTES
    for method, path, handler in routes:
        app.router.add_route(method, API_PREFIX + path, handler)
    for method, path, handler in webhooks.CDN_ROUTES:
        app.router.add_route(method, path, handler)
