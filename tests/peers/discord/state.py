"""The emulator's settings and its one shared, mutable state (world, messages, commands, interactions, logs).

The REST routes, the gateway and the public :class:`~tests.peers.discord.server.DiscordEmulator` all work on one
:class:`EmulatorState`; every change ends with ``notifier.notify()`` so waiting tests wake up.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .buckets import SharedLimit
from .commands import CommandRegistry
from .interactions import InteractionRecord
from .limits import Limits
from .messages import MessageStore, StoredMessage
from .models import Channel, Member, Overwrite, Role, User, World, build_world
from .ratelimit import BucketTable
from .records import GatewayRecord, Notifier, RequestRecord
from .snowflake import SnowflakeGenerator

MIB = 1024 * 1024


@dataclass
class EmulatorConfig:
    """Knobs, all changeable while the emulator runs (``emu.config.webhook_bucket_period = 0.5``)."""

    #: Seconds within which the first interaction response must arrive (Discord: 3), else 404 / 10062.
    response_deadline: float = 3.0
    #: Seconds an interaction token stays valid for webhook calls (Discord: 15 min), else 401 / 50027.
    token_lifetime: float = 15 * 60.0
    #: Largest file accepted in an upload (Discord: 10 MiB without boosts), else 413 / 40005.
    upload_limit: int = 10 * MIB
    #: ``attachment_size_limit`` sent with interactions; ``None`` means ``upload_limit``.
    attachment_size_limit: int | None = None
    # Rate limits (see ``buckets.py`` for which requests share a bucket). Discord publishes no per-route numbers
    # ("rate limits should not be hard coded into your app": clients read the headers), so the limits and periods
    # below are ASSUMPTIONS, near what bots commonly see; the keying and the headers follow Discord's docs. Periods
    # are Discord seconds (multiplied by ``time_scale``).
    #: Interaction webhook routes (``/webhooks/{application_id}/{token}``, ``.../messages/@original`` and
    #: ``.../messages/{message_id}``, every method): one bucket per webhook id + token, i.e. per interaction.
    webhook_bucket_limit: int = 5
    webhook_bucket_period: float = 2.0
    #: Bot-token message edits (``PATCH /channels/{channel_id}/messages/{message_id}``): one bucket per channel.
    channel_edit_bucket_limit: int = 5
    channel_edit_bucket_period: float = 5.0
    #: Bot-token new messages (``POST /channels/{channel_id}/messages``): another bucket per channel.
    channel_send_bucket_limit: int = 5
    channel_send_bucket_period: float = 5.0
    #: Every other route: requests per route and top-level resource (channel, guild, token) per period.
    route_bucket_limit: int = 50
    route_bucket_period: float = 1.0
    #: Discord's global limit on bot-token requests (docs, Topics → Rate Limits → Global Rate Limit: 50 per
    #: second); interaction routes (webhook with token, callbacks) are exempt. Refused with scope ``global``.
    global_limit: int = 50
    global_period: float = 1.0
    #: An extra limit the headers never announce, refused with ``X-RateLimit-Scope: shared`` while
    #: ``X-RateLimit-Remaining`` still shows room: ``SharedLimit(limit, period, per="channel" | "message")`` or
    #: ``(limit, period)`` (per channel). It counts message writes (POST / PATCH / DELETE of messages, channel
    #: and interaction webhook routes alike): per channel, or per message (edits and deletes). ``None``: off.
    shared_limit: SharedLimit | tuple[int, float] | None = None
    #: Real seconds per Discord second for rate limits: the bucket periods above, and the ``retry_after`` and
    #: ``duration`` of injected 429s (``faults.rate_limit``), are multiplied by it, and the ``X-RateLimit-*`` /
    #: ``Retry-After`` headers describe the scaled windows, so a client that reads them (nextcord does) paces
    #: itself to the scaled clock. 1.0 is Discord's time. Deadlines the client does not learn from us (the 3 s
    #: ``response_deadline``, the 15 min ``token_lifetime``) and the heartbeat are *not* scaled: the bot has
    #: its own copy of those numbers, so they are set separately, together with the bot's.
    time_scale: float = 1.0
    #: HELLO's heartbeat interval, seconds.
    heartbeat_interval: float = 41.25
    locale: str = "en-US"
    limits: Limits = field(default_factory=Limits)

    @property
    def interaction_attachment_size_limit(self) -> int:
        return self.upload_limit if self.attachment_size_limit is None else self.attachment_size_limit

    def scaled(self, discord_seconds: float) -> float:
        """Real seconds for a rate-limit duration given in Discord's seconds."""
        return discord_seconds * self.time_scale

    # The old single edit bucket (one per channel for channel and webhook edits alike), kept for callers that
    # still set it: setting it sets both the interaction webhook bucket and the channel edit bucket.
    @property
    def edit_bucket_limit(self) -> int:
        """Alias: ``channel_edit_bucket_limit``; setting it also sets ``webhook_bucket_limit``."""
        return self.channel_edit_bucket_limit

    @edit_bucket_limit.setter
    def edit_bucket_limit(self, value: int) -> None:
        self.channel_edit_bucket_limit = self.webhook_bucket_limit = value

    @property
    def edit_bucket_period(self) -> float:
        """Alias: ``channel_edit_bucket_period``; setting it also sets ``webhook_bucket_period``."""
        return self.channel_edit_bucket_period

    @edit_bucket_period.setter
    def edit_bucket_period(self, value: float) -> None:
        self.channel_edit_bucket_period = self.webhook_bucket_period = value


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.ids = SnowflakeGenerator()
        self.world: World = build_world(self.ids, locale=config.locale)
        self.bot_token = f"emulator.{self.world.bot_user.id}.{secrets.token_urlsafe(16)}"
        self.base_url = ""
        self.messages = MessageStore(self.ids, lambda: self.base_url)
        self.commands = CommandRegistry(self.ids, self.world.application_id)
        self.interactions: dict[int, InteractionRecord] = {}
        self.tokens: dict[str, InteractionRecord] = {}
        self.requests: list[RequestRecord] = []
        self.gateway_log: list[GatewayRecord] = []
        self.buckets = BucketTable()
        #: Exceptions raised inside the emulator's own handlers (bugs); the fixture fails the test on any.
        self.errors: list[BaseException] = []
        self.notifier = Notifier()

    def add_interaction(self, record: InteractionRecord) -> None:
        self.interactions[record.id] = record
        self.tokens[record.token] = record
        self.notifier.notify()

    def token_expired(self, record: InteractionRecord, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return record.token_revoked or now - record.created > self.config.token_lifetime

    def message_payload(self, message: StoredMessage) -> dict[str, object]:
        referenced = None
        if message.message_reference is not None:
            reference_id = message.message_reference.get("message_id")
            referenced = self.messages.get(int(reference_id)) if reference_id else None
        return message.payload(referenced)

    # Changing the world (REST only: no gateway event is sent; a test that needs one dispatches it) -------------
    # The objects are frozen: each change puts a new one in the guild's list and in the world's by-name dict, so
    # ``emu.channels["general"]`` and ``emu.roles["Moderator"]`` stay current.

    def set_overwrites(self, channel: Channel, overwrites: Sequence[Overwrite]) -> Channel:
        guild = self.world.guild
        new = replace(channel, overwrites=tuple(overwrites))
        guild.channels = [new if c.id == channel.id else c for c in guild.channels]
        self.world.channels = {name: new if c.id == channel.id else c for name, c in self.world.channels.items()}
        self.notifier.notify()
        return new

    def set_role_permissions(self, role: Role, permissions: int) -> Role:
        guild = self.world.guild
        new = replace(role, permissions=int(permissions))
        guild.roles = [new if r.id == role.id else r for r in guild.roles]
        self.world.roles = {r.name: r for r in guild.roles}
        self.notifier.notify()
        return new

    def add_role(self, name: str, permissions: int) -> Role:
        guild = self.world.guild
        role = Role(self.ids.next(), name, int(permissions), max((r.position for r in guild.roles), default=0) + 1)
        guild.roles.append(role)
        self.world.roles[name] = role
        self.notifier.notify()
        return role

    def set_member_roles(self, user: User, roles: Sequence[Role]) -> Member:
        guild = self.world.guild
        member = guild.member(user.id)
        if member is None:
            raise KeyError(f"{user.username} is not a member")
        new = replace(member, role_ids=tuple(role.id for role in roles))
        guild.members = [new if m.user.id == user.id else m for m in guild.members]
        self.notifier.notify()
        return new
