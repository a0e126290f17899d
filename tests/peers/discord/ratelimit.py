"""Discord's per-route rate limit buckets and the headers that describe them, as pure code.

A bucket is a fixed window: it opens on the first request, lets ``limit`` requests through, and resets
``period`` seconds after it opened (Discord's ``X-RateLimit-Reset``). Every answer carries the bucket's state in
``X-RateLimit-*`` headers; a refused request gets Discord's 429 body and headers, including ``Via`` (without it
nextcord takes a 429 for a Cloudflare ban) and ``Retry-After``. Callers pass the clock in; nothing here sleeps
or does I/O.

The rules come from Discord's docs, Topics → Rate Limits ("Header Format", "Exceeding A Rate Limit"). Times in
headers and bodies are rounded *up* to the millisecond, so a client that waits exactly what it is told (nextcord
with ``assume_unsync_clock=False`` sleeps until ``X-RateLimit-Reset``) never comes back before the window opens.
Under a time scale (``EmulatorConfig.time_scale``) the windows are already scaled when they reach this module;
only ``Retry-After``'s whole seconds need to know the scale (see :func:`retry_after_header`).

The global limit and the optional shared limit are fixed windows too: :meth:`BucketTable.admit` checks a request
against all the limits it is subject to (``buckets.py`` says which) and counts it against all or none.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

#: Discord's edge answers through Google's load balancer; nextcord checks that this header exists on a 429.
VIA_HEADER = "1.1 google"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float


class FixedWindow:
    """One bucket instance (one route bucket and one major parameter, e.g. one channel)."""

    def __init__(self) -> None:
        self.reset_at: float | None = None
        self.count = 0
        self.limit = 1

    def state(self, now: float, limit: int, period: float) -> Decision:
        """What a request at ``now`` would find, without counting it (a window that has run out counts as new)."""
        if self.reset_at is None or now >= self.reset_at:
            return Decision(limit > 0, limit, limit, period)
        reset_after = max(self.reset_at - now, 0.0)
        remaining = max(self.limit - self.count, 0)
        return Decision(remaining > 0, self.limit, remaining, reset_after)

    def take(self, now: float, limit: int, period: float) -> Decision:
        """Counts one request (a new window opens now and takes the current ``limit``/``period``)."""
        if self.reset_at is None or now >= self.reset_at:
            self.reset_at = now + period
            self.count = 0
            self.limit = limit
        self.count += 1
        return Decision(True, self.limit, max(self.limit - self.count, 0), max(self.reset_at - now, 0.0))

    def hit(self, now: float, limit: int, period: float) -> Decision:
        """Counts one request at monotonic time ``now`` if the window has room; else the refusal."""
        decision = self.state(now, limit, period)
        return self.take(now, limit, period) if decision.allowed else decision


@dataclass(frozen=True)
class Limit:
    """A limit on one key: ``bucket`` is the hash ``X-RateLimit-Bucket`` names, ``resource`` what makes the
    instance unique (a channel, a webhook id + token, the bot); ``period`` is in real seconds (already scaled)."""

    bucket: str
    resource: str
    limit: int
    period: float


@dataclass(frozen=True)
class Verdict:
    """The outcome of :meth:`BucketTable.admit`. ``route`` is the route bucket as the headers report it (after
    counting the request if it was let through); ``scope`` is ``None`` for a request let through, else the
    limit that refused it (``user``, ``global``, ``shared``), to be waited out for ``retry_after`` seconds."""

    route: Decision
    scope: str | None = None
    retry_after: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.scope is None


class BucketTable:
    """All live windows, keyed by (bucket hash, resource)."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], FixedWindow] = {}

    def _window(self, limit: Limit) -> FixedWindow:
        return self._windows.setdefault((limit.bucket, limit.resource), FixedWindow())

    def hit(self, bucket: str, major: str, now: float, limit: int, period: float) -> Decision:
        return self._window(Limit(bucket, major, limit, period)).hit(now, limit, period)

    def state(self, limit: Limit, now: float) -> Decision:
        return self._window(limit).state(now, limit.limit, limit.period)

    def admit(self, route: Limit, now: float, *, global_limit: Limit | None, shared: Limit | None) -> Verdict:
        """Checks the global limit, then the route bucket, then the shared limit; a request refused by any of
        them counts against none (so a refusal never shortens what the headers promise)."""
        route_state = self.state(route, now)
        if global_limit is not None and not (found := self.state(global_limit, now)).allowed:
            return Verdict(route_state, "global", found.reset_after)
        if not route_state.allowed:
            return Verdict(route_state, "user", route_state.reset_after)
        if shared is not None and not (found := self.state(shared, now)).allowed:
            return Verdict(route_state, "shared", found.reset_after)
        for extra in (global_limit, shared):
            if extra is not None:
                self._window(extra).take(now, extra.limit, extra.period)
        return Verdict(self._window(route).take(now, route.limit, route.period))

    def clear(self) -> None:
        self._windows.clear()


def bucket_hash(name: str) -> str:
    """A stable, opaque bucket id like Discord's (32 hex digits)."""
    return hashlib.sha1(name.encode()).hexdigest()[:32]


def ceil_ms(seconds: float) -> float:
    """``seconds`` rounded up to the millisecond (the ``round`` absorbs float noise: 1.2 s stays 1.2 s)."""
    return math.ceil(round(seconds * 1000, 6)) / 1000


def retry_after_header(retry_after: float, time_scale: float = 1.0) -> str:
    """Discord's ``Retry-After`` header: whole seconds, rounded up, at least 1 (the docs' example answers
    ``retry_after: 64.57`` with ``Retry-After: 65``). Under a time scale they are whole *Discord* seconds,
    scaled like everything else (at 0.1, a 0.35 s wait says ``"0.4"``): never less than ``retry_after``, and
    more by less than one scaled second, as on Discord."""
    whole = max(1, math.ceil(round(retry_after / time_scale, 6)))
    return f"{whole * time_scale:g}"


def ratelimit_headers(decision: Decision, bucket: str, wall_now: float) -> dict[str, str]:
    """The ``X-RateLimit-*`` headers Discord puts on every answer of a rate limited route (429s included).

    ``X-RateLimit-Reset`` is epoch seconds at which the window resets, ``X-RateLimit-Reset-After`` the seconds
    left until then ("can have decimals to match previous millisecond ratelimit precision"): both describe the
    same instant, ``wall_now + reset_after``.
    """
    reset_after = ceil_ms(decision.reset_after)
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": f"{ceil_ms(wall_now + reset_after):.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket,
    }


def too_many_requests(
    decision: Decision,
    bucket: str,
    wall_now: float,
    *,
    scope: str = "user",
    is_global: bool = False,
    time_scale: float = 1.0,
    retry_after: float | None = None,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of Discord's 429 for a refused request.

    Docs, "Exceeding A Rate Limit": the body has ``message``, ``retry_after`` (float seconds) and ``global``;
    "normal route rate-limiting headers will also be sent", plus ``Retry-After`` and ``X-RateLimit-Scope``
    (``user``, ``global`` or ``shared``), and ``X-RateLimit-Global: true`` for the global limit. ``Via`` is not in
    the docs: Discord's edge adds it, and nextcord treats a 429 without it as a Cloudflare ban.

    Without ``retry_after``, ``decision`` is the route bucket that refused: the headers say it is empty and
    resets after ``decision.reset_after``, which is also the ``retry_after``. With ``retry_after`` (another limit
    refused: the global one, or a shared one), ``decision`` is the route bucket's own state, reported as it is:
    the docs' example of a ``shared`` 429 says ``X-RateLimit-Remaining: 9`` of 10 with a ``retry_after`` far
    beyond ``X-RateLimit-Reset-After``. A shared refusal says "The resource is being rate limited.", as there.
    """
    if retry_after is None:
        retry_after = ceil_ms(decision.reset_after)
        decision = Decision(False, decision.limit, 0, retry_after)
    else:
        retry_after = ceil_ms(retry_after)
    scope = "global" if is_global else scope
    headers = ratelimit_headers(decision, bucket, wall_now)
    headers.update(
        {
            "Retry-After": retry_after_header(retry_after, time_scale),
            "X-RateLimit-Scope": scope,
            "Via": VIA_HEADER,
        }
    )
    if scope == "global":
        headers["X-RateLimit-Global"] = "true"
    message = "The resource is being rate limited." if scope == "shared" else "You are being rate limited."
    body = {"message": message, "retry_after": retry_after, "global": scope == "global"}
    return headers, body
