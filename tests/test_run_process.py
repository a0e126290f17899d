"""`python run.py` as a real process against the Discord emulator: READY, commands registered, clean SIGTERM."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.peers.discord import DiscordEmulator

REPO = Path(__file__).resolve().parent.parent


async def start_bot(emu: DiscordEmulator, tmp_path: Path, token: str, **extra: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DISCOMFY_", "COMFYUI_"))}
    env.update(extra)
    env.update(
        DISCORD_TOKEN=token,
        DISCORD_API_BASE=emu.api_base,
        DISCORD_GUILD_IDS=str(emu.guild.id),
        COMFYUI_URL="http://127.0.0.1:9",
        DISCOMFY_DATA_DIR=str(tmp_path / "data"),
        PYTHONUNBUFFERED="1",
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "run.py"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_log_until(process: asyncio.subprocess.Process, text: str, within: float = 20) -> str:
    """The bot's log (stderr) up to and including the first line containing ``text``."""
    assert process.stderr is not None
    seen = []
    async with asyncio.timeout(within):
        while True:
            line = (await process.stderr.readline()).decode()
            if not line:
                raise AssertionError(f"the bot exited before logging {text!r}:\n{''.join(seen)}")
            seen.append(line)
            if text in line:
                return "".join(seen)


async def stop(process: asyncio.subprocess.Process, sig: signal.Signals) -> tuple[float, str]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    process.send_signal(sig)
    _, stderr = await asyncio.wait_for(process.communicate(), 15)
    return loop.time() - started, stderr.decode()


# A real bot process that gets to READY: its start-up, and nextcord's 2 s wait after the last GUILD_CREATE before
# on_ready (``guild_ready_timeout``, which only in-process tests can lower), are real time.
@pytest.mark.slow
async def test_bot_reaches_ready_registers_commands_and_stops_cleanly_on_sigterm(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    process = await start_bot(emu, tmp_path, emu.bot_token)
    try:
        await emu.wait_for_gateway(lambda r: r.direction == "send" and r.event == "READY", timeout=20)
        for name in ("help", "status"):
            await emu.wait_for_command(name, guild=True, timeout=20)
        startup_log = await read_log_until(process, "invite link:")
    except BaseException:
        process.kill()
        await process.communicate()
        raise
    assert f"client_id={emu.application_id}&scope=bot+applications.commands&permissions=117760" in startup_log
    assert "connected to Discord as" in startup_log
    seconds, stderr = await stop(process, signal.SIGTERM)
    stderr = startup_log + stderr
    assert process.returncode == 0, stderr
    assert seconds < 5, f"SIGTERM took {seconds:.1f}s"
    assert "stop signal received" in stderr
    for bad in ("Unclosed client session", "Unclosed connector", "Task was destroyed", "Traceback", emu.bot_token):
        assert bad not in stderr


@pytest.mark.slow  # a real bot process, started and stopped
async def test_bot_stops_cleanly_on_sigint(discord_emulator: DiscordEmulator, tmp_path: Path) -> None:
    emu = discord_emulator
    process = await start_bot(emu, tmp_path, emu.bot_token)
    try:
        await emu.wait_for_command("help", guild=True, timeout=20)
    except BaseException:
        process.kill()
        await process.communicate()
        raise
    seconds, stderr = await stop(process, signal.SIGINT)
    assert process.returncode == 0, stderr
    assert seconds < 5
    assert "Traceback" not in stderr


async def test_a_refused_token_exits_1_with_one_line_and_no_token(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    wrong = "not-the-emulators-token-" + "z" * 30
    process = await start_bot(discord_emulator, tmp_path, wrong)
    _, stderr_bytes = await asyncio.wait_for(process.communicate(), 20)
    stderr = stderr_bytes.decode()
    assert process.returncode == 1, stderr
    assert "Discord rejected the bot token" in stderr
    assert "Traceback" not in stderr
    assert wrong not in stderr


@pytest.mark.slow  # a real bot process, started and stopped
async def test_sighup_reloads_the_workflows_and_reports_a_broken_one(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    workflows = tmp_path / "wf"
    workflows.mkdir()
    for name in ("txt2img.json", "txt2img.toml"):
        (workflows / name).write_bytes((REPO / "workflows" / name).read_bytes())
    process = await start_bot(emu, tmp_path, emu.bot_token, DISCOMFY_WORKFLOWS_DIR=str(workflows))
    try:
        await read_log_until(process, "invite link:")
        (workflows / "broken.json").write_text("{ not json")
        process.send_signal(signal.SIGHUP)
        reload_log = await read_log_until(process, "workflows reloaded")
    except BaseException:
        process.kill()
        await process.communicate()
        raise
    _, stderr = await stop(process, signal.SIGTERM)
    assert process.returncode == 0, stderr
    assert "broken" in reload_log and "workflows loaded: txt2img" in reload_log


async def test_an_unusable_data_directory_exits_1_with_one_clear_line(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    env_dir = str(blocker)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "run.py"),
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DISCOMFY_", "COMFYUI_"))},
            "DISCORD_TOKEN": emu.bot_token,
            "DISCORD_API_BASE": emu.api_base,
            "COMFYUI_URL": "http://127.0.0.1:9",
            "DISCOMFY_DATA_DIR": env_dir,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr_bytes = await asyncio.wait_for(process.communicate(), 30)
    stderr = stderr_bytes.decode()
    assert process.returncode == 1, stderr
    assert "discomfy could not start: the data directory" in stderr
    assert "Traceback" not in stderr and emu.bot_token not in stderr


@pytest.mark.slow  # a real bot process, started and stopped
async def test_a_stop_while_the_commands_are_still_being_registered_is_clean(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    """SIGINT while nextcord's on_connect still registers commands (Discord answering slowly): the sync is cut
    short by the closing session, which is a stop, not an error — no traceback."""
    emu = discord_emulator
    emu.faults.slow("/applications/*/guilds/*/commands", method="POST", count=20, delay=1.0)
    process = await start_bot(emu, tmp_path, emu.bot_token)
    try:
        await emu.wait_for_gateway(lambda r: r.direction == "send" and r.event == "READY", timeout=20)
        await asyncio.sleep(0.3)  # the first registration is on its way, its answer a second late
    except BaseException:
        process.kill()
        await process.communicate()
        raise
    _, stderr = await stop(process, signal.SIGINT)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
