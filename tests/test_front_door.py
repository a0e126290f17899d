"""The README's two commands, .ci/run, and `python run.py` without a token."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_command(marker: str) -> str:
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.rstrip().endswith(f"# {marker}"):
            return line.split("#", 1)[0].strip()
    raise AssertionError(f"README has no line ending in '# {marker}'")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DISCOMFY_", "COMFYUI_"))}
    return {**env, **extra}


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci_lines = [line.strip() for line in (REPO / ".ci/run").read_text(encoding="utf-8").splitlines()]
    assert readme_command("runs the tests") in ci_lines


def test_readme_bot_command_runs_run_py() -> None:
    assert readme_command("runs the bot").endswith("python run.py")


def test_run_without_token_explains_and_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py")],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr
    assert "discord.com/developers/applications" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_a_config_mistake_names_it_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "discomfy.toml").write_text('[comfyui]\nservers = ["localhost:8188"]\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py")],
        cwd=tmp_path,
        env=clean_env(DISCORD_TOKEN="x" * 40),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "comfyui.servers[0]" in result.stderr
    assert "Traceback" not in result.stderr
    assert "x" * 40 not in result.stderr


def test_check_config_accepts_the_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "--check-config", "--config", str(REPO / "discomfy.example.toml")],
        cwd=tmp_path,
        env=clean_env(DISCORD_TOKEN="y" * 40),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "Configuration OK" in result.stdout
