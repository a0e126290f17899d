"""Secrets and files, tried as an attacker reading the logs and as a careless operator would.

- Logs: a whole job (a /generate, its result, a Reroll through the follow-up webhook) logged at DEBUG with every
  library logger let through, read back: no bot token, no interaction token, no ComfyUI password; the raw
  records did carry them (so the filter, not luck, kept them out). The shapes they come in, one by one.
- URL credentials: never in a log line, a traceback, a configuration report; ``redact_url`` for the rest.
- Files: the data directory 0700, the database and its -wal/-shm 0600, the lock 0600, even under umask 022.
- A configuration file holding the token that others may read: a warning at start and in ``--check-config``.
- One bot per data directory: a second real process exits 1 with one line; kill -9 frees the directory.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import signal
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from discomfy.app import LOCK_FILE, lock_data_dir, main, make_data_dir
from discomfy.bot.custom_ids import ComponentAction, encode
from discomfy.config import load_settings, redact_url, url_credentials
from discomfy.errors import ConfigError, StartupError
from discomfy.jobs.state import JobState
from discomfy.jobs.store import JobStore
from discomfy.logs import QUIET_LIBRARIES, REDACTED, SecretFilter, make_handler, quiet_libraries, redact
from tests.e2e.studio import Studio, studio_settings
from tests.jobs.factories import make_job
from tests.peers.comfyui import ComfyEmulator
from tests.peers.discord import DiscordEmulator, NextcordRunner
from tests.peers.discord.messages import StoredMessage
from tests.support import E2E_DISCORD_TIME_SCALE
from tests.test_run_process import REPO, read_log_until, start_bot

pytestmark = pytest.mark.timeout(90)

BOT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.bot-token-that-must-never-show"
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OTpzZWNyZXQtaW50ZXJhY3Rpb24tdG9rZW4"
COMFY_USER, COMFY_PASSWORD = "studio-admin", "comfy-pa55word-never-shown"
PROMPT = "a lighthouse painted by a very private person"


# --- the studio, as in tests/e2e, with a ComfyUI URL that carries credentials ---------------------------------


def with_credentials(url: str) -> str:
    return url.replace("://", f"://{COMFY_USER}:{COMFY_PASSWORD}@", 1)


@pytest.fixture
async def studio(
    discord_emulator: DiscordEmulator, comfy: ComfyEmulator, run_nextcord: NextcordRunner, tmp_path: Path
) -> AsyncIterator[Studio]:
    settings = studio_settings(discord_emulator, comfy, tmp_path / "data", commands_per_minute=100)
    comfyui = settings.comfyui.__class__(
        servers=(with_credentials(comfy.url),), request_timeout=5.0, max_jobs_per_server=1
    )
    s = Studio(discord_emulator, comfy, run_nextcord, settings.__class__(**{**settings.__dict__, "comfyui": comfyui}))
    yield s
    await s.stop()


class Logs:
    """Everything logged while it is installed, at DEBUG and with every quiet library let through: ``text`` as
    the bot's handler writes it (filtered), ``raw`` as it would be without the filter."""

    def __init__(self, secrets: list[str]) -> None:
        self.filtered, self.unfiltered = io.StringIO(), io.StringIO()
        self.handlers = [make_handler(self.filtered, secrets), logging.StreamHandler(self.unfiltered)]
        self.handlers[1].setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self.levels: dict[str, int] = {}

    def __enter__(self) -> Logs:
        root = logging.getLogger()
        for name in ("", "nextcord", *QUIET_LIBRARIES):
            self.levels[name] = logging.getLogger(name).level
        root.setLevel(logging.DEBUG)
        quiet_libraries("DEBUG", ["all"])
        # The unfiltered one first: the filter rewrites the record for every handler after it.
        for handler in reversed(self.handlers):
            root.addHandler(handler)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)

    @property
    def text(self) -> str:
        return self.filtered.getvalue()

    @property
    def raw(self) -> str:
        return self.unfiltered.getvalue()


def job_id_of(message: StoredMessage) -> str:
    found = re.search(r"job (\w+)", message.embeds[0]["footer"]["text"])
    assert found is not None
    return found.group(1)


@pytest.mark.discord_time_scale(E2E_DISCORD_TIME_SCALE)
async def test_a_whole_job_logged_at_debug_shows_no_token_and_no_comfy_password(studio: Studio) -> None:
    emu = studio.discord
    secrets = [studio.settings.discord.token, *url_credentials(studio.settings.comfyui.servers)]
    with Logs(secrets) as logs:
        await studio.start()
        interaction = await emu.send_slash_command(
            "bob", "general", "generate", {"prompt": PROMPT, "steps": 2, "width": 256, "height": 256}
        )
        source = await studio.result(interaction)
        press = await emu.click_button("carol", source, encode(ComponentAction.REROLL, job_id_of(source)))
        rerolled = await studio.result(press)
        for _ in range(500):  # the row says delivered a moment after the message is up
            if (await studio.stack.store.get(job_id_of(rerolled))).state is JobState.DELIVERED:
                break
            await asyncio.sleep(0.02)
        await studio.stop()
    tokens = [interaction.token, press.token]
    # The libraries did print them: the filter is what kept them out.
    assert any(token in logs.raw for token in tokens), "nothing printed an interaction token: the test saw nothing"
    assert studio.settings.discord.token in logs.raw or COMFY_PASSWORD in logs.raw
    for secret in (*tokens, studio.settings.discord.token, COMFY_PASSWORD):
        assert secret not in logs.text
    assert f"{COMFY_USER}:" not in logs.text
    assert REDACTED in logs.text


@pytest.mark.discord_time_scale(E2E_DISCORD_TIME_SCALE)
async def test_at_info_a_job_logs_no_prompt_and_no_library_payloads(studio: Studio) -> None:
    stream = io.StringIO()
    handler = make_handler(stream, [studio.settings.discord.token])
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)  # the libraries' own levels decide; the handler shows INFO and up
    quiet_libraries("INFO")
    root.addHandler(handler)
    try:
        await studio.start()
        interaction = await studio.discord.send_slash_command(
            "bob", "general", "generate", {"prompt": PROMPT, "steps": 2, "width": 256, "height": 256}
        )
        await studio.result(interaction)
        await studio.stop()
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    text = stream.getvalue()
    assert "queued for" in text  # the job was logged, by its id
    assert PROMPT not in text and "lighthouse" not in text
    assert interaction.token not in text and "INTERACTION_CREATE" not in text


# --- the shapes secrets come in -------------------------------------------------------------------------------


def scrubbed(message: str, *args: object, secrets: tuple[str, ...] = (BOT_TOKEN,)) -> str:
    record = logging.LogRecord("nextcord.gateway", logging.DEBUG, __file__, 1, message, args or None, None)
    SecretFilter(secrets).filter(record)
    return record.getMessage()


@pytest.mark.parametrize(
    ("message", "args"),
    [
        # nextcord.gateway: the raw JSON of an INTERACTION_CREATE
        ("For Shard ID %s: WebSocket Event: %s", (None, '{"t":"INTERACTION_CREATE","d":{"token":"%s","id":"1"}}')),
        # a payload printed as a Python dict
        ("payload %s", ("{'type': 2, 'token': '%s', 'version': 1}",)),
        # nextcord.http / nextcord.webhook: the route URL
        ("%s %s has returned %s", ("PATCH", "https://discord.com/api/v10/webhooks/99/%s/messages/@original", 200)),
        ("%s %s has returned %s", ("POST", "https://discord.com/api/v10/interactions/12/%s/callback", 204)),
        # aiosqlite: the SQL and its parameters
        ("executing %s", ("functools.partial(<execute>, 'UPDATE jobs SET interaction_token = ?', ('%s', 7))",)),
        # a repr with a keyword
        ("%r", ("<InteractionRef app_id=1 token=%s>",)),
    ],
)
def test_an_interaction_token_is_scrubbed_in_every_shape_the_libraries_print(message: str, args: tuple[object]) -> None:
    filled = tuple(a.replace("%s", INTERACTION_TOKEN) if isinstance(a, str) else a for a in args)
    out = scrubbed(message, *filled)
    assert INTERACTION_TOKEN not in out and REDACTED in out


def test_an_interaction_token_is_scrubbed_whatever_it_looks_like_when_it_sits_in_a_webhook_path() -> None:
    other = "Zm9yZWlnbi1zaGFwZWQtdG9rZW4tdGhhdC1kb2VzLW5vdC1zdGFydC1saWtlLWRpc2NvcmRz"
    out = scrubbed("GET /webhooks/1/%s/messages/5 and %s", other, '"token": "' + other + '"')
    assert other not in out
    assert "/webhooks/1/[redacted]/messages/5" in out


def test_the_bot_token_is_scrubbed_in_a_header_and_in_a_traceback() -> None:
    assert BOT_TOKEN not in scrubbed("headers %s", {"Authorization": f"Bot {BOT_TOKEN}"}, secrets=())
    record = logging.LogRecord("discomfy", logging.ERROR, __file__, 1, "failed", None, None)
    try:
        raise RuntimeError(f"login with {BOT_TOKEN} to http://{COMFY_USER}:{COMFY_PASSWORD}@gpu:8188/ws failed")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    SecretFilter([BOT_TOKEN]).filter(record)
    assert record.exc_text is not None
    for secret in (BOT_TOKEN, COMFY_PASSWORD, COMFY_USER):
        assert secret not in record.exc_text


@pytest.mark.parametrize(
    "url",
    [
        f"http://{COMFY_USER}:{COMFY_PASSWORD}@gpu1:8188",
        f"https://{COMFY_USER}:{COMFY_PASSWORD}@gpu1/comfy/prompt",
        f"ws://{COMFY_USER}:{COMFY_PASSWORD}@gpu1:8188/ws?clientId=abc",
        f"http://{COMFY_USER}:p%40ss%2F{COMFY_PASSWORD}@gpu1:8188",
    ],
)
def test_comfy_url_credentials_never_reach_a_log_line(url: str) -> None:
    out = scrubbed("ComfyUI server %s is down: %s", url, f"Cannot connect to {url}", secrets=())
    assert COMFY_PASSWORD not in out and COMFY_USER not in out
    assert "gpu1" in out


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@gpu1:8188", "http://[redacted]@gpu1:8188"),
        ("https://only-user@gpu1/comfy", "https://[redacted]@gpu1/comfy"),
        ("http://a:b%40c@[::1]:8188/x?y=1", "http://[redacted]@[::1]:8188/x?y=1"),
        ("http://127.0.0.1:8188", "http://127.0.0.1:8188"),
        ("http://[::1:8188", "http://[::1:8188"),  # unparseable: returned as is, no exception
        ("not a url at all", "not a url at all"),
    ],
)
def test_redact_url_removes_only_the_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_bad_comfy_url_is_reported_without_its_credentials(tmp_path: Path) -> None:
    env = {"DISCORD_TOKEN": BOT_TOKEN, "COMFYUI_URL": f"ftp://{COMFY_USER}:{COMFY_PASSWORD}@gpu1:8188,"}
    env["COMFYUI_URL"] += f"http://{COMFY_USER}:{COMFY_PASSWORD}@gpu2:99999"
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env)
    report = caught.value.report()
    assert "comfyui.servers[0]" in report and "comfyui.servers[1]" in report
    assert COMFY_PASSWORD not in report and COMFY_USER not in report


def test_payload_and_sql_loggers_stay_quiet_at_debug_unless_named() -> None:
    names = ("", "nextcord", *QUIET_LIBRARIES)
    saved = {name: logging.getLogger(name).level for name in names}
    try:
        quiet_libraries("DEBUG")
        assert logging.getLogger("nextcord").getEffectiveLevel() == logging.DEBUG
        for name in ("aiosqlite", "nextcord.gateway", "nextcord.http", "nextcord.webhook", "websockets"):
            assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
        quiet_libraries("DEBUG", ["aiosqlite", " "])
        assert logging.getLogger("aiosqlite").getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("nextcord.gateway").getEffectiveLevel() == logging.WARNING
        quiet_libraries("INFO", ["all"])
        assert logging.getLogger("nextcord.gateway").getEffectiveLevel() == logging.INFO
        assert logging.getLogger("nextcord").getEffectiveLevel() == logging.WARNING
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


# --- files ------------------------------------------------------------------------------------------------------


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A permissive umask, as many hosts have: modes must not depend on it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("loose_umask")
async def test_the_database_and_its_wal_and_shm_are_0600_in_a_0700_folder(tmp_path: Path) -> None:
    database = tmp_path / "data" / "discomfy.sqlite3"
    async with JobStore(database) as store:
        await store.create(make_job(params={"prompt": PROMPT}))
        companions = [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(p.exists() for p in companions)
        assert {p.name: mode(p) for p in (database, *companions)} == {p.name: 0o600 for p in (database, *companions)}
    assert mode(database.parent) == 0o700


@pytest.mark.usefixtures("loose_umask")
async def test_a_database_left_readable_by_an_older_version_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "discomfy.sqlite3"
    async with JobStore(database):
        pass
    for path in (database, database.with_name(database.name + "-wal")):
        if path.exists():
            path.chmod(0o644)
    async with JobStore(database):
        assert mode(database) == 0o600
        assert mode(database.with_name(database.name + "-wal")) == 0o600


@pytest.mark.usefixtures("loose_umask")
def test_the_lock_holds_the_data_directory_and_is_private(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    fd = lock_data_dir(data)
    try:
        assert mode(data) == 0o700
        lock = data / LOCK_FILE
        assert mode(lock) == 0o600
        assert lock.read_text().strip() == str(os.getpid())
        # flock belongs to the open file: a second open in the same process is refused like another process.
        with pytest.raises(StartupError, match=rf"another discomfy \(pid {os.getpid()}\) is already running"):
            lock_data_dir(data)
    finally:
        os.close(fd)
    os.close(lock_data_dir(data))  # closed (or the process gone): free again


def test_an_existing_data_directory_that_others_can_read_draws_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="discomfy"):
        make_data_dir(data)
    assert "can be read by other users (mode 0755)" in caplog.text and "chmod 700" in caplog.text
    caplog.clear()
    private = tmp_path / "private"
    with caplog.at_level(logging.WARNING, logger="discomfy"):
        make_data_dir(private)
    assert mode(private) == 0o700 and caplog.text == ""


# --- the configuration file -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_mode", "holds_token", "warned"),
    [(0o644, True, "its group and other users"), (0o640, True, "its group"), (0o600, True, None), (0o644, False, None)],
)
def test_a_config_file_holding_the_token_that_others_can_read_is_warned_about(
    tmp_path: Path, file_mode: int, holds_token: bool, warned: str | None
) -> None:
    file = tmp_path / "discomfy.toml"
    file.write_text(f'[discord]\ntoken = "{BOT_TOKEN}"\n' if holds_token else 'log_level = "INFO"\n')
    file.chmod(file_mode)
    warnings: list[str] = []
    load_settings(file, {"DISCORD_TOKEN": BOT_TOKEN} if not holds_token else {}, warnings=warnings)
    if warned is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and f"{warned} can read it" in warnings[0] and "chmod 600" in warnings[0]
        assert BOT_TOKEN not in warnings[0]


def test_check_config_prints_the_permission_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("DISCORD_", "DISCOMFY_", "COMFYUI_")):
            monkeypatch.delenv(name)
    file = tmp_path / "discomfy.toml"
    file.write_text(f'[discord]\ntoken = "{BOT_TOKEN}"\n')
    file.chmod(0o604)
    assert main(["--config", str(file), "--check-config"]) == 0
    out, err = capsys.readouterr()
    assert "Configuration OK" in out
    assert "warning:" in err and "other users can read it (mode 0604)" in err
    assert BOT_TOKEN not in out + err


async def test_a_started_bot_warns_about_a_readable_token_file(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    wrong = "not-the-emulators-token-" + "q" * 30  # refused at login: the process ends by itself
    file = tmp_path / "discomfy.toml"
    file.write_text(f'[discord]\ntoken = "{wrong}"\n')
    file.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DISCOMFY_", "COMFYUI_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "run.py"),
        "--config",
        str(file),
        cwd=tmp_path,
        env={
            **env,
            "DISCORD_API_BASE": discord_emulator.api_base,
            "COMFYUI_URL": "http://127.0.0.1:9",
            "DISCOMFY_DATA_DIR": str(tmp_path / "data"),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr_bytes = await asyncio.wait_for(process.communicate(), 30)
    stderr = stderr_bytes.decode()
    assert process.returncode == 1, stderr
    assert "holds the bot token and its group and other users can read it" in stderr
    assert wrong not in stderr


# --- one bot per data directory, with real processes ----------------------------------------------------------


async def test_a_second_bot_on_the_same_data_directory_exits_1_and_kill_9_frees_it(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    first = await start_bot(emu, tmp_path, emu.bot_token)
    third = None
    try:
        await read_log_until(first, "starting; Discord API at")  # the lock is taken before this line
        second = await start_bot(emu, tmp_path, emu.bot_token)
        _, stderr_bytes = await asyncio.wait_for(second.communicate(), 30)
        stderr = stderr_bytes.decode()
        assert second.returncode == 1, stderr
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1, stderr
        assert lines[0].startswith(f"discomfy could not start: another discomfy (pid {first.pid}) is already running")
        assert "Traceback" not in stderr and emu.bot_token not in stderr
        first.send_signal(signal.SIGKILL)
        await asyncio.wait_for(first.communicate(), 15)
        third = await start_bot(emu, tmp_path, emu.bot_token)
        await read_log_until(third, "starting; Discord API at")
    finally:
        for process in (first, third):
            if process is not None and process.returncode is None:
                process.kill()
                await process.communicate()
    lock = tmp_path / "data" / LOCK_FILE
    assert mode(lock) == 0o600 and mode(lock.parent) == 0o700


def test_the_log_filter_scrubs_what_the_process_is_given_as_secrets() -> None:
    secrets = [BOT_TOKEN, *url_credentials([f"http://{COMFY_USER}:{COMFY_PASSWORD}@gpu1:8188"])]
    # a password printed on its own, away from its URL (a BasicAuth repr, say)
    out = redact(f"BasicAuth(login='{COMFY_USER}', password='{COMFY_PASSWORD}') token {BOT_TOKEN}", secrets)
    assert COMFY_PASSWORD not in out and COMFY_USER not in out and BOT_TOKEN not in out
