"""retry.py: the one backoff schedule and the one retry helper, on a fake clock (nothing here really sleeps).

And the rule that makes it the *one*: no other module of the package computes an exponential backoff.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import random
import re
from pathlib import Path

import pytest
from tenacity import AsyncRetrying, stop_after_attempt

from discomfy.errors import reference_id
from discomfy.retry import Backoff, describe, retry

PACKAGE = Path(__file__).resolve().parent.parent / "discomfy"


class FakeTime:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Flaky:
    """An async call that fails ``failures`` times (each error names its try), then returns "ok"."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError, *, takes: float = 0.0) -> None:
        self.failures, self.error, self.takes = failures, error, takes
        self.calls = 0
        self.time: FakeTime | None = None

    async def __call__(self) -> str:
        self.calls += 1
        if self.time is not None:
            self.time.now += self.takes
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "ok"


def any_error(exc: BaseException) -> bool:
    return True


# -- the schedule ------------------------------------------------------------------------------------------------


def test_schedule_doubles_from_base_up_to_the_cap() -> None:
    delays = Backoff(base=0.25, cap=5.0, jitter=False).delays()
    assert [next(delays) for _ in range(8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_full_jitter_stays_between_zero_and_the_ceiling() -> None:
    backoff = Backoff(base=0.1, cap=2.0)
    rng = random.Random(7)
    for attempt in range(40):
        assert 0.0 <= backoff.delay(attempt, rng) <= backoff.ceiling(attempt) <= 2.0
    # Jittered: not all the same, and reproducible with the same generator.
    first = [d for _, d in zip(range(10), backoff.delays(random.Random(1)), strict=False)]
    again = [d for _, d in zip(range(10), backoff.delays(random.Random(1)), strict=False)]
    assert first == again and len(set(first)) == 10


def test_a_very_late_attempt_neither_overflows_nor_passes_the_cap() -> None:
    assert Backoff(base=1.0, cap=60.0, jitter=False).delay(10_000) == 60.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_a_schedule_that_makes_no_sense_is_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base=base, cap=cap)


async def test_the_schedule_is_a_tenacity_wait_strategy() -> None:
    time = FakeTime()
    calls = Flaky(3)
    async for attempt in AsyncRetrying(
        wait=Backoff(base=0.5, cap=1.5, jitter=False).wait(), stop=stop_after_attempt(5), sleep=time.sleep
    ):
        with attempt:
            await calls()
    assert time.slept == [0.5, 1.0, 1.5]


# -- retry() -----------------------------------------------------------------------------------------------------


async def test_retry_returns_once_the_call_works() -> None:
    time, calls = FakeTime(), Flaky(2)
    result = await retry(
        calls,
        what="the call",
        retryable=lambda e: isinstance(e, ConnectionError),
        attempts=5,
        backoff=Backoff(base=0.1, cap=1.0, jitter=False),
        sleep=time.sleep,
        clock=time.clock,
    )
    assert (result, calls.calls, time.slept) == ("ok", 3, [0.1, 0.2])


async def test_an_error_the_predicate_refuses_is_raised_at_once() -> None:
    time, calls = FakeTime(), Flaky(5, ValueError)
    with pytest.raises(ValueError, match="failure 1"):
        await retry(calls, what="x", retryable=lambda e: isinstance(e, ConnectionError), attempts=5, sleep=time.sleep)
    assert (calls.calls, time.slept) == (1, [])


async def test_when_attempts_run_out_the_last_error_is_raised() -> None:
    time, calls = FakeTime(), Flaky(10)
    with pytest.raises(ConnectionError, match="failure 3"):
        await retry(calls, what="x", retryable=any_error, attempts=3, sleep=time.sleep, clock=time.clock)
    assert calls.calls == 3 and len(time.slept) == 2


async def test_no_try_starts_after_the_time_budget() -> None:
    time, calls = FakeTime(), Flaky(100, takes=0.5)
    calls.time = time
    with pytest.raises(ConnectionError) as raised:
        await retry(
            calls,
            what="x",
            retryable=any_error,
            give_up_after=10.0,
            backoff=Backoff(base=1.0, cap=2.0, jitter=False),
            sleep=time.sleep,
            clock=time.clock,
        )
    # Each try takes 0.5 s; they start at 0, 1.5, 4, 6.5 and 9; the next would start at 11.5 > 10.
    assert calls.calls == 5
    assert str(raised.value) == "failure 5"
    assert time.now == 9.5


async def test_attempts_and_time_budget_together_stop_at_whichever_comes_first() -> None:
    time, calls = FakeTime(), Flaky(100)
    with pytest.raises(ConnectionError):
        await retry(
            calls,
            what="x",
            retryable=any_error,
            attempts=3,
            give_up_after=1000.0,
            sleep=time.sleep,
            clock=time.clock,
        )
    assert calls.calls == 3


async def test_a_retry_needs_a_budget() -> None:
    with pytest.raises(ValueError, match="attempts or give_up_after"):
        await retry(Flaky(0), what="x", retryable=any_error)
    with pytest.raises(ValueError, match="at least 1"):
        await retry(Flaky(0), what="x", retryable=any_error, attempts=0)


async def test_cancellation_is_never_retried_even_by_a_predicate_that_takes_everything() -> None:
    time = FakeTime()
    calls = 0

    async def cancelled() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await retry(cancelled, what="x", retryable=any_error, attempts=5, sleep=time.sleep)
    assert (calls, time.slept) == (1, [])


async def test_cancelling_a_retry_while_it_waits_ends_it() -> None:
    waiting = asyncio.Event()

    async def forever(seconds: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(retry(Flaky(100), what="x", retryable=any_error, attempts=5, sleep=forever))
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_each_retry_is_logged_with_its_context_and_without_tokens(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    token = "A" * 70

    async def webhook() -> None:
        raise ConnectionError(f"POST https://discord.com/api/webhooks/1/{token}/messages failed")

    with caplog.at_level(logging.DEBUG, logger="discomfy.retry"), pytest.raises(ConnectionError):
        await retry(webhook, what="the final edit of job j1", retryable=any_error, attempts=3, sleep=time.sleep)
    records = [r for r in caplog.records if r.name == "discomfy.retry"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]  # a retry each, not the giving up
    assert "the final edit of job j1 failed (try 1 of 3): ConnectionError: POST" in records[0].getMessage()
    assert "retrying in" in records[0].getMessage()
    assert all(token not in r.getMessage() and "[redacted]" in r.getMessage() for r in records)


async def test_the_log_level_and_logger_are_the_callers(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    mine = logging.getLogger("discomfy.test.mine")
    with caplog.at_level(logging.DEBUG):
        await retry(
            Flaky(1), what="x", retryable=any_error, attempts=2, sleep=time.sleep, level=logging.DEBUG, logger=mine
        )
    assert [(r.name, r.levelno) for r in caplog.records if "x failed" in r.getMessage()] == [
        ("discomfy.test.mine", logging.DEBUG)
    ]


def test_describe_keeps_short_ids_masks_tokens_and_cuts_long_texts() -> None:
    readable = "GET /view?filename=0123456789abcdef0123456789abcdef.png failed"  # a content-hash name
    assert describe(OSError(readable)) == f"OSError: {readable}"
    assert describe(OSError("t=" + "x" * 60)) == "OSError: t=[redacted]"
    assert len(describe(OSError("a b " * 500))) < 320
    assert describe(TimeoutError()) == "TimeoutError"


def test_reference_ids_are_short_hex_and_differ() -> None:
    ids = {reference_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)


# -- the rule: one backoff formula -------------------------------------------------------------------------------

#: Modules that still compute their own backoff, to be moved onto retry.py (issue 9). The test fails when one
#: of them no longer does: then strike it from this list.
NOT_YET_CONVERTED: set[str] = set()


def _is_constant(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) or (isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant))


def _grows(node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return not _is_constant(node.right)  # b ** n
    if isinstance(node, ast.Call):
        return getattr(node.func, "id", None) == "pow" or getattr(node.func, "attr", None) in ("pow", "exp")
    if isinstance(node, ast.AugAssign):
        return isinstance(node.op, ast.Mult | ast.Pow)  # x *= k
    if isinstance(node, ast.Assign) and len(node.targets) == 1:  # x = min(x * k, cap)
        target = ast.unparse(node.targets[0])
        return any(
            isinstance(sub, ast.BinOp)
            and isinstance(sub.op, ast.Mult)
            and target in (ast.unparse(sub.left), ast.unparse(sub.right))
            for sub in ast.walk(node.value)
        )
    return False


def growth_formulas(source: str) -> list[str]:
    """Where ``source`` makes a number grow geometrically: ``b ** n`` with a variable ``n``, ``pow``/``exp``,
    ``x *= k``, or ``x = … x * k …`` (the doubling-delay loop). Squares and other constant powers are fine."""
    nodes = [n for n in ast.walk(ast.parse(source)) if _grows(n)]
    return [f"line {getattr(n, 'lineno', '?')}: {ast.unparse(n)}" for n in nodes]


def test_the_rule_sees_the_usual_backoff_formulas() -> None:
    assert growth_formulas("await asyncio.sleep(min(cap, 0.5 * 2 ** attempt))")
    assert growth_formulas("delay = first * factor**n")
    assert growth_formulas("delay = min(delay * 2, cap)")
    assert growth_formulas("self.delay *= 2")
    assert growth_formulas("d = math.pow(2, attempt)")
    assert not growth_formulas("area = side**2 + x ** -1\nhalf = size // 2 * 2\nbitrate = rate * 2")


def test_no_module_but_retry_py_computes_a_backoff() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name != "retry.py" and (found := growth_formulas(path.read_text(encoding="utf-8"))):
            offenders[name] = found
    assert {k: v for k, v in offenders.items() if k not in NOT_YET_CONVERTED} == {}, "use discomfy.retry.Backoff"
    assert offenders.keys() >= NOT_YET_CONVERTED, "converted: strike it from NOT_YET_CONVERTED"
