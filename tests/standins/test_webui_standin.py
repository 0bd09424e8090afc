"""The Open WebUI stand-in keeps a live SQLite database in WAL mode busy, as the real one does.

That is what makes Open WebUI's data hard to back up: rows are committed while a backup runs
and recent ones live only in webui.db-wal until a checkpoint. These tests read the database
through a separate connection on the file, as a backup would.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx

from .conftest import StartStandin


@contextmanager
def database(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, timeout=10)) as conn:
        yield conn


def chat_rows(path: Path) -> int:
    with database(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM chat").fetchone()[0])


def test_pages_and_version(start_standin: StartStandin, tmp_path: Path) -> None:
    webui = start_standin("webui", {"DATA_DIR": str(tmp_path / "data")})
    assert httpx.get(f"{webui.url}/health").json() == {"status": True}
    auth = httpx.get(f"{webui.url}/auth")
    assert auth.headers["content-type"].startswith("text/html")
    assert "<title>Open WebUI</title>" in auth.text
    assert 'name="email"' in auth.text
    assert 'name="password"' in auth.text
    assert httpx.get(f"{webui.url}/api/version").json()["version"].startswith("0.3.")
    assert httpx.get(f"{webui.url}/nope").status_code == 404


def test_rows_are_committed_while_running_in_wal_mode(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    db = data / "webui.db"
    webui = start_standin("webui", {"DATA_DIR": str(data), "STANDIN_WRITE_INTERVAL": "0.05"})
    first = chat_rows(db)
    time.sleep(0.8)
    second = chat_rows(db)
    assert second >= first + 5, (first, second)
    # committed rows sit in the -wal file: the default autocheckpoint has not run yet
    assert (data / "webui.db-wal").stat().st_size > 0
    assert (data / "uploads" / "welcome.txt").is_file()

    with database(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"user", "chat", "config"} <= tables
        (payload,) = conn.execute("SELECT chat FROM chat ORDER BY id DESC LIMIT 1").fetchone()
        assert 200 <= len(payload) <= 2000
        assert conn.execute("SELECT COUNT(*) FROM user").fetchone()[0] == 1

    stats = httpx.get(f"{webui.url}/api/stats").json()
    assert stats["journal_mode"] == "wal"
    assert stats["chat_rows"] >= second
    assert stats["last_id"] >= stats["chat_rows"]


def test_sigterm_closes_the_database_cleanly(start_standin: StartStandin, tmp_path: Path) -> None:
    data = tmp_path / "data"
    webui = start_standin("webui", {"DATA_DIR": str(data), "STANDIN_WRITE_INTERVAL": "0.02"})
    time.sleep(0.3)
    started = time.monotonic()
    assert webui.stop() == 0
    assert time.monotonic() - started < 3
    rows = chat_rows(data / "webui.db")
    assert rows > 0
    with database(data / "webui.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # a restart carries on from the rows already there
    again = start_standin("webui", {"DATA_DIR": str(data), "STANDIN_WRITE_INTERVAL": "0"})
    assert httpx.get(f"{again.url}/api/stats").json()["chat_rows"] == rows
    time.sleep(0.3)
    assert chat_rows(data / "webui.db") == rows  # interval 0: no writer
