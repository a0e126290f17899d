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
    assert "limits.max_jobs_total must be a number" in report
    assert "storage.max_output_files is -1" in report
    assert "unknown setting 'storage.log'" in report


def test_typo_in_a_top_level_name_is_reported(tmp_path: Path) -> None:
    assert "unknown setting 'comfy'" in problems(tmp_path, '[comfy]\nservers = ["http://a:1"]\n')


def test_broken_toml_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    assert "is not valid TOML" in problems(tmp_path, "[discord\n")


def test_guild_ids_must_be_discord_ids(tmp_path: Path) -> None:
    assert "is not a Discord id" in problems(tmp_path, '[discord]\nguild_ids = ["general"]\n')


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
    assert "limits.weights.gif" in report and "limits.weights.image must be a whole number" in report
