"""Online SQLite copies of a database that another process keeps writing to (WAL mode)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sbx.errors import SqliteCopyError
from tasks.backup.sqlite_copy import copy_database, is_sqlite_database

WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("CREATE TABLE IF NOT EXISTS chat (id INTEGER PRIMARY KEY, body TEXT)")
print("ready", flush=True)
while True:
    conn.execute("INSERT INTO chat (body) VALUES (?)", ("x" * 300,))
    time.sleep(0.002)
"""


def test_copy_while_writing_is_consistent_and_complete(tmp_path: Path) -> None:
    db = tmp_path / "webui.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == b"ready"
        time.sleep(0.5)
        before = sqlite3.connect(db).execute("SELECT max(id) FROM chat").fetchone()[0]
        assert (tmp_path / "webui.db-wal").exists()  # the newest rows live in the WAL
        result = copy_database(db, tmp_path / "copy.db")
    finally:
        writer.kill()
        writer.wait()
    assert result.integrity == "ok"
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = copy.execute("SELECT count(*), max(id) FROM chat").fetchone()
    assert rows[1] >= before  # every row committed before the copy began is there
    assert result.tables["chat"] == rows[0]
    assert is_sqlite_database(db) and not is_sqlite_database(tmp_path / "webui.db-wal")


def test_a_damaged_database_is_named(tmp_path: Path) -> None:
    db = tmp_path / "broken.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with pytest.raises(SqliteCopyError, match=r"broken\.db"):
        copy_database(db, tmp_path / "copy.db")
