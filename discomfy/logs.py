"""Logging setup: text or JSON lines, each line tagged with its job, and a filter that keeps secrets out of every
log line, ours and the libraries'.

Formats (``log_format``): ``TEXT``, ``2025-01-01 12:00:00,000 INFO    discomfy.jobs.runner: [job 3f2a…] delivered``;
``JSON``, one object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and ``job``,
``exception``, ``stack`` when there are. The job comes from ``current_job``, a context variable set where a job's
work runs (its runner task, its engine run): asyncio copies it into every task started from there, so the
engine's and the observer's lines carry it too. ``JobFilter`` puts it on the record (``record.job``, unless the
call gave one with ``extra={"job": ...}``). A line about a job written outside its task (the job service
admitting or cancelling it, from the interaction's task) follows the house form ``log.info("job %s: …", job_id,
…)``, and the filter takes the id from that first argument.

``SecretFilter`` sits on the one handler, so every record that reaches it is scrubbed, whichever logger made it
and at whatever level, in the message, the traceback and the stack. It replaces with ``[redacted]``:

- the secrets it is given (the bot token; the user and password of a ComfyUI URL), wherever they appear;
- Discord interaction tokens, found by their shape, not by knowing them: anything starting with
  ``aW50ZXJhY3Rpb246`` (base64 of ``interaction:``, how Discord's interaction tokens begin), the token segment of
  ``/webhooks/{id}/{token}`` and ``/interactions/{id}/{token}`` paths, and the value of any ``…token`` key in a
  payload (``"token": "…"`` in JSON, ``'token': '…'`` in a repr, ``token=…``);
- ``Authorization`` values (``Bot …``, ``Bearer …``, ``Basic …``);
- credentials in a URL: ``http://user:pass@host`` becomes ``http://[redacted]@host``.

Library loggers that dump request bodies, gateway payloads or SQL with its parameters (``QUIET_LIBRARIES``) stay
at WARNING even when we log at DEBUG, unless they are asked for by name (``libraries``; ``app.main`` reads them
from ``DISCOMFY_LOG_LIBRARIES``, a comma list or ``all``); what they print is scrubbed all the same.

Never: log a prompt at INFO (a job is named by its id); trust a library not to print a token; let a formatter
print a traceback the ``SecretFilter`` has not scrubbed.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO

REDACTED = "[redacted]"

#: Loggers kept at WARNING unless asked for: they print request bodies (prompts), gateway payloads (interaction
#: tokens, message contents), SQL with its parameters (prompts, interaction tokens) or access lines.
QUIET_LIBRARIES = (
    "aiosqlite",
    "nextcord.gateway",
    "nextcord.http",
    "nextcord.webhook",
    "nextcord.state",
    "websockets",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.server",
    "aiohttp.websocket",
)

# Each pattern keeps its group 1 (what precedes the secret) and replaces the rest with REDACTED.
_PATTERNS = (
    # Discord interaction tokens start with base64("interaction:"), wherever they appear (a tuple of SQL params).
    re.compile(r"()aW50ZXJhY3Rpb246[A-Za-z0-9_\-.=:]*"),
    # /webhooks/{application_id}/{token}… and /interactions/{id}/{token}/callback
    re.compile(r"(/(?:webhooks|interactions)/[^/\s'\"<>]+/)(?!\[redacted\])[^/?#\s'\"<>]+"),
    # "token": "…", 'token': '…', token=…, "access_token": "…" (a key ending in "token")
    re.compile(r"(?i)(\b\w*token[\"']?\s*[:=]\s*[\"']?)(?!\[redacted\])[^\s\"',;&)}>\]]+"),
    # Authorization: Bot …, Bearer …, Basic …
    re.compile(r"(\b(?:Bot|Bearer|Basic)\s+)[A-Za-z0-9._~+/=\-]{16,}"),
    # scheme://user:password@host
    re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://)[^\s/@'\"<>]+@"),
)
_URL_CREDENTIALS_REPLACEMENT = REDACTED + "@"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets and every token, Authorization value and URL credential replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS[:-1]:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return _PATTERNS[-1].sub(lambda m: m.group(1) + _URL_CREDENTIALS_REPLACEMENT, text)


class SecretFilter(logging.Filter):
    """Scrubs each record that passes (see the module docstring): the final message, the traceback, the stack."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Short strings would redact ordinary words; a Discord token is ~70 characters. Longest first, so a
        # secret that contains another is replaced whole.
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging would print its raw arguments; print them scrubbed
            message = f"{record.msg!s} {record.args!r}"
        clean = self._scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self._scrub(record.stack_info)
        return True

    def _scrub(self, text: str) -> str:
        return redact(text, self._secrets)


#: The job whose work the current task does (its id), or None. Set by the runner and the engine.
current_job: ContextVar[str | None] = ContextVar("discomfy_job", default=None)


class JobFilter(logging.Filter):
    """Puts ``current_job`` on each record as ``record.job`` (a record that has one keeps it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = getattr(record, "job", None)
        if job is None:
            job = current_job.get()
        if job is None and isinstance(record.msg, str) and record.msg.startswith(("job %s:", "job %s ")):
            first = record.args[0] if isinstance(record.args, tuple) and record.args else None
            job = first if isinstance(first, str) else None
        record.job = job
        return True


class TextFormatter(logging.Formatter):
    """``time level logger: [job ID] message``; the job tag only on a job's lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(job_tag)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        job = getattr(record, "job", None)
        record.job_tag = f"[job {job}] " if job is not None else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line. The traceback is ``record.exc_text``, which ``SecretFilter`` has scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = getattr(record, "job", None)
        if job is not None:
            data["job"] = job
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, ensure_ascii=False, default=str)


#: The ``log_format`` values and their formatters.
FORMATTERS: dict[str, type[logging.Formatter]] = {"TEXT": TextFormatter, "JSON": JsonFormatter}


def make_handler(stream: IO[str], secrets: Iterable[str] = (), log_format: str = "TEXT") -> logging.Handler:
    """The one handler: the format asked for (``TEXT`` or ``JSON``), with ``JobFilter`` and ``SecretFilter``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(FORMATTERS[log_format.upper()]())
    handler.addFilter(JobFilter())
    handler.addFilter(SecretFilter(secrets))
    return handler


def quiet_libraries(level: str, libraries: Iterable[str] = ()) -> None:
    """nextcord's chatter at WARNING unless we debug; ``QUIET_LIBRARIES`` at WARNING unless named in
    ``libraries`` (``"all"`` names them all), then at ``level``."""
    asked = {name.strip() for name in libraries if name.strip()}
    logging.getLogger("nextcord").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    for name in QUIET_LIBRARIES:
        loud = "all" in asked or name in asked or any(name.startswith(f"{a}.") for a in asked)
        logging.getLogger(name).setLevel(level if loud else logging.WARNING)


def setup_logging(
    level: str, secrets: Iterable[str] = (), libraries: Iterable[str] = (), log_format: str = "TEXT"
) -> None:
    """Log to stderr with timestamps (text or JSON lines), every line scrubbed; noisy libraries quiet unless asked
    for."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(make_handler(sys.stderr, secrets, log_format))
    root.setLevel(level)
    quiet_libraries(level, libraries)
    # discomfy never joins voice channels; nextcord's warning about the missing voice library only confuses.
    logging.getLogger("nextcord.client").addFilter(lambda record: "PyNaCl" not in record.getMessage())
