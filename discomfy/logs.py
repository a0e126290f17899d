"""Logging setup: one format, and a filter that keeps secrets (the bot token) out of every log line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

REDACTED = "[redacted]"


class SecretFilter(logging.Filter):
    """Replaces each secret with ``[redacted]`` in the final message text and in tracebacks."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Short strings would redact ordinary words; a Discord token is ~70 characters.
        self._secrets = tuple(s for s in secrets if len(s) >= 8)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        clean = self._scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        return True

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def setup_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Log to stderr with timestamps; nextcord's chatter is kept at WARNING unless we debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if level != "DEBUG":
        logging.getLogger("nextcord").setLevel(logging.WARNING)
    # discomfy never joins voice channels; nextcord's warning about the missing voice library only confuses.
    logging.getLogger("nextcord.client").addFilter(lambda record: "PyNaCl" not in record.getMessage())
