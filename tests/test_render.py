from discomfy.bot.render import ServerStatus, format_duration, help_embed, status_embed, truncate
from discomfy.config import LimitSettings


def test_truncate_keeps_short_text() -> None:
    assert truncate("hello", 10) == "hello"


def test_truncate_marks_the_cut_and_respects_the_limit() -> None:
    cut = truncate("x" * 5000, 4096)
    assert len(cut) == 4096
    assert cut.endswith("…")


def test_format_duration_picks_two_units() -> None:
    assert format_duration(5) == "5s"
    assert format_duration(125) == "2m 5s"
    assert format_duration(3 * 3600 + 120) == "3h 2m"
    assert format_duration(2 * 86400 + 3600) == "2d 1h"


def test_status_embed_counts_servers_up() -> None:
    embed = status_embed(
        [ServerStatus("http://a", True, "0.3.40", 2), ServerStatus("http://b", False, error="not reachable")],
        uptime_seconds=61,
    )
    assert "**1/2** ComfyUI servers up" in embed["description"]
    assert "ComfyUI 0.3.40 · queue 2" in embed["fields"][0]["value"]
    assert "not reachable" in embed["fields"][1]["value"]
    assert "http://b" not in str(embed)  # internal addresses stay out of Discord


def test_help_embed_states_the_user_limits() -> None:
    embed = help_embed(LimitSettings(commands_per_minute=4, max_jobs_per_user=2))
    limits = embed["fields"][2]["value"]
    assert "4 commands or buttons per minute" in limits
    assert "2 jobs" in limits
