"""The deployment files, tested as far as a machine without Docker can: the image's entry point is the command the
tests start, it runs as a non-root user with the data directory as a volume and a HEALTHCHECK that really tells
200 from 503; the compose file parses and wires the bot to its ComfyUI; the systemd unit has the hardening keys
and passes ``systemd-analyze verify`` where that tool exists."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from discomfy.app import LOG_LIBRARIES_ENV
from discomfy.config import CONFIG_ENV, ENV_OVERRIDES

REPO = Path(__file__).resolve().parent.parent
#: The ops endpoint's settings (``[ops]``, added beside the health and metrics endpoint).
OPS_ENV = {"DISCOMFY_HTTP_HOST", "DISCOMFY_HTTP_PORT"}
KNOWN_ENV = {*ENV_OVERRIDES, CONFIG_ENV, LOG_LIBRARIES_ENV, *OPS_ENV}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


def instructions(name: str) -> list[str]:
    return [args for instruction, args in dockerfile() if instruction == name]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instructions("ENV"):
        for pair in args.split():
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def test_the_image_starts_the_command_the_tests_start() -> None:
    [entrypoint] = instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["python", "run.py"]
    assert instructions("CMD") == []  # arguments given to `docker run` go to run.py (e.g. --check)
    assert instructions("WORKDIR")[-1] == "/app"
    # tests/test_run_process.py starts `python run.py` the same way; the file is copied to /app.
    assert "COPY run.py ./" in [f"COPY {args}" for args in instructions("COPY")]
    assert instructions("FROM") == ["python:3.12-slim"]


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    order = [instruction for instruction, _ in dockerfile()]
    [user] = instructions("USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    assert order.index("USER") < order.index("ENTRYPOINT")
    assert any("useradd" in args and user in args for args in instructions("RUN"))


def test_the_data_directory_is_a_volume_the_bot_owns() -> None:
    assert image_env()["DISCOMFY_DATA_DIR"] == "/data"
    assert json.loads(instructions("VOLUME")[0]) == ["/data"]
    assert any("chown discomfy:discomfy /data" in args for args in instructions("RUN"))


def test_every_file_the_image_copies_exists() -> None:
    for args in instructions("COPY"):
        *sources, _ = args.split()
        for source in sources:
            assert (REPO / source).exists(), source


def test_the_image_and_compose_use_only_settings_the_bot_knows() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    named = set(image_env()) | set(compose["services"]["discomfy"]["environment"])
    ours = {n for n in named if n.startswith(("DISCOMFY_", "DISCORD_", "COMFYUI_"))}
    assert ours <= KNOWN_ENV, ours - KNOWN_ENV
    assert image_env()["DISCOMFY_HTTP_PORT"] == "9464"


def test_the_healthcheck_runs_the_checker_every_30_s() -> None:
    [healthcheck] = instructions("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert json.loads(command) == ["python", "/app/healthcheck.py"]
    assert "--interval=30s" in options and "--timeout=5s" in options
    assert "COPY deploy/healthcheck.py ./healthcheck.py" in [f"COPY {args}" for args in instructions("COPY")]


@pytest.fixture
async def healthz() -> AsyncIterator[tuple[int, list[int]]]:
    """A stand-in /healthz on a free port answering the statuses queued in the list (then 200)."""
    statuses: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        status = statuses.pop(0) if statuses else 200
        return web.json_response(
            {"ok": status == 200, "reasons": [] if status == 200 else ["no ComfyUI"]}, status=status
        )

    app = web.Application()
    app.router.add_get("/healthz", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, statuses
    finally:
        await runner.cleanup()


async def run_healthcheck(port: int) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "deploy" / "healthcheck.py"),
        env={"DISCOMFY_HTTP_HOST": "0.0.0.0", "DISCOMFY_HTTP_PORT": str(port)},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_the_healthcheck_passes_on_200_and_fails_on_503(healthz: tuple[int, list[int]]) -> None:
    port, statuses = healthz
    assert (await run_healthcheck(port))[0] == 0
    statuses.append(503)
    status, said = await run_healthcheck(port)
    assert status == 1 and "503" in said and "no ComfyUI" in said


async def test_the_healthcheck_fails_when_nothing_answers(unused_tcp_port: int) -> None:
    status, said = await run_healthcheck(unused_tcp_port)
    assert (status == 1 and "ConnectionRefusedError" in said) or "Connection refused" in said


def test_compose_runs_the_bot_beside_comfyui() -> None:
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert set(services) == {"comfyui", "discomfy"}
    bot, comfy = services["discomfy"], services["comfyui"]
    assert bot["depends_on"] == ["comfyui"] and bot["build"] == "."
    assert bot["environment"]["COMFYUI_URL"] == "http://comfyui:8188"  # ComfyUI's port, by its service name
    assert bot["environment"]["DISCORD_TOKEN"].startswith("${DISCORD_TOKEN:?")  # never written in the file
    assert "discomfy-data:/data" in bot["volumes"] and "discomfy-data" in compose["volumes"]
    assert comfy["image"].startswith("yanwk/comfyui-boot:")
    assert any(volume.endswith(":/root") for volume in comfy["volumes"])  # ComfyUI, its models and outputs
    assert "#         - driver: nvidia" in text  # the GPU reservation, ready to uncomment


def unit() -> list[tuple[str, str, str]]:
    """(section, key, value) of the systemd unit, repeated keys kept."""
    section, found = "", []
    for line in (REPO / "deploy" / "discomfy.service").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def test_the_unit_has_the_usual_hardening() -> None:
    service = {key: value for section, key, value in unit() if section == "Service"}
    expected = {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "StateDirectory": "discomfy",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "2",  # app.main's status for a configuration mistake
        "CapabilityBoundingSet": "",
        "UMask": "0077",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert service["EnvironmentFile"].startswith("/etc/")  # the token, outside the code and the unit
    environment = [v for s, k, v in unit() if k == "Environment"]
    assert "DISCOMFY_DATA_DIR=/var/lib/discomfy" in environment  # = StateDirectory
    assert {v.split("=", 1)[0] for v in environment if v.startswith("DISCOMFY_")} <= KNOWN_ENV
    assert service["ExecStart"].endswith("/run.py")
    assert ("Install", "WantedBy", "multi-user.target") in unit()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point it at this Python instead of /opt/discomfy's virtualenv.
    text = (REPO / "deploy" / "discomfy.service").read_text(encoding="utf-8")
    copy = tmp_path / "discomfy.service"
    copy.write_text(text.replace("/opt/discomfy/.venv/bin/python", sys.executable), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
