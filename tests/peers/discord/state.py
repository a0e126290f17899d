"""The emulator's settings and its one shared, mutable state (world, messages, commands, interactions, logs).

The REST routes, the gateway and the public :class:`~tests.peers.discord.server.DiscordEmulator` all work on one
:class:`EmulatorState`; every change ends with ``notifier.notify()`` so waiting tests wake up.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from .commands import CommandRegistry
from .interactions import InteractionRecord
from .limits import Limits
from .messages import MessageStore, StoredMessage
from .models import World, build_world
from .ratelimit import BucketTable
from .records import GatewayRecord, Notifier, RequestRecord
from .snowflake import SnowflakeGenerator

MIB = 1024 * 1024


@dataclass
class EmulatorConfig:
    """Knobs, all changeable while the emulator runs (``emu.config.edit_bucket_period = 0.5``)."""

    #: Seconds within which the first interaction response must arrive (Discord: 3), else 404 / 10062.
    response_deadline: float = 3.0
    #: Seconds an interaction token stays valid for webhook calls (Discord: 15 min), else 401 / 50027.
    token_lifetime: float = 15 * 60.0
    #: Largest file accepted in an upload (Discord: 10 MiB without boosts), else 413 / 40005.
    upload_limit: int = 10 * MIB
    #: ``attachment_size_limit`` sent with interactions; ``None`` means ``upload_limit``.
    attachment_size_limit: int | None = None
    #: Message edits (channel and webhook routes alike) allowed per channel per period. Discord documents no
    #: per-route numbers (clients must read the headers); 5 per 5 s per channel is the commonly seen edit bucket.
    edit_bucket_limit: int = 5
    edit_bucket_period: float = 5.0
    #: Every other route: requests per major parameter per period (Discord's global limit is 50 per second:
    #: docs, Topics → Rate Limits → Global Rate Limit).
    route_bucket_limit: int = 50
    route_bucket_period: float = 1.0
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
