"""The main job end to end on the running example stack: backup → restore → same data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bed import RunningStack
from bed.qdrant_seed import qdrant_client, seed_qdrant, snapshot_files
from helpers import decorate_stack, describe_tree, max_chat_id
from pydantic import SecretStr

from flows.backup import backup_stack
from flows.restore import restore_snapshot
from flows.verify import verify_repository
from tasks.clients.qdrant import connect as connect_qdrant

FILE_PARTS = [
    "docker-compose.yml",
    "docker-compose.override.yml",
    "env",
    "proxy",  # in the configs part: the proxy's keys and certificate
    "data/models",
    "notes",
    "agents",
    "logs",
]


def test_round_trip_with_writers_active(
    running_stack: RunningStack, prefect_server: str, tmp_path: Path
) -> None:
    stack = running_stack.path
    decorate_stack(stack)
    seed_qdrant(
        running_stack.url("qdrant"), {"docs": 300, "memories": 40}, running_stack.api_key("qdrant")
    )
    webui_db = stack / "data" / "open-webui" / "webui.db"
    committed_before = max_chat_id(webui_db)  # the stand-in keeps committing rows meanwhile
    before = describe_tree(stack, FILE_PARTS)

    repo = tmp_path / "repo"
    report = backup_stack(stack=str(stack), repo=str(repo))
    parts = {p.name: p for p in report.parts}
    assert {n: p.status for n, p in parts.items()} == dict.fromkeys(parts, "captured")
    assert parts["qdrant"].mode == "snapshot-api"
    assert snapshot_files(stack) == []  # sbx's snapshots are deleted on the live box
    assert parts["open-webui"].mode == "sqlite-online-backup"
    assert report.docker and report.project == running_stack.project
    assert verify_repository(snapshot=report.snapshot_id, repo=str(repo)).ok

    target = tmp_path / "restored"
    outcome = restore_snapshot(snapshot="latest", to=str(target), repo=str(repo))
    assert outcome.snapshot_id == report.snapshot_id

    # files: byte-identical, with modes, mtimes, symlinks (dangling too), empty dirs, hard links
    assert describe_tree(target, FILE_PARTS) == before

    # open-webui: a consistent database holding every row committed before the backup began
    restored_db = target / "data" / "open-webui" / "webui.db"
    # the live -wal/-shm are never copied beside the consistent copy (stale ones would corrupt it)
    assert not (target / "data" / "open-webui" / "webui.db-wal").exists()
    assert not (target / "data" / "open-webui" / "webui.db-shm").exists()
    conn = sqlite3.connect(restored_db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT max(id) FROM chat").fetchone()[0] >= committed_before
    conn.close()

    # qdrant: collections recovered through the API have the same point counts
    snapshots = target / "data" / "qdrant" / ".sbx-api-snapshots"
    qdrant_key = SecretStr(running_stack.api_key("qdrant") or "")
    client = qdrant_client(running_stack.url("qdrant"), running_stack.api_key("qdrant"))
    for name in ("docs", "memories"):
        client.delete_collection(name)
    with connect_qdrant(running_stack.url("qdrant"), api_key=qdrant_key) as qdrant:
        assert qdrant.recover_from_file("docs", snapshots / "docs.snapshot") == 300
        assert qdrant.recover_from_file("memories", snapshots / "memories.snapshot") == 40
    assert snapshot_files(stack) == []  # and so are the uploads Qdrant keeps
    client.close()
