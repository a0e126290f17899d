"""A Discord API emulator (REST + gateway) on 127.0.0.1 for the real, unpatched nextcord client.

Use
---
In tests, take the fixtures (``fixtures.py`` is a pytest plugin)::

    async def test_hello(discord_emulator, run_nextcord):
        client = nextcord.Client(intents=nextcord.Intents.none(), default_guild_ids=[discord_emulator.guild.id])

        @client.slash_command(description="Say hello")
        async def hello(interaction: nextcord.Interaction, name: str) -> None:
            await interaction.response.send_message(f"hello {name}")

        await run_nextcord(client)  # Route.BASE set, client started, READY, commands registered
        emu = discord_emulator
        interaction = await emu.send_slash_command("alice", "general", "hello", {"name": "bob"})
        await emu.wait_for_response(interaction)
        assert emu.original_message(interaction).content == "hello bob"

``run_nextcord(client)`` (a :class:`NextcordRunner`) lowers the client's ``guild_ready_timeout`` to 50 ms
(nextcord waits that long after the last GUILD_CREATE before READY), waits for the client's own command sync,
and at teardown closes the client, cancels what nextcord leaves running and restores ``Route.BASE``. nextcord
sleeps 5 s before every re-IDENTIFY (``Client.before_identify_hook``): override that hook in a test bot that
is made to re-IDENTIFY. The ``discord_emulator`` fixture fails the test if the emulator itself raised.

Outside pytest: ``async with DiscordEmulator() as emu:`` then set ``nextcord.http.Route.BASE = emu.api_base``
and ``await client.start(emu.bot_token)``; the gateway URL comes from ``GET /gateway``. ``raw_client.RawBot``
speaks the protocol without nextcord, for tests that need exact requests.

The world
---------
``emu.guild`` with roles ``emu.roles`` (``@everyone``, ``Moderator`` with Manage Messages, the bot's managed
role), text channels ``emu.channels["general"]`` and ``["renders"]``, members ``emu.users["alice"]`` (Moderator),
``["bob"]``, ``["carol"]`` and the bot (``emu.bot_user``, token ``emu.bot_token``, ``emu.application_id``).
``emu.add_member(name, roles=())`` adds another human member. Users and channels can be passed by name to the
driving methods.

Permissions (REST only, no gateway event): ``emu.set_overwrites(channel, Overwrite.role(role_or_id, allow=,
deny=), Overwrite.member(user, ...))`` (the guild id is ``@everyone``), ``emu.set_role_permissions(role, bits)``,
``emu.add_role(name, bits)``, ``emu.set_member_roles(user, roles)`` (``Permission`` names the bits). ``GET
/channels/{id}`` serves the overwrites and answers 403 / 50001 when the bot may not view the channel (computed as
Discord's docs, Topics → Permissions, compute it); ``GET /users/@me/guilds`` the partial guild with the bot's base
``permissions``. A wrong bot token gets 401 ``{"message": "401: Unauthorized", "code": 0}`` on every bot
route.

Driving the bot (each returns an :class:`InteractionRecord` with a fresh id and token)
------------------------------------------------------------------------------------
``send_slash_command(user, channel, name, options, attachments=...)`` (``name`` may be ``"group sub"``;
option values are typed and checked against the registered command; attachment options take
``emu.add_upload(filename, bytes)`` or ``(filename, bytes)``), ``autocomplete(user, channel, name, options,
focused)``, ``click_button(user, message, custom_id)``, ``select(user, message, custom_id, values)``,
``submit_modal(user, interaction_or_message, custom_id, values)``; ``dispatch(event, data)`` for raw events.

Seeing what the bot did
-----------------------
``emu.requests`` (every HTTP request: monotonic ``time``, ``method``, ``route`` template, ``path``, parsed
``json`` / ``payload_json``, ``files`` with bytes, ``status``, ``response``, ``fault``, the ``bucket`` hash and
``bucket_resource`` it counted against, and a 429's ``ratelimit_scope``: ``user``, ``global`` or ``shared``),
``emu.gateway_log``,
``emu.messages(channel)`` (current state of each message, its ``history`` of edits, attachments with bytes and
emulator-served ``url``), ``emu.message(id)``, ``emu.original_message(interaction)``, ``emu.followups(...)``,
``emu.commands(guild=None)``, ``emu.interactions``. Waits, all bounded: ``wait_for(condition)``,
``wait_for_request(predicate, method=, route=, since=)``, ``wait_for_response(interaction)``,
``wait_for_gateway(predicate)``, ``wait_for_command(name)``, ``wait_until_connected()`` (pass
``since=len(emu.requests)`` to wait for a request still to come). An interaction's ``refusals`` lists the codes
of callbacks the emulator refused (10062 late, 40060 twice).

What it enforces (Discord's status codes and bodies)
----------------------------------------------------
Content ≤ 2000, ≤ 10 embeds and the embed text limits (title 256, description 4096, ≤ 25 fields, field name
256 / value 1024, footer 2048, author 256, total 6000), ≤ 5 action rows of ≤ 5 buttons or one select,
custom_id ≤ 100, select options ≤ 25, modal ≤ 5 inputs, ≤ 25 autocomplete choices → 400 / 50035 with the
``errors`` tree; an empty new message → 400 / 50006; a file over ``upload_limit`` → 413 / 40005; a first
interaction response after ``response_deadline`` → 404 / 10062; a second one → 400 / 40060; webhook calls with
an expired token → 401 / 50027; requests beyond a rate limit → 429 with Discord's body and headers (below).
JSON answers are ``Content-Type: application/json``. The knobs are in :class:`EmulatorConfig` (``emu.config``),
changeable at any time.

Rate limits
-----------
Keyed as Discord's docs (Topics → Rate Limits) key them: a bucket per route *and top-level resource*, named by
``X-RateLimit-Bucket`` without the resource (one hash, counted per resource). ``buckets.py`` has the rules:

- interaction webhook routes (``/webhooks/{application_id}/{token}``, ``.../messages/@original`` and
  ``.../messages/{id}``, every method, no bot token needed): one bucket per webhook id + token, so each
  interaction's message has its own (``webhook_bucket_limit`` per ``webhook_bucket_period``: 5 per 2 s);
- bot-token ``PATCH /channels/{channel_id}/messages/{id}``: one bucket per channel, shared by every edit in it
  (``channel_edit_bucket_*``: 5 per 5 s); ``POST /channels/{channel_id}/messages``: another per channel
  (``channel_send_bucket_*``: 5 per 5 s); any other route: per route and resource (``route_bucket_*``: 50 / s);
- the global limit: every request except interaction routes (webhook with token, callbacks) counts per bot
  token (``global_limit`` per ``global_period``: Discord's 50 per second) → 429 ``global: true`` with
  ``X-RateLimit-Global: true`` and ``X-RateLimit-Scope: global``;
- ``config.shared_limit = (limit, period)`` or ``SharedLimit(limit, period, per="message")`` (off by default)
  adds a limit the headers never announce, on message writes (POST / PATCH / DELETE, channel and interaction
  routes alike) per channel, or per message for edits and deletes → 429 ``X-RateLimit-Scope: shared``, "The
  resource is being rate limited.", with a ``retry_after`` while ``X-RateLimit-Remaining`` still shows room.
  ``faults.rate_limit(route, scope="shared")`` injects one such 429.

Discord publishes no per-route numbers: the limits and periods are assumptions (the keying and headers are
not). A refused request counts against no limit. Every answer of a route carries ``X-RateLimit-Limit``,
``-Remaining``, ``-Reset``, ``-Reset-After`` and ``-Bucket`` for its route bucket (429s too); a 429 adds
``Retry-After``, ``X-RateLimit-Scope`` and ``Via``. ``edit_bucket_limit`` / ``edit_bucket_period`` (the old
one-bucket-per-channel model) remain as aliases that set both the webhook and the channel edit buckets.

Time
----
Rate limits run on Discord's clock by default. ``DiscordEmulator(time_scale=0.1)`` (or ``config.time_scale``,
or ``@pytest.mark.discord_time_scale(0.1)`` on a test or module using the fixture) makes every rate-limit
duration ten times shorter: the bucket periods, the global and shared limits, the ``retry_after`` and
``duration`` of injected 429s, and with them ``Retry-After`` and ``X-RateLimit-Reset(-After)``, which stay
consistent with each other and with when the emulator really lets the next request through. ``run_nextcord``
then makes the client wait exactly until ``X-RateLimit-Reset`` (``exact_ratelimits``): by default nextcord
waits at least a second for any bucket. The interaction deadline (3 s), token lifetime (15 min) and heartbeat
are separate knobs, not scaled: the bot has its own copy of the first two, to be scaled with the bot's settings.

Faults (``emu.faults``)
-----------------------
HTTP faults match API and CDN requests by an fnmatch pattern on the route template or the path
(``"/channels/*/messages/*"``), optionally a ``method``, for the next ``count`` requests or ``duration`` seconds:
``rate_limit(route, count=, duration=, retry_after=, is_global=, scope=)``, ``server_error(route, count=, status=)``,
``expire_token(interaction)``, ``set_token_lifetime(seconds)``, ``await drop_gateway(code=None)`` (abrupt, or a
close code), ``await request_reconnect()`` (op 7), ``await invalidate_session(resumable=False)`` (op 9).
"""

from .buckets import SharedLimit
from .fixtures import NextcordRunner
from .interactions import InteractionRecord, InteractionResponse, InteractionType, ResponseType
from .limits import Limits
from .messages import StoredAttachment, StoredMessage
from .models import Channel, Guild, Member, Overwrite, Permission, Role, User
from .records import FileRecord, GatewayRecord, RequestRecord
from .server import DiscordEmulator
from .state import EmulatorConfig

__all__ = [
    "Channel",
    "DiscordEmulator",
    "EmulatorConfig",
    "FileRecord",
    "GatewayRecord",
    "Guild",
    "InteractionRecord",
    "InteractionResponse",
    "InteractionType",
    "Limits",
    "Member",
    "NextcordRunner",
    "Overwrite",
    "Permission",
    "RequestRecord",
    "ResponseType",
    "Role",
    "SharedLimit",
    "StoredAttachment",
    "StoredMessage",
    "User",
]
