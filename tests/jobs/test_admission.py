from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discomfy.config import LimitSettings, PermissionSettings
from discomfy.errors import PermissionDeniedError, RateLimitedError
from discomfy.jobs.admission import Actor, Limits, RateLimiter, discord_time
from discomfy.jobs.records import ActiveCounts
from discomfy.jobs.state import ChannelId, UserId

T0 = 1_700_000_000.0
BYPASS, ARTIST = 900, 901


def actor(user: int = 1, *, channel: int = 50, roles: tuple[int, ...] = (), moderator: bool = False) -> Actor:
    return Actor(UserId(user), ChannelId(channel), frozenset(roles), can_manage_messages=moderator)


def limits(per_minute: int = 3, per_user: int = 2, total: int = 5, **permissions: tuple[int, ...]) -> Limits:
    settings = LimitSettings(commands_per_minute=per_minute, max_jobs_per_user=per_user, max_jobs_total=total)
    return Limits(settings, PermissionSettings(bypass_roles=(BYPASS,), **permissions))


def counts(**per_user: int) -> ActiveCounts:
    mapping = {UserId(int(k[1:])): v for k, v in per_user.items()}
    return ActiveCounts(MappingProxyType(mapping), sum(mapping.values()))


# -- rate limit --


def test_actions_up_to_the_limit_are_allowed() -> None:
    gate = limits(per_minute=3)
    for i in range(3):
        gate.admit(actor(), T0 + i)


def test_one_more_within_the_minute_is_refused_until_the_oldest_leaves_the_window() -> None:
    gate = limits(per_minute=3)
    for i in range(3):
        gate.admit(actor(), T0 + i)
    with pytest.raises(RateLimitedError) as caught:
        gate.admit(actor(), T0 + 10)
    assert caught.value.retry_at == T0 + 60


def test_the_refusal_says_the_limit_and_when_as_a_discord_timestamp() -> None:
    gate = limits(per_minute=1)
    gate.admit(actor(), T0 + 0.5)
    with pytest.raises(RateLimitedError) as caught:
        gate.admit(actor(), T0 + 1)
    assert caught.value.user_message == (
        f"You're going a bit fast: 1 command or button a minute at most. Try again <t:{int(T0) + 61}:R>."
    )


def test_the_window_slides() -> None:
    gate = limits(per_minute=2)
    gate.admit(actor(), T0)
    gate.admit(actor(), T0 + 30)
    gate.admit(actor(), T0 + 60)  # the first one has left the window
    with pytest.raises(RateLimitedError):
        gate.admit(actor(), T0 + 61)


def test_refused_attempts_do_not_lengthen_the_wait() -> None:
    limiter = RateLimiter(1)
    assert limiter.hit(1, T0) is None
    assert [limiter.hit(1, T0 + s) for s in (1, 20, 59)] == [T0 + 60] * 3
    assert limiter.hit(1, T0 + 60) is None


def test_users_are_limited_separately() -> None:
    gate = limits(per_minute=1)
    gate.admit(actor(1), T0)
    gate.admit(actor(2), T0)


def test_a_bypass_role_is_not_rate_limited() -> None:
    gate = limits(per_minute=1)
    for i in range(5):
        gate.admit(actor(roles=(BYPASS,)), T0 + i)


def test_idle_users_are_forgotten() -> None:
    limiter = RateLimiter(2)
    for user in range(10):
        limiter.hit(user, T0)
    limiter.forget_idle(T0 + 61)
    assert len(limiter) == 0


@settings(deadline=None, database=None)
@given(st.lists(st.floats(0, 600, allow_nan=False), max_size=80), st.integers(1, 6))
def test_no_window_ever_holds_more_than_the_limit(offsets: list[float], limit: int) -> None:
    limiter = RateLimiter(limit)
    allowed = [t for t in sorted(offsets) if limiter.hit(7, T0 + t) is None]
    for i, start in enumerate(allowed):
        assert sum(1 for t in allowed[i:] if t < start + 60) <= limit


def test_discord_time_rounds_up() -> None:
    assert discord_time(100.2) == "<t:101:R>"


# -- caps --


def test_a_job_under_the_caps_is_admitted() -> None:
    limits(per_user=2, total=5).admit_job(actor(1), counts(u1=1, u2=2), T0)


def test_the_per_user_cap_refuses_and_says_when() -> None:
    with pytest.raises(RateLimitedError) as caught:
        limits(per_user=2).admit_job(actor(1), counts(u1=2), T0, free_at=T0 + 42)
    assert "You already have 2 jobs waiting or running" in caught.value.user_message
    assert f"<t:{int(T0) + 42}:R>" in caught.value.user_message
    assert caught.value.retry_at == T0 + 42


def test_a_cap_refusal_without_an_estimate_says_when_a_job_finishes() -> None:
    with pytest.raises(RateLimitedError) as caught:
        limits(per_user=1).admit_job(actor(1), counts(u1=1), T0)
    assert "when one of them finishes;" in caught.value.user_message
    assert caught.value.retry_at == T0


def test_the_global_cap_refuses_everyone() -> None:
    with pytest.raises(RateLimitedError, match="The studio is full"):
        limits(per_user=3, total=5).admit_job(actor(1), counts(u2=3, u3=2), T0)


def test_a_bypass_role_is_not_capped() -> None:
    limits(per_user=1, total=1).admit_job(actor(1, roles=(BYPASS,)), counts(u1=4), T0)


# -- places and roles --


def test_empty_allow_lists_allow_every_channel_and_role() -> None:
    limits().check_place(actor(channel=12345))


def test_a_channel_outside_the_allow_list_is_refused_with_where_to_go() -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        limits(allowed_channels=(60, 61)).check_place(actor(channel=50))
    assert caught.value.user_message == "I don't take requests in this channel. Try <#60> or <#61>."


def test_the_channel_allow_list_applies_to_bypass_roles_too() -> None:
    with pytest.raises(PermissionDeniedError):
        limits(allowed_channels=(60,)).check_place(actor(channel=50, roles=(BYPASS,)))


def test_a_member_without_an_allowed_role_is_refused() -> None:
    with pytest.raises(PermissionDeniedError, match="You need the <@&901> role"):
        limits(allowed_roles=(ARTIST,)).check_place(actor(roles=(5,)))


def test_an_allowed_role_or_a_bypass_role_passes_the_role_list() -> None:
    gate = limits(allowed_roles=(ARTIST,))
    gate.check_place(actor(roles=(ARTIST,)))
    gate.check_place(actor(roles=(BYPASS,)))


def test_a_refused_place_does_not_use_up_the_rate_limit() -> None:
    gate = limits(per_minute=1, allowed_channels=(60,))
    with pytest.raises(PermissionDeniedError):
        gate.admit(actor(channel=50), T0)
    gate.admit(actor(channel=60), T0)


def test_long_allow_lists_are_shortened() -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        limits(allowed_channels=tuple(range(60, 70))).check_place(actor(channel=50))
    assert caught.value.user_message.count("<#") == 5


# -- cancel and delete --


def test_the_owner_may_cancel() -> None:
    limits().check_owner_or_moderator(actor(1), owner_id=1)


def test_a_member_with_manage_messages_may_cancel_anyones_job() -> None:
    limits().check_owner_or_moderator(actor(2, moderator=True), owner_id=1)


def test_anyone_else_is_refused_with_who_may() -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        limits().check_owner_or_moderator(actor(2, roles=(BYPASS,)), owner_id=1, doing="delete this result")
    assert caught.value.user_message == (
        "Only the person who started this job, or someone who can manage messages here, can delete this result."
    )


def test_a_look_without_counting_refuses_when_full_but_uses_nothing() -> None:
    limiter = RateLimiter(2, window=60)
    assert limiter.hit(1, 0.0, count=False) is None
    assert limiter.hit(1, 1.0) is None
    assert limiter.hit(1, 2.0) is None
    assert limiter.hit(1, 3.0, count=False) == 61.0  # the first counted press leaves the window at 61
