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

    def hit(self, now: float, limit: int, period: float) -> Decision:
        """Counts one request at monotonic time ``now``; a new window takes the current ``limit``/``period``."""
        if self.reset_at is None or now >= self.reset_at:
            self.reset_at = now + period
            self.count = 0
            self.limit = limit
        reset_after = max(self.reset_at - now, 0.0)
        if self.count >= self.limit:
            return Decision(False, self.limit, 0, reset_after)
        self.count += 1
        return Decision(True, self.limit, self.limit - self.count, reset_after)


class BucketTable:
    """All live windows, keyed by (bucket hash, major parameter)."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], FixedWindow] = {}

    def hit(self, bucket: str, major: str, now: float, limit: int, period: float) -> Decision:
        window = self._windows.setdefault((bucket, major), FixedWindow())
        return window.hit(now, limit, period)

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
) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of Discord's 429 for a refused request.

    Docs, "Exceeding A Rate Limit": the body has ``message``, ``retry_after`` (float seconds) and ``global``;
    the normal route headers are sent too, plus ``Retry-After`` and ``X-RateLimit-Scope`` (``user``,
    ``global`` or ``shared``), and ``X-RateLimit-Global: true`` for the global limit. ``Via`` is not in the docs:
    Discord's edge adds it, and nextcord treats a 429 without it as a Cloudflare ban.
    """
    retry_after = ceil_ms(decision.reset_after)
    headers = ratelimit_headers(Decision(False, decision.limit, 0, retry_after), bucket, wall_now)
    headers.update(
        {
            "Retry-After": retry_after_header(retry_after, time_scale),
            "X-RateLimit-Scope": "global" if is_global else scope,
            "Via": VIA_HEADER,
        }
    )
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
    return headers, body
