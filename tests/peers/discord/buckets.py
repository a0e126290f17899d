"""Which limits a request counts against, keyed as Discord keys them (its docs, Topics → Rate Limits).

"Per-route rate limits often account for top-level resources within the path ... Top-level resources are
currently limited to channels (``channel_id``), guilds (``guild_id``), and webhooks (``webhook_id`` or
``webhook_id + webhook_token``)"; ``X-RateLimit-Bucket`` names the limit "non-inclusive of top-level resources",
so two resources under one route report the same bucket hash and still count separately. "All bots can make up
to 50 requests per second to our API ... Interaction endpoints are not bound to the bot's Global Rate Limit."

- Interaction webhook routes (``/webhooks/{application_id}/{token}`` and ``.../messages/{@original|id}``, every
  method): one bucket per webhook id + token — each interaction has its own — under one hash for all tokens.
  Not counted globally. Interaction callbacks (``/interactions/{id}/{token}/callback``) likewise: their own
  bucket per token (``route_bucket_*``), not counted globally.
- Bot-token message routes: ``POST /channels/{channel_id}/messages`` and ``PATCH .../messages/{message_id}``
  are two buckets, each per channel (``channel_send_bucket_*``, ``channel_edit_bucket_*``): every edit in a
  channel shares one, whichever message it edits.
- Every other route: one bucket per route and top-level resource (``route_bucket_*``).
- Every request that is not an interaction route counts against the global limit (``global_limit`` per
  ``global_period``), per bot token (per client without one, as Discord does per IP).
- ``shared_limit`` (off by default) adds a limit the headers never announce (``X-RateLimit-Scope: shared``):
  on every message write (POST / PATCH / DELETE of a message, on channel and interaction webhook routes alike)
  per channel, or with ``per="message"`` on the edits and deletes of each message.

The per-route numbers are not public: the defaults in ``EmulatorConfig`` are assumptions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .ratelimit import Limit, bucket_hash

if TYPE_CHECKING:
    from .state import EmulatorConfig

INTERACTION_WEBHOOK_BUCKET = bucket_hash("interaction-webhook")
CHANNEL_SEND_BUCKET = bucket_hash("POST /channels/{channel_id}/messages")
CHANNEL_EDIT_BUCKET = bucket_hash("PATCH /channels/{channel_id}/messages/{message_id}")
GLOBAL_BUCKET = "global"
SHARED_BUCKET = "shared"

_MESSAGES = "/channels/{channel_id}/messages"
_MESSAGE = "/channels/{channel_id}/messages/{message_id}"
_WEBHOOK = "/webhooks/{application_id}/{token}"
_ID = "{message_id}"
_MESSAGE_WRITES = {
    ("POST", _MESSAGES),
    ("PATCH", _MESSAGE),
    ("DELETE", _MESSAGE),
    ("POST", _WEBHOOK),
    *((method, f"{_WEBHOOK}/messages/{tail}") for method in ("PATCH", "DELETE") for tail in ("@original", _ID)),
}


@dataclass(frozen=True)
class SharedLimit:
    """``limit`` message writes per ``period`` Discord seconds, ``per`` channel (every message write in it) or
    ``per`` message (edits and deletes of one message), refused with ``X-RateLimit-Scope: shared``."""

    limit: int
    period: float
    per: Literal["channel", "message"] = "channel"

    @classmethod
    def of(cls, value: SharedLimit | tuple[int, float]) -> SharedLimit:
        return value if isinstance(value, SharedLimit) else cls(*value)


@dataclass(frozen=True)
class RequestLimits:
    """The limits one request counts against: its route bucket, the global limit (``None``: exempt), and the
    shared limit (``None``: off or not a message write)."""

    route: Limit
    global_limit: Limit | None
    shared: Limit | None


def is_interaction_route(route: str) -> bool:
    return route.startswith(("/webhooks/{application_id}/{token}", "/interactions/"))


def limits_for(
    config: EmulatorConfig,
    method: str,
    route: str,
    params: Mapping[str, str],
    *,
    authorized_as: str | None,
    target: Callable[[], tuple[int | None, int | None]],
) -> RequestLimits:
    """The limits of ``method route`` with path parameters ``params``. ``authorized_as`` is the bot token the
    request carries (``None``: none); ``target()`` gives the (channel id, message id) a message write touches,
    asked only when a shared limit is on."""
    scaled = config.scaled
    if route.startswith(_WEBHOOK):
        resource = f"webhook:{params['application_id']}:{params['token']}"
        period = scaled(config.webhook_bucket_period)
        bucket = Limit(INTERACTION_WEBHOOK_BUCKET, resource, config.webhook_bucket_limit, period)
    elif (method, route) == ("POST", _MESSAGES):
        period = scaled(config.channel_send_bucket_period)
        bucket = Limit(CHANNEL_SEND_BUCKET, f"channel:{params['channel_id']}", config.channel_send_bucket_limit, period)
    elif (method, route) == ("PATCH", _MESSAGE):
        period = scaled(config.channel_edit_bucket_period)
        bucket = Limit(CHANNEL_EDIT_BUCKET, f"channel:{params['channel_id']}", config.channel_edit_bucket_limit, period)
    else:
        resource = next((f"{key}:{params[key]}" for key in ("channel_id", "guild_id", "token") if key in params), "")
        period = scaled(config.route_bucket_period)
        bucket = Limit(bucket_hash(f"{method} {route}"), resource, config.route_bucket_limit, period)
    global_limit = None
    if not is_interaction_route(route):
        who = f"bot:{authorized_as}" if authorized_as is not None else "unauthenticated"
        global_limit = Limit(GLOBAL_BUCKET, who, config.global_limit, scaled(config.global_period))
    return RequestLimits(bucket, global_limit, _shared(config, method, route, target))


def _shared(
    config: EmulatorConfig, method: str, route: str, target: Callable[[], tuple[int | None, int | None]]
) -> Limit | None:
    if config.shared_limit is None or (method, route) not in _MESSAGE_WRITES:
        return None
    shared = SharedLimit.of(config.shared_limit)
    channel_id, message_id = target()
    key = f"channel:{channel_id}" if shared.per == "channel" else f"message:{message_id}"
    if (channel_id if shared.per == "channel" else message_id) is None:
        return None
    return Limit(SHARED_BUCKET, key, shared.limit, config.scaled(shared.period))
