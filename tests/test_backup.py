"""scripts/backup_data.py copies a live database (the bot's store open, its last writes still in the write-ahead
log) into a consistent file, with the stored results."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from discomfy.jobs.store import JobStore
from tests.jobs.factories import make_job

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "backup_data.py"


async def test_a_live_database_is_backed_up_with_its_latest_writes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "outputs").mkdir(parents=True)
    (data / "outputs" / "result.png").write_bytes(b"\x89PNG result")
    store = await JobStore.open(data / "discomfy.sqlite3")
    try:
        for number in range(1, 4):
            await store.create(make_job(number))
        assert (data / "discomfy.sqlite3-wal").stat().st_size > 0  # the rows are (at least partly) in the WAL
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), str(data), str(tmp_path / "backups"), stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await store.close()
    assert process.returncode == 0, stderr.decode()
    [target] = (tmp_path / "backups").iterdir()
    assert target.stat().st_mode & 0o777 == 0o700
    with sqlite3.connect(target / "discomfy.sqlite3") as copy:
        assert copy.execute("SELECT count(*) FROM jobs").fetchone() == (3,)
    copy.close()
    assert not (target / "discomfy.sqlite3-wal").exists() or (target / "discomfy.sqlite3-wal").stat().st_size == 0
    assert (target / "outputs" / "result.png").read_bytes() == b"\x89PNG result"


def test_a_directory_without_a_database_fails_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and result.stderr.startswith("backup failed: no database at")
