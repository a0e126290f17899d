"""The pure renderers of presets: what members wrote is escaped, the list stays inside Discord's limits."""

from __future__ import annotations

from discomfy.bot.render_presets import presets_embed, saved_words
from discomfy.jobs.presets import MAX_LISTED, Preset
from discomfy.jobs.state import GuildId, UserId


def preset(n: int, *, prompt: str = "a fox", owner: int = 10, shared: bool = False, **params: object) -> Preset:
    return Preset(n, GuildId(1), UserId(owner), f"p{n}", "txt2img", {"prompt": prompt, **params}, shared, 0.0)


def test_the_list_escapes_prompts_and_names_who_shared() -> None:
    embed = presets_embed(
        [preset(1, prompt="[x](https://evil.example) @everyone", shared=True)], [preset(2, owner=20)], most=25
    )
    yours, shared = (f["value"] for f in embed["fields"])
    assert "\\[x\\]\\(https://evil.example\\)" in yours and "@\u200beveryone" in yours and "shared" in yours
    assert "**p2**" in shared and "by <@20>" in shared


def test_a_long_list_is_capped_in_whole_lines_within_a_field() -> None:
    many = [preset(n, prompt="w" * 60) for n in range(MAX_LISTED + 1)]
    embed = presets_embed(many, [], most=100)
    value = embed["fields"][0]["value"]
    assert len(value) <= 1024 and value.splitlines()[-1].startswith("… and ")
    assert all(line.startswith("**p") for line in value.splitlines()[:-1])


def test_an_empty_list_says_none() -> None:
    embed = presets_embed([], [], most=3)
    assert [f["value"] for f in embed["fields"]] == ["none", "none"] and "keep 3" in embed["description"]


def test_the_saved_answer_says_whether_the_seed_was_kept() -> None:
    assert "a new seed each time" in saved_words(preset(1))
    assert "with its seed" in saved_words(preset(1, seed=5))
