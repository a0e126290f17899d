"""Discord's rate limits as Discord counts them, learnt from its response headers. Pure: no I/O, no clock.

Discord (developer docs, Topics → Rate Limits) limits each *route* per *top-level resource*: every answer says
which bucket the route belongs to (``X-RateLimit-Bucket``, a hash shared by routes that share a limit), how many
requests that bucket allows (``-Limit``), how many are left (``-Remaining``) and when it resets
(``-Reset-After``, seconds). The resource that makes a bucket unique is the channel for bot-token routes
(``/channels/{channel_id}/messages/...``) and the webhook id *plus its token* for interaction routes
(``/webhooks/{application_id}/{token}/...``), so every interaction's message has a bucket of its own while all
messages edited with the bot token in one channel share one. Bot-token requests also count against the global
limit (50 per second); interaction routes are exempt. A 429 says its scope: ``user`` (this bucket),
``global`` (every bot-token request) or ``shared`` (a limit on the resource that other users share, which we
could not have counted; we pause every write to that channel until its ``retry_after``). The docs ask clients
not to hard-code limits: the numbers here are only what we assume
before the first answer of a bucket (one request at a time, then whatever Discord said).

How it works: ``BucketBook.reserve(key, now)`` answers how long to wait before a request on ``key`` may be sent
(0: go now, and a slot is taken); ``learn(key, answer, now)`` folds an answer's headers (429s included) into the
bucket; ``release(key)`` gives back a slot that was not used. ``RouteKey`` names the route template and the
resource; routes are mapped to the bucket hash Discord named for them, so two routes that share a bucket share
its count.

Never: send more than a bucket's ``remaining`` before its reset, ignore a 429's ``retry_after``, or put a token
in a key's repr (keys carry a digest of the webhook token, not the token).
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Discord's global limit on bot-token requests, per second. We keep a margin for nextcord's own calls
#: (interaction callbacks are exempt; command registration and followups are few).
GLOBAL_PER_SECOND = 50
GLOBAL_MARGIN = 10
#: Before a bucket's first answer: one request at a time, and this long before asking again.
UNKNOWN_POLL = 0.05


@dataclass(frozen=True)
class RouteKey:
    """One route on one top-level resource. ``route`` is ``"PATCH /channels/{channel_id}/messages/{message_id}"``;
    ``resource`` the channel id, or a digest of webhook id + token; ``bot_token`` whether it counts globally."""

    route: str
    resource: str
    bot_token: bool
    #: The channel the request writes to, when known: a ``shared`` 429 pauses every write we make there.
    channel_id: int | None = None

    @classmethod
    def channel(cls, route: str, channel_id: int) -> RouteKey:
        return cls(route, f"channel:{channel_id}", True, channel_id)

    @classmethod
    def webhook(cls, route: str, webhook_id: int, token: str, channel_id: int | None = None) -> RouteKey:
        digest = hashlib.sha256(token.encode()).hexdigest()[:16]
        return cls(route, f"webhook:{webhook_id}:{digest}", False, channel_id)


@dataclass(frozen=True)
class Answer:
    """What a response says about limits: its status, headers, and a 429 body's ``retry_after``/``global``."""

    status: int
    headers: Mapping[str, str]
    retry_after: float | None = None
    is_global: bool = False

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def number(self, name: str) -> float | None:
        raw = self.header(name)
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            return None
        return value if value is not None and math.isfinite(value) and value >= 0 else None

    @property
    def scope(self) -> str | None:
        if self.is_global or (self.header("X-RateLimit-Global") or "").lower() == "true":
            return "global"
        return (self.header("X-RateLimit-Scope") or "").lower() or None


@dataclass
class Bucket:
    """One bucket on one resource, as far as we know."""

    limit: int | None = None
    remaining: int = 1
    reset_at: float | None = None
    #: Requests sent and not answered yet.
    in_flight: int = 0
    #: A shared-scope or unexpected 429 blocks the bucket until then, whatever its counts say.
    blocked_until: float = 0.0

    @property
    def known(self) -> bool:
        return self.limit is not None


@dataclass
class BucketBook:
    global_per_second: int = GLOBAL_PER_SECOND - GLOBAL_MARGIN
    _hash_of: dict[str, str] = field(default_factory=dict)
    _buckets: dict[tuple[str, str], Bucket] = field(default_factory=dict)
    _global_sent: deque[float] = field(default_factory=deque)
    _global_blocked_until: float = 0.0
    #: Channels a ``shared`` 429 paused: a limit on the resource that we cannot count, so nothing goes there.
    _channel_blocked_until: dict[int, float] = field(default_factory=dict)
    #: 429s seen, by scope (for logs, metrics and tests).
    refusals: dict[str, int] = field(default_factory=dict)

    def bucket(self, key: RouteKey) -> Bucket:
        name = self._hash_of.get(key.route, key.route)
        return self._buckets.setdefault((name, key.resource), Bucket())

    def reserve(self, key: RouteKey, now: float) -> float:
        """0 when a request on ``key`` may go now (a slot is taken), else the seconds to wait before asking again."""
        bucket = self.bucket(key)
        waits = [bucket.blocked_until - now]
        if key.channel_id is not None:
            waits.append(self._channel_blocked_until.get(key.channel_id, 0.0) - now)
        if key.bot_token:
            waits.append(self._global_blocked_until - now)
            while self._global_sent and self._global_sent[0] <= now - 1.0:
                self._global_sent.popleft()
            if len(self._global_sent) >= self.global_per_second:
                waits.append(self._global_sent[0] + 1.0 - now)
        if bucket.reset_at is not None and now >= bucket.reset_at and bucket.known:
            # A new window opens; requests still unanswered were counted in the old one (Discord counts them
            # when they arrive, and they were sent before the reset).
            bucket.remaining, bucket.reset_at, bucket.in_flight = bucket.limit or 1, None, 0
        if not bucket.known and bucket.in_flight:
            waits.append(UNKNOWN_POLL)  # before the first answer: one at a time
        elif bucket.remaining - bucket.in_flight <= 0:
            waits.append((bucket.reset_at - now) if bucket.reset_at is not None else UNKNOWN_POLL)
        wait = max(waits)
        if wait > 0:
            return wait
        bucket.in_flight += 1
        if key.bot_token:
            self._global_sent.append(now)
        return 0.0

    def release(self, key: RouteKey) -> None:
        """A reserved slot that was not used after all."""
        bucket = self.bucket(key)
        bucket.in_flight = max(0, bucket.in_flight - 1)

    def learn(self, key: RouteKey, answer: Answer, now: float) -> None:
        """Fold one answer to a request reserved on ``key`` into its bucket (and the route → bucket mapping)."""
        name = answer.header("X-RateLimit-Bucket")
        if name and self._hash_of.get(key.route) != name:
            old = self.bucket(key)
            self._hash_of[key.route] = name
            merged = self.bucket(key)
            merged.in_flight += old.in_flight
        bucket = self.bucket(key)
        bucket.in_flight = max(0, bucket.in_flight - 1)
        limit, remaining = answer.number("X-RateLimit-Limit"), answer.number("X-RateLimit-Remaining")
        reset_after = answer.number("X-RateLimit-Reset-After")
        if limit is not None and limit >= 1:
            bucket.limit = int(limit)
        if remaining is not None:
            bucket.remaining = int(remaining)
            if bucket.limit is None:
                bucket.limit = max(1, int(remaining) + 1)
        if reset_after is not None:
            bucket.reset_at = now + reset_after
        if answer.status != 429:
            return
        scope = answer.scope or "user"
        self.refusals[scope] = self.refusals.get(scope, 0) + 1
        wait = answer.retry_after if answer.retry_after is not None else answer.number("Retry-After")
        until = now + (wait if wait is not None else 1.0)
        if scope == "global":
            self._global_blocked_until = max(self._global_blocked_until, until)
            return
        if scope == "shared" and key.channel_id is not None:
            # A limit on the resource (the channel's messages) that others share: our other messages there would
            # meet it too, so they wait with this one instead of each being refused in turn.
            blocked = self._channel_blocked_until.get(key.channel_id, 0.0)
            self._channel_blocked_until[key.channel_id] = max(blocked, until)
        # "user": this bucket is spent; "shared": a limit we could not count. Either way, not before then.
        bucket.remaining = 0
        bucket.blocked_until = max(bucket.blocked_until, until)
        bucket.reset_at = max(bucket.reset_at or until, until)
