#!/usr/bin/env python3
"""Back up discomfy's data directory while the bot runs: the SQLite database through SQLite's online backup API
(a consistent copy, the write-ahead log included), then the stored results.

    python scripts/backup_data.py DATA_DIR BACKUP_ROOT

writes ``BACKUP_ROOT/discomfy-YYYYmmdd-HHMMSS/`` (mode 0700: it holds prompts and results) with
``discomfy.sqlite3`` (checked with ``PRAGMA integrity_check``) and ``outputs/``. Standard library only, so it
runs in the container image too (``/app/backup_data.py``). Why not ``cp``: the database is in WAL mode, and a copy
of the file taken while the bot writes can miss the last transactions or be torn; the backup API copies a
consistent snapshot. Restore: stop the bot, put the two back into the data directory (no ``-wal`` / ``-shm``
files beside the database), start it. Exit status 0 on success, 1 with one line on failure.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import time
from pathlib import Path

DATABASE = "discomfy.sqlite3"
OUTPUTS = "outputs"


def backup(data_dir: Path, root: Path) -> Path:
    source = data_dir / DATABASE
    if not source.is_file():
        raise FileNotFoundError(f"no database at {source} (is {data_dir} discomfy's data directory?)")
    target = root / time.strftime("discomfy-%Y%m%d-%H%M%S", time.gmtime())
    target.mkdir(mode=0o700, parents=True)
    with sqlite3.connect(source, timeout=30) as live, sqlite3.connect(target / DATABASE) as copy:
        live.backup(copy)
        [(verdict,)] = copy.execute("PRAGMA integrity_check").fetchall()
    live.close()
    copy.close()
    if verdict != "ok":
        raise RuntimeError(f"the copy failed its integrity check: {verdict}")
    if (data_dir / OUTPUTS).is_dir():
        shutil.copytree(data_dir / OUTPUTS, target / OUTPUTS)
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        target = backup(Path(argv[0]), Path(argv[1]))
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"backed up to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
