"""The one retry policy of discomfy: every loop that tries something again waits by ``Backoff``.

How it works: ``Backoff(base, cap)`` is exponential backoff with full jitter — before retry n (from 0) it waits
a random time in ``[0, min(cap, base · 2ⁿ)]``. It comes in three shapes: ``delay(n)``, the ``delays()`` generator
for hand-written loops (a websocket reconnect that also watches a deadline or a cancel event), and ``wait()``,
a tenacity wait strategy. ``retry(call, ...)`` runs one async call on tenacity with it: which errors are worth
another try (a predicate; cancellation never is), at most ``attempts`` tries and/or no new try after
``give_up_after`` seconds, each retry logged with the caller's context, and the last error re-raised when it
gives up. ``sleep`` and ``clock`` are parameters so tests run without real time.

Never: compute a backoff anywhere else (tests/test_retry.py checks), retry ``CancelledError`` or other
``BaseException``s, or log an error's text unmasked (a webhook URL in an aiohttp error carries a token).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, stop_never
from tenacity.stop import stop_base
from tenacity.wait import wait_base

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
Retryable = Callable[[BaseException], bool]

#: Exponents above this no longer matter (base · 2⁶⁰ is beyond any cap) and would overflow a float.
_MAX_EXPONENT = 60
#: Runs of token characters this long are masked in logged error texts (webhook and interaction tokens are
#: 68+ characters; content-hash file names and prompt ids are 32–36, and stay readable).
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]{48,}")
_MAX_LOGGED = 300
#: The jitter's own generator (tests pass a seeded one to ``delay``/``delays``).
_RANDOM = random.Random()


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: retry n (from 0) waits a random time in ``[0, min(cap, base·2ⁿ)]``.

    ``jitter=False`` waits exactly the upper bound (for callers that need a predictable schedule, and tests).
    """

    base: float = 0.5
    cap: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"Backoff needs 0 < base <= cap, got base={self.base}, cap={self.cap}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry ``attempt`` (0 = the first retry)."""
        return min(self.cap, self.base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait before retry ``attempt`` (0 = the first retry)."""
        ceiling = self.ceiling(attempt)
        if not self.jitter:
            return ceiling
        return (rng or _RANDOM).uniform(0.0, ceiling)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits before retry 0, 1, 2, … — endless; a loop takes ``next()`` of it before each sleep and
        starts a new generator when things work again."""
        attempt = 0
        while True:
            yield self.delay(attempt, rng)
            attempt += 1

    def wait(self) -> wait_base:
        """This schedule as a tenacity wait strategy."""
        return _TenacityWait(self)


#: For calls with no schedule of their own: 0.5 s, 1 s, 2 s, … up to 30 s, jittered.
DEFAULT = Backoff()


class _TenacityWait(wait_base):
    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        # tenacity numbers attempts from 1; the wait after attempt 1 is our retry 0.
        return self.backoff.delay(retry_state.attempt_number - 1)


class _StopBeforeDeadline(stop_base):
    """Stop when the next try would start after ``deadline`` (on ``clock``)."""

    def __init__(self, deadline: float, clock: Clock) -> None:
        self.deadline = deadline
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock() + retry_state.upcoming_sleep > self.deadline


async def retry[T](
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    retryable: Retryable,
    attempts: int | None = None,
    give_up_after: float | None = None,
    backoff: Backoff = DEFAULT,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    level: int = logging.WARNING,
    logger: logging.Logger = log,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """``await call()``, again after each error ``retryable`` accepts, until it returns or the budget is spent.

    ``what`` names the call in the log ("GET /queue on http://host:8188"): no secrets in it. The budget is
    ``attempts`` tries and/or ``give_up_after`` seconds (no new try starts later than that after the first one
    began); at least one is required. When it is spent, or the error is not retryable, the last error is
    raised as it is. ``CancelledError`` and other non-``Exception`` errors are never retried. ``on_retry`` is
    called before each retry (a metrics counter).
    """
    if attempts is None and give_up_after is None:
        raise ValueError("retry needs attempts or give_up_after (or both)")
    if attempts is not None and attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    stop: stop_base = stop_never if attempts is None else stop_after_attempt(attempts)
    if give_up_after is not None:
        stop = stop | _StopBeforeDeadline(clock() + give_up_after, clock)

    def worth_retrying(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome is not None else None
        return isinstance(error, Exception) and retryable(error)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        logger.log(
            level,
            "%s failed (try %d%s): %s; retrying in %.2f s",
            what,
            state.attempt_number,
            "" if attempts is None else f" of {attempts}",
            describe(error),
            state.upcoming_sleep,
        )
        if on_retry is not None:
            on_retry()

    retrying = AsyncRetrying(
        retry=worth_retrying,
        stop=stop,
        wait=backoff.wait(),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


def describe(error: BaseException | None) -> str:
    """An error for a log line: its type and text, token-like strings masked, cut to a readable length."""
    if error is None:
        return "no error"
    text = _TOKEN_LIKE.sub("[redacted]", str(error))
    if len(text) > _MAX_LOGGED:
        text = text[:_MAX_LOGGED] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
