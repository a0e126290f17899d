"""The bot token never shows: not in a report, a repr, an error's text or a log line."""

import logging
from pathlib import Path

import pytest

from discomfy.config import DiscordSettings, Settings, load_settings, setting_fields
from discomfy.errors import ConfigError
from discomfy.logs import SecretFilter

SECRET = "MTIz.secret-token-that-must-never-show.xyz"


def report_for(tmp_path: Path, text: str, env: dict[str, str]) -> ConfigError:
    file = tmp_path / "discomfy.toml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(file, env)
    return caught.value


def shown(error: ConfigError) -> str:
    return "\n".join([error.report(), str(error), repr(error), *error.problems])


def test_a_token_of_the_wrong_type_is_not_repeated(tmp_path: Path) -> None:
    error = report_for(tmp_path, f'[discord]\ntoken = ["{SECRET}"]\n', {})
    assert "discord.token must be a string in quotes" in error.report()
    assert SECRET not in shown(error)


def test_a_token_from_the_environment_stays_out_of_other_problems(tmp_path: Path) -> None:
    error = report_for(tmp_path, 'log_level = "LOUD"\n[discord]\napi_base = "nope"\n', {"DISCORD_TOKEN": SECRET})
    assert "log_level 'LOUD'" in error.report()
    assert SECRET not in shown(error)


def test_a_token_in_a_broken_file_is_not_quoted(tmp_path: Path) -> None:
    error = report_for(tmp_path, f'[discord]\ntoken = "{SECRET}\n', {})
    assert "is not valid TOML" in error.report()
    assert SECRET not in shown(error)


def test_the_token_is_left_out_of_every_repr(tmp_path: Path) -> None:
    file = tmp_path / "discomfy.toml"
    file.write_text(f'[discord]\ntoken = " {SECRET} "\n', encoding="utf-8")
    settings = load_settings(file, {})
    assert settings.discord.token == SECRET
    for text in (repr(settings), str(settings), repr(settings.discord), repr(DiscordSettings(token=SECRET))):
        assert SECRET not in text


def test_only_the_token_is_secret() -> None:
    hidden = [name for name, f, _ in setting_fields(Settings) if not f.repr]
    assert hidden == ["discord.token"]


def test_log_lines_carrying_the_token_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("discomfy.test_config_secrets")
    log.addFilter(SecretFilter([SECRET]))
    try:
        with caplog.at_level(logging.INFO, logger=log.name):
            log.info("settings: %s token=%s", Settings(discord=DiscordSettings(token=SECRET)), SECRET)
    finally:
        log.filters.clear()
    assert caplog.records and SECRET not in caplog.text
