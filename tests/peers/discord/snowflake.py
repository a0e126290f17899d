"""Discord snowflakes: 64-bit ids whose top 42 bits are milliseconds since the Discord epoch.

nextcord derives an interaction's age from its id (``Interaction.created_at`` / ``is_expired()``), and views skip
their auto-defer once that age passes 3 s, so every id the emulator hands out is built from the current time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

#: 2015-01-01T00:00:00Z in milliseconds, Discord's epoch.
DISCORD_EPOCH_MS = 1420070400000


class SnowflakeGenerator:
    """Hands out unique, increasing snowflakes for the current time (worker 1, process 0)."""

    def __init__(self, worker: int = 1, process: int = 0) -> None:
        self._worker = worker & 0x1F
        self._process = process & 0x1F
        self._last_ms = 0
        self._increment = 0

    def next(self) -> int:
        now_ms = int(time.time() * 1000)
        if now_ms <= self._last_ms:
            # Same millisecond (or a clock step back): keep ids increasing via the 12-bit increment.
            now_ms = self._last_ms
            self._increment += 1
            if self._increment > 0xFFF:
                now_ms += 1
                self._increment = 0
        else:
            self._increment = 0
        self._last_ms = now_ms
        return ((now_ms - DISCORD_EPOCH_MS) << 22) | (self._worker << 17) | (self._process << 12) | self._increment


def snowflake_unix_time(snowflake: int) -> float:
    """Seconds since the Unix epoch at which ``snowflake`` was made."""
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000.0


def iso_timestamp(unix_seconds: float) -> str:
    """ISO 8601 with an explicit UTC offset, the form Discord uses for ``timestamp`` fields."""
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat()
