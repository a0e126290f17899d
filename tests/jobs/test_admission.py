from dataclasses import replace
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discomfy.config import LimitSettings, PermissionSettings
from discomfy.errors import PermissionDeniedError, RateLimitedError
from discomfy.jobs.admission import (
    Actor,
    Limits,
    RateLimiter,
    check_job_place,
    check_origin,
    discord_time,
    job_place_refusal,
)
from discomfy.jobs.records import ActiveCounts
from discomfy.jobs.state import ChannelId, GuildId, Job, MessageId, UserId
from tests.jobs.factories import make_job

T0 = 1_700_000_000.0
BYPASS, ARTIST = 900, 901


GUILD, OTHER_GUILD = 7000, 7001


def actor(
    user: int = 1,
    *,
    channel: int = 50,
    roles: tuple[int, ...] = (),
    moderator: bool = False,
    guild: int | None = GUILD,
) -> Actor:
    return Actor(
        UserId(user),
        ChannelId(channel),
        frozenset(roles),
        can_manage_messages=moderator,
        guild_id=None if guild is None else GuildId(guild),
    )


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


# -- a job's own place: its guild, or its DM --


def guild_job() -> Job:
    return make_job(guild_id=GuildId(GUILD), message_id=MessageId(800))


def dm_job(channel: int) -> Job:
    return replace(make_job(), channel_id=ChannelId(channel))


def test_a_job_is_acted_on_in_any_channel_of_its_own_guild() -> None:
    job = guild_job()
    for channel in (500, 501):
        limits().check_place(actor(channel=channel), job)
        assert job_place_refusal(actor(channel=channel), job) is None


def test_a_job_is_refused_from_another_guild_even_to_its_owner_and_a_moderator_there() -> None:
    job = guild_job()
    for who in (actor(10, guild=OTHER_GUILD), actor(2, guild=OTHER_GUILD, moderator=True)):
        with pytest.raises(PermissionDeniedError, match="another server"):
            limits().check_place(who, job)


def test_a_guild_job_is_refused_in_a_dm_even_to_its_owner() -> None:
    with pytest.raises(PermissionDeniedError, match="not in direct messages"):
        check_job_place(actor(10, channel=999, guild=None), guild_job())


def test_a_dm_job_is_acted_on_only_in_that_dm() -> None:
    job = dm_job(999)  # no guild: made in the DM 999
    check_job_place(actor(10, channel=999, guild=None), job)
    for who in (actor(10, channel=998, guild=None), actor(10, channel=999, guild=GUILD)):
        with pytest.raises(PermissionDeniedError, match="direct message"):
            check_job_place(who, job)


def test_the_allow_lists_come_before_the_jobs_place() -> None:
    with pytest.raises(PermissionDeniedError, match="this channel"):
        limits(allowed_channels=(60,)).check_place(actor(guild=OTHER_GUILD), guild_job())


def test_admit_with_a_job_checks_its_place_and_a_refusal_costs_nothing() -> None:
    gate = limits(per_minute=1)
    with pytest.raises(PermissionDeniedError):
        gate.admit(actor(guild=OTHER_GUILD), T0, job=guild_job())
    gate.admit(actor(), T0, job=guild_job())


def test_allow_lists_refuse_a_dm_whatever_the_job() -> None:
    dm = actor(channel=999, guild=None)
    with pytest.raises(PermissionDeniedError):
        limits(allowed_channels=(60,)).check_place(dm)
    with pytest.raises(PermissionDeniedError):
        limits(allowed_roles=(ARTIST,)).check_place(dm)


@given(
    job_guild=st.one_of(st.none(), st.integers(1, 5)),
    actor_guild=st.one_of(st.none(), st.integers(1, 5)),
    job_channel=st.integers(1, 3),
    actor_channel=st.integers(1, 3),
)
@settings(max_examples=200)
def test_a_job_is_allowed_exactly_in_its_guild_or_its_dm(
    job_guild: int | None, actor_guild: int | None, job_channel: int, actor_channel: int
) -> None:
    job = replace(dm_job(job_channel), guild_id=None if job_guild is None else GuildId(job_guild))
    who = actor(channel=actor_channel, guild=actor_guild)
    same_place = (
        job_guild == actor_guild if job_guild is not None else actor_guild is None and job_channel == actor_channel
    )
    assert (job_place_refusal(who, job) is None) == same_place


# -- a press's origin: the job's own message --


def test_a_press_on_the_jobs_own_message_or_a_copy_of_ours_is_allowed() -> None:
    job = guild_job()
    check_origin(job, 800, carries_button=False)
    check_origin(job, 801, carries_button=True)


@pytest.mark.parametrize("message_id", [None, 801, 0])
def test_a_press_on_any_other_message_is_refused(message_id: int | None) -> None:
    with pytest.raises(PermissionDeniedError, match="doesn't belong to this message"):
        check_origin(guild_job(), message_id, carries_button=False)


def test_a_press_without_a_message_is_refused_even_if_the_job_has_none_yet() -> None:
    with pytest.raises(PermissionDeniedError):
        check_origin(make_job(guild_id=GuildId(GUILD)), None, carries_button=False)
