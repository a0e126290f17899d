"""The bucket book: Discord's limits learnt from its answers, keyed as Discord keys them (pure, no clock)."""

from __future__ import annotations

from discomfy.bot.ratelimits import Answer, BucketBook, RouteKey

CHANNEL_EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
CHANNEL_POST = "POST /channels/{channel_id}/messages"
WEBHOOK_EDIT = "PATCH /webhooks/{application_id}/{token}/messages/@original"


def headers(limit: int, remaining: int, reset_after: float, bucket: str = "abc") -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket,
    }


def test_before_the_first_answer_one_request_at_a_time() -> None:
    book, key = BucketBook(), RouteKey.channel(CHANNEL_EDIT, 1)
    assert book.reserve(key, 0.0) == 0
    assert book.reserve(key, 0.0) > 0  # the first is still in flight: we know nothing yet
    book.learn(key, Answer(200, headers(5, 4, 5.0)), 0.1)
    assert [book.reserve(key, 0.1) for _ in range(4)] == [0, 0, 0, 0]
    assert book.reserve(key, 0.2) > 4.5  # spent until the window resets


def test_the_window_resets_when_discord_said_it_would() -> None:
    book, key = BucketBook(), RouteKey.channel(CHANNEL_EDIT, 1)
    book.reserve(key, 0.0)
    book.learn(key, Answer(200, headers(2, 0, 2.0)), 0.0)
    assert abs(book.reserve(key, 0.5) - 1.5) < 1e-9
    assert book.reserve(key, 2.0) == 0 and book.reserve(key, 2.0) == 0


def test_each_interaction_token_has_its_own_bucket_but_a_channel_is_shared() -> None:
    book = BucketBook()
    a, b = RouteKey.webhook(WEBHOOK_EDIT, 9, "token-a"), RouteKey.webhook(WEBHOOK_EDIT, 9, "token-b")
    for key in (a, b):
        book.reserve(key, 0.0)
        book.learn(key, Answer(200, headers(5, 0, 5.0, "hook")), 0.0)
    # Both spent, separately; a third token is untouched.
    assert book.reserve(a, 1.0) > 0 and book.reserve(b, 1.0) > 0
    assert book.reserve(RouteKey.webhook(WEBHOOK_EDIT, 9, "token-c"), 1.0) == 0
    m1, m2 = RouteKey.channel(CHANNEL_EDIT, 5), RouteKey.channel(CHANNEL_EDIT, 5)
    book.reserve(m1, 0.0)
    book.learn(m1, Answer(200, headers(5, 0, 5.0, "edit")), 0.0)
    assert book.reserve(m2, 1.0) > 0  # another message in the same channel: the same bucket
    assert book.reserve(RouteKey.channel(CHANNEL_EDIT, 6), 1.0) == 0  # another channel: not


def test_routes_discord_puts_in_one_bucket_share_its_count() -> None:
    book = BucketBook()
    edit, post = RouteKey.channel(CHANNEL_EDIT, 5), RouteKey.channel(CHANNEL_POST, 5)
    book.reserve(edit, 0.0)
    book.learn(edit, Answer(200, headers(5, 0, 5.0, "same")), 0.0)
    book.reserve(post, 0.0)
    book.learn(post, Answer(200, headers(5, 0, 5.0, "same")), 0.0)
    assert book.reserve(post, 1.0) > 0 and book.reserve(edit, 1.0) > 0


def test_the_tokens_are_not_in_a_keys_repr() -> None:
    key = RouteKey.webhook(WEBHOOK_EDIT, 9, "secret-interaction-token")
    assert "secret-interaction-token" not in repr(key)


def test_a_user_429_blocks_that_bucket_for_retry_after() -> None:
    book, key = BucketBook(), RouteKey.channel(CHANNEL_EDIT, 1)
    book.reserve(key, 0.0)
    book.learn(key, Answer(200, headers(5, 4, 5.0)), 0.0)
    book.reserve(key, 0.0)
    book.learn(key, Answer(429, {**headers(5, 0, 2.5), "X-RateLimit-Scope": "user"}, retry_after=2.5), 0.1)
    assert abs(book.reserve(key, 0.1) - 2.5) < 1e-9
    assert book.refusals == {"user": 1}


def test_a_shared_429_we_could_not_count_is_obeyed_even_when_remaining_says_go() -> None:
    book, key = BucketBook(), RouteKey.channel(CHANNEL_EDIT, 1)
    book.reserve(key, 0.0)
    shared = {**headers(5, 3, 0.5), "X-RateLimit-Scope": "shared"}
    book.learn(key, Answer(429, shared, retry_after=4.0), 0.0)
    assert abs(book.reserve(key, 1.0) - 3.0) < 1e-9
    assert book.reserve(key, 4.0) == 0
    assert book.refusals == {"shared": 1}


def test_a_global_429_stops_bot_token_requests_but_not_interaction_routes() -> None:
    book = BucketBook()
    channel, hook = RouteKey.channel(CHANNEL_EDIT, 1), RouteKey.webhook(WEBHOOK_EDIT, 9, "t")
    book.reserve(channel, 0.0)
    book.learn(channel, Answer(429, {"X-RateLimit-Global": "true"}, retry_after=1.0, is_global=True), 0.0)
    assert book.reserve(RouteKey.channel(CHANNEL_EDIT, 2), 0.5) > 0
    assert book.reserve(hook, 0.5) == 0  # interaction routes are not bound to the global limit


def test_bot_token_requests_stay_under_the_global_limit() -> None:
    book = BucketBook(global_per_second=3)
    keys = [RouteKey.channel(CHANNEL_EDIT, n) for n in range(5)]
    assert [book.reserve(k, 0.0) == 0 for k in keys] == [True, True, True, False, False]
    assert book.reserve(RouteKey.webhook(WEBHOOK_EDIT, 9, "t"), 0.0) == 0
    assert book.reserve(keys[3], 1.0) == 0


def test_a_slot_not_used_is_given_back() -> None:
    book, key = BucketBook(), RouteKey.channel(CHANNEL_EDIT, 1)
    book.reserve(key, 0.0)
    book.learn(key, Answer(200, headers(2, 1, 5.0)), 0.0)
    assert book.reserve(key, 0.0) == 0 and book.reserve(key, 0.0) > 0
    book.release(key)
    assert book.reserve(key, 0.0) == 0


def test_garbled_headers_are_ignored() -> None:
    book, key = BucketBook(), RouteKey.channel(CHANNEL_EDIT, 1)
    book.reserve(key, 0.0)
    book.learn(key, Answer(200, {"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": "-3"}), 0.0)
    assert book.reserve(key, 0.0) == 0 and book.reserve(key, 0.0) > 0  # still nothing known: one at a time


def test_a_shared_429_pauses_every_write_to_that_channel_but_not_others() -> None:
    book = BucketBook()
    mine = RouteKey.webhook(WEBHOOK_EDIT, 9, "token-a", channel_id=5)
    book.reserve(mine, 0.0)
    book.learn(mine, Answer(429, {"X-RateLimit-Scope": "shared"}, retry_after=2.0), 0.0)
    assert book.reserve(RouteKey.webhook(WEBHOOK_EDIT, 9, "token-b", channel_id=5), 1.0) > 0
    assert book.reserve(RouteKey.channel(CHANNEL_EDIT, 5), 1.0) > 0
    assert book.reserve(RouteKey.channel(CHANNEL_EDIT, 6), 1.0) == 0
    assert book.reserve(RouteKey.webhook(WEBHOOK_EDIT, 9, "token-b", channel_id=5), 2.0) == 0
