"""Log lines: text by default, JSON lines as an option, the job's id on every line about a job, no secrets in
either format (message, arguments, traceback)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from discomfy.config import load_settings
from discomfy.logs import current_job, make_handler
from tests.peers.discord import DiscordEmulator
from tests.test_run_process import start_bot

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.very-secret-token-value-0123456789"
INTERACTION = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OnNlY3JldA"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, dict[str, io.StringIO]]]:
    """A logger writing through the real handler in both formats at once."""
    streams = {"TEXT": io.StringIO(), "JSON": io.StringIO()}
    logger = logging.getLogger("test.formats")
    logger.handlers = [make_handler(stream, [TOKEN], log_format) for log_format, stream in streams.items()]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, streams
    logger.handlers = []


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_text_is_the_default_format() -> None:
    settings = load_settings(None, environ={"DISCORD_TOKEN": TOKEN})
    assert settings.log_format == "TEXT"
    assert load_settings(None, environ={"DISCORD_TOKEN": TOKEN, "DISCOMFY_LOG_FORMAT": "json"}).log_format == "JSON"


def test_a_job_line_shows_its_id_in_text_and_json(logged: tuple[logging.Logger, dict[str, io.StringIO]]) -> None:
    logger, streams = logged
    token = current_job.set("3f2a9c")
    try:
        logger.info("delivered (%d file(s))", 1)
    finally:
        current_job.reset(token)
    logger.info("not about a job")
    first, second = streams["TEXT"].getvalue().splitlines()
    assert first.endswith("test.formats: [job 3f2a9c] delivered (1 file(s))")
    assert second.endswith("test.formats: not about a job")
    lines = json_lines(streams["JSON"])
    assert lines[0]["job"] == "3f2a9c" and lines[0]["message"] == "delivered (1 file(s))"
    assert "job" not in lines[1]
    assert {"time", "level", "logger", "message"} <= set(lines[1]) and lines[1]["level"] == "INFO"


def test_a_job_line_written_outside_the_jobs_task_takes_the_id_from_its_first_argument(
    logged: tuple[logging.Logger, dict[str, io.StringIO]],
) -> None:
    logger, streams = logged
    logger.info("job %s: cancel asked by %s", "77aa", 1234)
    assert json_lines(streams["JSON"])[0]["job"] == "77aa"


async def test_tasks_started_by_a_jobs_task_carry_its_id(
    logged: tuple[logging.Logger, dict[str, io.StringIO]],
) -> None:
    logger, streams = logged

    async def job_task() -> None:
        current_job.set("c0ffee")

        async def child() -> None:
            logger.warning("a background check")

        await asyncio.create_task(child())

    await asyncio.create_task(job_task())
    logger.warning("after the job's task")  # the setting stayed in the job's task
    lines = json_lines(streams["JSON"])
    assert lines[0]["job"] == "c0ffee" and "job" not in lines[1]


def test_json_lines_are_valid_one_per_record_even_with_newlines(
    logged: tuple[logging.Logger, dict[str, io.StringIO]],
) -> None:
    logger, streams = logged
    logger.error('a "quoted"\nmultiline message with ünïcode')
    [line] = streams["JSON"].getvalue().splitlines()
    assert json.loads(line)["message"] == 'a "quoted"\nmultiline message with ünïcode'


@pytest.mark.parametrize("log_format", ["TEXT", "JSON"])
def test_a_token_in_a_message_and_in_an_exception_is_scrubbed(
    logged: tuple[logging.Logger, dict[str, io.StringIO]], log_format: str
) -> None:
    logger, streams = logged
    logger.info("sending Authorization: Bot %s to /webhooks/1/%s", TOKEN, INTERACTION)
    try:
        raise RuntimeError(f"login failed with {TOKEN} for {INTERACTION}")
    except RuntimeError:
        logger.exception("request failed, token=%s", TOKEN)
    out = streams[log_format].getvalue()
    assert TOKEN not in out and INTERACTION not in out
    assert "[redacted]" in out and "RuntimeError" in out
    if log_format == "JSON":
        lines = json_lines(streams["JSON"])
        assert "Traceback" in str(lines[1]["exception"]) and "[redacted]" in str(lines[1]["exception"])


async def test_the_bot_process_logs_json_lines_when_asked(discord_emulator: DiscordEmulator, tmp_path: Path) -> None:
    wrong = "not-the-emulators-token-" + "q" * 30  # refused at login: the process logs its start, then exits 1
    process = await start_bot(discord_emulator, tmp_path, wrong, DISCOMFY_LOG_FORMAT="json")
    _, stderr_bytes = await asyncio.wait_for(process.communicate(), 20)
    stderr = stderr_bytes.decode()
    assert process.returncode == 1, stderr
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(r["logger"] == "discomfy" and "starting" in str(r["message"]) for r in logged), stderr
    # Only the final one-line report to the operator is not a log record.
    assert [line for line in stderr.splitlines() if not line.startswith("{")] == [
        "discomfy could not log in to Discord: Discord rejected the bot token. "
        "Check DISCORD_TOKEN (reset it if needed)."
    ]
    assert wrong not in stderr
