"""The doctor (``python run.py --check``) against the two emulators: a good setup is good; each thing that would
stop the bot is its own ✗ line and a non-zero exit; no connection is left open; a dead host does not hang it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from discomfy import doctor
from discomfy.config import ComfySettings, DiscordSettings, PermissionSettings, Settings, StorageSettings
from discomfy.doctor import Check, Mark
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, Overwrite, Permission
from tests.support import WORKFLOWS

REPO = Path(__file__).resolve().parent.parent


def settings_for(
    discord: DiscordEmulator, servers: tuple[str, ...], tmp_path: Path, *, token: str | None = None, **models: str
) -> Settings:
    defaults = Settings()
    return Settings(
        discord=DiscordSettings(
            token=token if token is not None else discord.bot_token,
            api_base=discord.api_base,
            guild_ids=(discord.guild.id,),
        ),
        comfyui=ComfySettings(servers=servers),
        storage=StorageSettings(data_dir=tmp_path / "data"),
        permissions=PermissionSettings(allowed_channels=tuple(c.id for c in discord.channels.values())),
        models={**defaults.models, **models},
        workflows_dir=WORKFLOWS,
    )


async def examine(settings: Settings) -> list[Check]:
    return await doctor.examine(settings, request_timeout=5.0)


def failures(checks: list[Check]) -> list[str]:
    return [c.line() for c in checks if c.mark is Mark.FAIL]


def line_about(checks: list[Check], subject: str) -> Check:
    found = [c for c in checks if c.subject.startswith(subject)]
    assert len(found) == 1, [c.line() for c in checks]
    return found[0]


async def test_a_good_setup_is_reported_good(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    checks = await examine(settings_for(discord_emulator, (comfyui_emulator.url,), tmp_path))
    assert failures(checks) == []
    assert doctor.exit_status(checks) == 0
    assert line_about(checks, "Discord token").text.startswith("logged in as discomfy")
    assert discord_emulator.guild.name in line_about(checks, "Discord servers").text
    for channel in discord_emulator.channels.values():
        assert line_about(checks, f"channel #{channel.name}").mark is Mark.OK
    server = line_about(checks, f"ComfyUI {comfyui_emulator.url}")
    assert server.mark is Mark.OK and "0.33.0" in server.text and "GiB free" in server.text
    assert "queue 0 running / 0 waiting" in server.text
    assert line_about(checks, "/generate").mark is Mark.OK
    assert doctor.report(checks).endswith("the bot can start (2 warning(s)).")


async def test_names_from_discord_cannot_write_escape_sequences_or_lines(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    discord_emulator.guild.name = "evil\x1b[2J\nguild" + "x" * 2000
    checks = await examine(settings_for(discord_emulator, (comfyui_emulator.url,), tmp_path))
    line = line_about(checks, "Discord servers").line()
    assert "\x1b" not in line and "\n" not in line and "evil?[2J?guild" in line
    assert len(line) < 800


async def test_a_wrong_token_is_its_failing_line(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    wrong = "not-the-emulators-token." + "x" * 40
    checks = await examine(settings_for(discord_emulator, (comfyui_emulator.url,), tmp_path, token=wrong))
    assert failures(checks) == [
        "✗ Discord token: Discord refused the token (401 Unauthorized) — copy the bot's token again (Developer "
        "Portal → your application → Bot → Reset Token) into DISCORD_TOKEN"
    ]
    assert doctor.exit_status(checks) == 1
    assert wrong not in doctor.report(checks)
    answered = [r for r in discord_emulator.requests if r.route == "/users/@me"]
    assert [r.status for r in answered] == [401]


async def test_comfyui_down_is_its_failing_line(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    url = comfyui_emulator.url
    await comfyui_emulator.go_down()
    checks = await examine(settings_for(discord_emulator, (url,), tmp_path))
    server = line_about(checks, f"ComfyUI {url}")
    assert server.mark is Mark.FAIL and server.text == "does not answer (cannot connect: connection refused)"
    assert any("no server answered" in line for line in failures(checks))
    assert doctor.exit_status(checks) == 1


async def test_one_server_down_beside_a_good_one_is_a_warning(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    down = "http://127.0.0.1:9"  # the discard port: nothing listens there
    checks = await examine(settings_for(discord_emulator, (comfyui_emulator.url, down), tmp_path))
    assert line_about(checks, f"ComfyUI {down}").mark is Mark.WARN
    assert failures(checks) == []


async def test_a_workflow_needing_a_missing_model_is_named_and_blocks(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    settings = settings_for(discord_emulator, (comfyui_emulator.url,), tmp_path, checkpoint="sdxl-missing.safetensors")
    checks = await examine(settings)
    txt2img = line_about(checks, "workflow txt2img on")
    assert txt2img.mark is Mark.WARN and "'sdxl-missing.safetensors'" in txt2img.text
    assert failures(checks) == [
        "✗ /generate: no server can run txt2img — install the nodes and model files named above on a server, or "
        "remove txt2img.json"
    ]
    assert doctor.exit_status(checks) == 1


async def test_a_server_without_a_model_whose_fallback_runs_is_a_warning(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    # This ComfyUI has no upscale model: `upscale` cannot run there, its fallback `upscale_simple` (a resize) can.
    models = {"checkpoints": ["v1-5-pruned-emaonly.safetensors", "svd_xt.safetensors"], "upscale_models": []}
    async with ComfyEmulator(models=models) as comfy:
        checks = await examine(settings_for(discord_emulator, (comfy.url,), tmp_path))
    upscale = line_about(checks, "workflow upscale on")
    assert upscale.mark is Mark.WARN and "'RealESRGAN_x4plus.pth'" in upscale.text
    assert upscale.fix == "the bot uses its fallback upscale_simple there"
    assert line_about(checks, "the Upscale button").mark is Mark.OK
    assert failures(checks) == []


async def test_a_missing_channel_permission_is_its_failing_line(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    emu.set_overwrites("renders", Overwrite.role(emu.guild.id, deny=Permission.ATTACH_FILES))
    emu.set_role_permissions("discomfy", Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES)
    checks = await examine(settings_for(emu, (comfyui_emulator.url,), tmp_path))
    renders = emu.channels["renders"]
    assert failures(checks) == [
        f"✗ channel #renders ({renders.id}): the bot lacks Attach Files there — in the channel's settings → "
        "Permissions, allow them for the bot's role"
    ]
    assert line_about(checks, "channel #general").mark is Mark.OK  # @everyone allows what the bot's role does not
    assert doctor.exit_status(checks) == 1


async def test_the_bots_role_overwrite_wins_over_everyones(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    bot_role = emu.roles["discomfy"]
    emu.set_overwrites(
        "renders",
        Overwrite.role(emu.guild.id, deny=Permission.SEND_MESSAGES | Permission.ATTACH_FILES),
        Overwrite.role(bot_role, allow=Permission.SEND_MESSAGES | Permission.ATTACH_FILES),
    )
    checks = await examine(settings_for(emu, (comfyui_emulator.url,), tmp_path))
    assert line_about(checks, "channel #renders").mark is Mark.OK


async def test_a_member_overwrite_on_the_bot_wins_over_its_roles(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    emu.set_overwrites(
        "renders",
        Overwrite.role(emu.roles["discomfy"], allow=Permission.EMBED_LINKS),
        Overwrite.member(emu.bot_user, deny=Permission.EMBED_LINKS),
    )
    emu.set_role_permissions("@everyone", 0)
    checks = await examine(settings_for(emu, (comfyui_emulator.url,), tmp_path))
    assert "lacks Embed Links" in line_about(checks, "channel #renders").text


async def test_a_channel_the_bot_cannot_see_says_so(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    emu.set_overwrites("renders", Overwrite.member(emu.bot_user, deny=Permission.VIEW_CHANNEL))
    checks = await examine(settings_for(emu, (comfyui_emulator.url,), tmp_path))
    line = line_about(checks, f"channel {emu.channels['renders'].id}")
    assert line.mark is Mark.FAIL and "Missing Access" in line.text


async def test_an_administrator_role_needs_no_channel_permission(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    admin = emu.add_role("Admin", Permission.ADMINISTRATOR)
    emu.set_member_roles(emu.bot_user, [admin])
    emu.set_overwrites("renders", Overwrite.member(emu.bot_user, deny=Permission.ATTACH_FILES))
    checks = await examine(settings_for(emu, (comfyui_emulator.url,), tmp_path))
    assert failures(checks) == []


async def test_without_configured_channels_it_says_what_was_not_checked(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    settings = settings_for(discord_emulator, (comfyui_emulator.url,), tmp_path)
    settings = replace(settings, permissions=PermissionSettings())
    checks = await examine(settings)
    assert line_about(checks, "channel permissions").mark is Mark.WARN
    assert line_about(checks, "permissions").text.startswith(f"in server {discord_emulator.guild.name}")


async def test_a_server_in_guild_ids_the_bot_is_not_in_blocks(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    settings = settings_for(discord_emulator, (comfyui_emulator.url,), tmp_path)
    guild_ids = (discord_emulator.guild.id, 123456789012345678)
    settings = replace(settings, discord=replace(settings.discord, guild_ids=guild_ids))
    checks = await examine(settings)
    assert any("123456789012345678" in line and "not in that server" in line for line in failures(checks))


async def test_no_connection_is_left_open(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    await examine(settings_for(discord_emulator, (comfyui_emulator.url,), tmp_path))
    # The servers see each client connection end (the doctor's session closed its keep-alive connections).
    # ComfyEmulator has no public count: its aiohttp runner's server holds one handler per open connection.
    comfy_server = comfyui_emulator._runner.server  # type: ignore[union-attr]
    async with asyncio.timeout(5):  # a bound, not a measure: a closed connection ends within the loop's next turns
        # A poll: the servers signal no event when a client hangs up.
        while discord_emulator.open_connections or comfy_server.connections:  # type: ignore[union-attr]  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A host that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_silent_server_times_out_instead_of_hanging(
    discord_emulator: DiscordEmulator, silent_server: str, tmp_path: Path
) -> None:
    settings = settings_for(discord_emulator, (silent_server,), tmp_path)
    checks = await doctor.examine(settings, request_timeout=0.2)
    line = line_about(checks, f"ComfyUI {silent_server}")
    assert line.mark is Mark.FAIL and line.text == "does not answer (no answer within 0.2 s)"


async def test_a_silent_discord_api_times_out_instead_of_hanging(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, silent_server: str, tmp_path: Path
) -> None:
    settings = settings_for(discord_emulator, (comfyui_emulator.url,), tmp_path)
    settings = replace(settings, discord=replace(settings.discord, api_base=silent_server + "/api/v10"))
    checks = await doctor.examine(settings, request_timeout=0.2)
    assert failures(checks) == [
        f"✗ Discord token: Discord's API at {silent_server}/api/v10 could not be reached — check the network "
        "(and discord.api_base)"
    ]


async def test_run_py_check_exits_1_for_a_wrong_token_and_never_prints_it(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    wrong = "not-the-emulators-token." + "y" * 40
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DISCOMFY_", "COMFYUI_"))}
    env.update(
        DISCORD_TOKEN=wrong,
        DISCORD_API_BASE=discord_emulator.api_base,
        COMFYUI_URL=comfyui_emulator.url,
        DISCOMFY_DATA_DIR=str(tmp_path / "data"),
        DISCOMFY_WORKFLOWS_DIR=str(WORKFLOWS),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "run.py"),
        "--check",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "✗ Discord token: Discord refused the token" in out.decode()
    assert wrong not in out.decode() + err.decode()
    assert "Unclosed" not in err.decode() and "Traceback" not in err.decode()
    assert not (tmp_path / "data").exists()  # the doctor writes nothing


async def test_run_py_check_reports_a_config_mistake_as_a_line_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DISCOMFY_", "COMFYUI_"))}
    env.update(DISCORD_TOKEN="x" * 60, COMFYUI_URL="ftp://nowhere")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "run.py"),
        "--check",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert out.decode().startswith("✗ configuration: comfyui.servers[0] is 'ftp://nowhere'")


def test_a_data_directory_that_is_a_file_blocks(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    assert doctor.check_data_dir(tmp_path / "data").mark is Mark.FAIL


def test_a_data_directory_others_can_read_is_a_warning_and_a_new_one_is_fine(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir(mode=0o755)
    (tmp_path / "open").chmod(0o755)
    assert doctor.check_data_dir(tmp_path / "open").text == "other users may read it (mode 0755)"
    assert doctor.check_data_dir(tmp_path / "new" / "data").mark is Mark.OK
    assert not (tmp_path / "new").exists()  # nothing created


async def test_a_workflows_folder_without_an_image_workflow_blocks(
    discord_emulator: DiscordEmulator, comfyui_emulator: ComfyEmulator, tmp_path: Path
) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    for name in ("upscale_simple.json", "upscale_simple.toml"):
        (folder / name).write_bytes((WORKFLOWS / name).read_bytes())
    (folder / "txt2img.json").write_text("{ not json", encoding="utf-8")
    settings = replace(settings_for(discord_emulator, (comfyui_emulator.url,), tmp_path), workflows_dir=folder)
    checks = await examine(settings)
    assert next(c.line() for c in checks if c.subject == "workflows").startswith("! workflows: txt2img.json")
    assert failures(checks) == [
        f"✗ /generate: no image workflow is loaded — add an image workflow to {folder} (see workflows/README.md)"
    ]
    assert line_about(checks, "/animate").mark is Mark.WARN


async def test_a_server_without_any_video_model_is_a_warning_not_a_stop(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    # Images only (a common setup): /animate answers with the missing files; the doctor says so and exits 0.
    async with ComfyEmulator(models={"checkpoints": ["v1-5-pruned-emaonly.safetensors"]}) as comfy:
        checks = await examine(settings_for(discord_emulator, (comfy.url,), tmp_path))
    animate = line_about(checks, "/animate and Animate")
    assert animate.mark is Mark.WARN and "no server can run img2vid_wan22 → img2vid_ltxv → img2vid" in animate.text
    assert "a message naming what is missing" in (animate.fix or "")
    assert failures(checks) == [] and doctor.exit_status(checks) == 0
