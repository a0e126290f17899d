from pathlib import Path

import pytest

from discomfy.config import DISCORD_API_BASE, MIB, load_settings
from discomfy.errors import ConfigError, MissingTokenError

REPO = Path(__file__).resolve().parent.parent
TOKEN = {"DISCORD_TOKEN": "a-token-long-enough-to-be-real"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "discomfy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), {**TOKEN, **(env or {})})
    return caught.value.report()


def test_defaults_from_an_empty_file(tmp_path: Path) -> None:
    settings = load_settings(None, {**TOKEN, "DISCOMFY_CONFIG": str(write(tmp_path, ""))})
    assert settings.discord.api_base == DISCORD_API_BASE
    assert settings.comfyui.servers == ("http://127.0.0.1:8188",)
    assert settings.storage.data_dir == Path("data")
    assert settings.storage.database_path == Path("data/discomfy.sqlite3")
    assert settings.discord.upload_limit_bytes == 10 * MIB


def test_shipped_example_file_is_valid() -> None:
    settings = load_settings(REPO / "discomfy.example.toml", TOKEN)
    assert settings.comfyui.max_jobs_per_server >= 1


def test_missing_token_is_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(MissingTokenError) as caught:
        load_settings(write(tmp_path, ""), {})
    assert "DISCORD_TOKEN" in caught.value.report()


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[comfyui]\nservers = ["http://a:8188"]\n[discord]\napi_base = "http://x/api"\n')
    env = {
        **TOKEN,
        "COMFYUI_URL": "http://b:8188/, http://c:8188",
        "DISCORD_API_BASE": "http://127.0.0.1:9999/api/v10",
        "DISCORD_GUILD_IDS": "123456789012345678",
        "DISCOMFY_DATA_DIR": str(tmp_path / "d"),
    }
    settings = load_settings(path, env)
    assert settings.comfyui.servers == ("http://b:8188", "http://c:8188")
    assert settings.discord.api_base == "http://127.0.0.1:9999/api/v10"
    assert settings.discord.guild_ids == (123456789012345678,)
    assert settings.storage.data_dir == tmp_path / "d"
    assert settings.discord.token == TOKEN["DISCORD_TOKEN"]


def test_bad_url_names_the_setting_and_the_fix(tmp_path: Path) -> None:
    report = problems(tmp_path, '[comfyui]\nservers = ["htp://nowhere"]\n')
    assert "comfyui.servers[0]" in report
    assert "http://127.0.0.1:8188" in report


def test_out_of_range_number_names_the_bounds(tmp_path: Path) -> None:
    report = problems(tmp_path, "[limits]\nmax_jobs_per_user = 0\n")
    assert "limits.max_jobs_per_user is 0; it must be between 1 and 1000" in report


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    report = problems(tmp_path, '[limits]\nmax_jobs_total = "many"\n[storage]\nmax_output_files = -1\nlog = 1\n')
    assert "limits.max_jobs_total must be a whole number between 1 and 100000" in report
    assert "storage.max_output_files is -1" in report
    assert "unknown setting 'storage.log'" in report


def test_typo_in_a_top_level_name_is_reported(tmp_path: Path) -> None:
    assert "unknown setting 'comfy'" in problems(tmp_path, '[comfy]\nservers = ["http://a:1"]\n')


def test_broken_toml_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    assert "is not valid TOML" in problems(tmp_path, "[discord\n")


def test_guild_ids_must_be_discord_ids(tmp_path: Path) -> None:
    report = problems(tmp_path, '[discord]\nguild_ids = ["general"]\n[permissions]\nbypass_roles = [0]\n')
    assert "discord.guild_ids[0] must be a Discord id" in report
    assert "permissions.bypass_roles[0] must be a Discord id" in report


def test_empty_server_list_is_refused(tmp_path: Path) -> None:
    assert "comfyui.servers is empty" in problems(tmp_path, "[comfyui]\nservers = []\n")


def test_an_explicitly_named_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", TOKEN)


def test_bad_log_level_is_reported(tmp_path: Path) -> None:
    assert "log_level 'LOUD'" in problems(tmp_path, 'log_level = "loud"\n')


def test_token_never_appears_in_repr(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), TOKEN)
    assert TOKEN["DISCORD_TOKEN"] not in repr(settings)


def test_models_override_the_defaults_and_keep_the_rest(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[models]\ncheckpoint = "sdxl.safetensors"\nmine = "x.pth"\n'), TOKEN)
    assert settings.models["checkpoint"] == "sdxl.safetensors"
    assert settings.models["mine"] == "x.pth"
    assert settings.models["upscale_model"] == "RealESRGAN_x4plus.pth"


def test_model_names_must_be_strings(tmp_path: Path) -> None:
    assert "models.checkpoint must be a model file name" in problems(tmp_path, "[models]\ncheckpoint = 3\n")


def test_queue_weights_are_read_and_checked(tmp_path: Path) -> None:
    file = tmp_path / "discomfy.toml"
    file.write_text("[limits]\nweights = { video = 6 }\n")
    settings = load_settings(file, {"DISCORD_TOKEN": "t"})
    assert dict(settings.limits.weights) == {"image": 1, "upscale": 2, "video": 6}
    file.write_text("[limits]\nweights = { gif = 2, image = 0 }\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(file, {"DISCORD_TOKEN": "t"})
    report = caught.value.report()
    assert "limits.weights.gif" in report and "limits.weights.image is 0; it must be between 1 and 100" in report


def test_fractional_mib_are_kept_and_the_byte_aliases_follow(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, "[discord]\nupload_limit_mb = 7.5\n[storage]\nmax_output_mb = 20\n"), TOKEN
    )
    assert settings.discord.upload_limit_bytes == int(7.5 * MIB)
    assert settings.storage.max_output_bytes == 20 * MIB


def test_whole_number_settings_refuse_fractions(tmp_path: Path) -> None:
    report = problems(tmp_path, "[comfyui]\nmax_jobs_per_server = 2.5\nrequest_timeout = 0.5\n")
    assert "comfyui.max_jobs_per_server must be a whole number between 1 and 64, not 2.5" in report
    assert "comfyui.request_timeout is 0.5; it must be between 1 and 600" in report


def test_values_are_normalised(tmp_path: Path) -> None:
    text = (
        'log_level = "debug"\n[discord]\napi_base = "http://x:1/api/"\n[comfyui]\nservers = "http://a:8188/"\n'
        '[permissions]\nallowed_roles = ["123456789012345678", 42]\n'
    )
    settings = load_settings(write(tmp_path, text), TOKEN)
    assert settings.log_level == "DEBUG"
    assert settings.discord.api_base == "http://x:1/api"
    assert settings.comfyui.servers == ("http://a:8188",)
    assert settings.permissions.allowed_roles == (123456789012345678, 42)


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    report = problems(tmp_path, "", {"DISCORD_GUILD_IDS": "123, general", "COMFYUI_URL": "nowhere"})
    assert "discord.guild_ids[1] must be a Discord id" in report and "DISCORD_GUILD_IDS" in report
    assert "comfyui.servers[0] is 'nowhere'" in report and "COMFYUI_URL" in report


def test_blank_environment_values_leave_the_file_alone(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, 'log_level = "ERROR"\n'), {**TOKEN, "DISCOMFY_LOG_LEVEL": "  "})
    assert settings.log_level == "ERROR"


def test_a_section_that_is_not_a_table_is_reported_with_the_rest(tmp_path: Path) -> None:
    report = problems(tmp_path, 'comfyui = "http://a:1"\nlog_level = 3\n', {"COMFYUI_URL": "http://b:2"})
    assert "'comfyui' must be a table" in report
    assert "log_level must be a string in quotes, not 3" in report


def test_unknown_keys_in_every_section_are_reported(tmp_path: Path) -> None:
    report = problems(tmp_path, "verbose = true\n[discord]\ntokn = 'x'\n[permissions]\nadmins = []\n")
    assert "unknown setting 'verbose'" in report
    known = "api_base, guild_ids, progress_interval, token"
    assert f"unknown setting 'discord.tokn' in discomfy.toml; [discord] knows: {known}" in report
    assert "unknown setting 'permissions.admins'" in report
