"""Consistent copies of live SQLite databases (Open WebUI's webui.db) with the online backup API.

Copying a WAL-mode database file while the app writes gives a torn or stale copy (the newest
commits live in `-wal`). SQLite's backup API reads a consistent snapshot through a normal
connection, WAL included, and restarts by itself when a writer changes pages under it. The copy
is checked with `PRAGMA integrity_check` before it is stored.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from sbx.errors import SqliteCopyError

SQLITE_MAGIC = b"SQLite format 3\x00"
DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")
#: files that belong to a live database and must not be copied beside its consistent copy
SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")


class SqliteCopy(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: Path
    copy_path: Path
    pages: int
    integrity: str
    tables: dict[str, int]  # row counts at the moment of the copy


def is_sqlite_database(path: Path) -> bool:
    if path.suffix not in DB_SUFFIXES or not path.is_file() or path.is_symlink():
        return False
    with path.open("rb") as handle:
        return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def copy_database(source: Path, dest: Path, *, busy_timeout_s: float = 30.0) -> SqliteCopy:
    """Copy ``source`` into ``dest`` with the online backup API and check the copy."""
    try:
        src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True, timeout=busy_timeout_s)
        try:
            out = sqlite3.connect(dest)
            try:
                src.backup(out)  # whole database in one step: one consistent read snapshot
                integrity = str(out.execute("PRAGMA integrity_check").fetchone()[0])
                pages = int(out.execute("PRAGMA page_count").fetchone()[0])
                tables = _row_counts(out)
            finally:
                out.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise SqliteCopyError(
            f"Online backup of SQLite database {source} failed ({exc}). Retry; if it persists "
            "check the file with 'sqlite3 FILE \"PRAGMA integrity_check\"'."
        ) from exc
    if integrity != "ok":
        raise SqliteCopyError(
            f"The backup copy of {source} fails PRAGMA integrity_check ({integrity[:200]}). "
            "The live database may be damaged: check it before trusting new backups.",
            retryable=False,
        )
    return SqliteCopy(
        source=source, copy_path=dest, pages=pages, integrity=integrity, tables=tables
    )


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    # names come from the database itself, quoted as identifiers
    return {
        name: int(
            conn.execute(f'SELECT count(*) FROM "{name.replace(chr(34), chr(34) * 2)}"').fetchone()[  # noqa: S608
                0
            ]
        )
        for name in names
    }
