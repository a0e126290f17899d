"""Discord's per-route rate limit buckets and the headers that describe them, as pure code.

A bucket is a fixed window: it opens on the first request, lets ``limit`` requests through, and resets
``period`` seconds after it opened (Discord's ``X-RateLimit-Reset``). Every answer carries the bucket's state in
``X-RateLimit-*`` headers; a refused request gets Discord's 429 body and headers, including ``Via`` (without it
nextcord takes a 429 for a Cloudflare ban) and ``Retry-After``. Callers pass the clock in; nothing here sleeps
or does I/O.
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


def ratelimit_headers(decision: Decision, bucket: str, wall_now: float) -> dict[str, str]:
    """The ``X-RateLimit-*`` headers Discord puts on every answer of a rate limited route."""
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": f"{wall_now + decision.reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{decision.reset_after:.3f}",
        "X-RateLimit-Bucket": bucket,
    }


def too_many_requests(
    decision: Decision, bucket: str, wall_now: float, *, scope: str = "user", is_global: bool = False
) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of Discord's 429 for a refused request."""
    retry_after = round(decision.reset_after, 3)
    headers = ratelimit_headers(Decision(False, decision.limit, 0, retry_after), bucket, wall_now)
    headers.update(
        {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Scope": "global" if is_global else scope,
            "Via": VIA_HEADER,
        }
    )
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
    return headers, body
