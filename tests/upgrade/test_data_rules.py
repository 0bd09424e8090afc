"""The rules behind an upgrade's data rollback, without Docker: which parts, the fingerprint,
prune's protection of pre-upgrade snapshots, the data version of webui.db, and the refusal to
restore data into an older image (tasks/upgrade/data.py, tasks/backup/prune.py,
tasks/restore/versions.py)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from blocks.config import SbxConfig
from sbx.repository import RetentionPolicy, SnapshotSummary
from sbx.repository.format import PartRecord, SnapshotManifest
from sbx.repository.retention import plan_prune
from tasks.backup.box_state import alembic_revision
from tasks.backup.prune import pre_upgrade_kept
from tasks.restore.versions import older_images, version_key
from tasks.upgrade.data_units import data_parts, file_prints, fingerprint_data

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _summary(snapshot_id: str, days_ago: float, tags: dict[str, str]) -> SnapshotSummary:
    return SnapshotSummary(
        id=snapshot_id, created_at=NOW - timedelta(days=days_ago), host="box", tags=tags
    )


def test_pre_upgrade_snapshots_are_kept_while_open_or_recent() -> None:
    listed = [
        _summary("20261101T000000Z-00000aaa", 36, {"trigger": "pre-upgrade", "pre-upgrade": "e1"}),
        _summary("20261102T000000Z-00000bbb", 35, {"trigger": "pre-upgrade", "pre-upgrade": "e2"}),
        _summary("20261205T000000Z-00000ccc", 2, {"trigger": "pre-upgrade", "pre-upgrade": "e3"}),
        _summary("20261206T000000Z-00000ddd", 1, {"trigger": "manual"}),
    ]
    kept = pre_upgrade_kept(listed, "e2", keep_days=14, now=NOW)
    assert kept == ["20261102T000000Z-00000bbb", "20261205T000000Z-00000ccc"]
    assert pre_upgrade_kept(listed, None, keep_days=0, now=NOW) == []
    # and the planner keeps what is protected, whatever the policy says
    plan = plan_prune(
        [(s.id, s.created_at) for s in listed], RetentionPolicy(keep_last=1, keep_daily=0,
        keep_weekly=0, keep_monthly=0), protected=kept,
    )  # fmt: skip
    assert sorted(plan.remove) == ["20261101T000000Z-00000aaa"]
    assert "protected" in plan.keep["20261102T000000Z-00000bbb"]


def test_data_parts_are_the_services_mutable_parts(tmp_path: Path) -> None:
    config = SbxConfig(stack_dir=tmp_path)
    assert data_parts(config, ["open-webui"]) == ["open-webui"]
    assert data_parts(config, ["qdrant", "open-webui"]) == ["qdrant", "open-webui"]
    assert data_parts(config, ["worker"]) == []  # models: immutable, never part of it


def _webui(stack: Path) -> Path:
    db = stack / "data" / "open-webui" / "webui.db"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    with conn:
        conn.execute("CREATE TABLE chat (id INTEGER PRIMARY KEY, title TEXT)")
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('7826ab40b532')")
        conn.execute("INSERT INTO chat (title) VALUES ('one')")
    conn.close()
    (db.parent / "uploads").mkdir()
    (db.parent / "uploads" / "a.txt").write_text("a")
    return db


def test_fingerprint_sees_rows_and_files_not_a_checkpoint(tmp_path: Path) -> None:
    config = SbxConfig(stack_dir=tmp_path)
    db = _webui(tmp_path)
    files = file_prints(config, "open-webui")
    assert set(files) == {"data/open-webui/webui.db", "data/open-webui/uploads/a.txt"}
    assert files["data/open-webui/webui.db"].startswith("sqlite:")
    before = fingerprint_data(config, ["open-webui"])
    assert list(before) == ["open-webui"]
    # a reader that opens, checkpoints and closes changes files, not data
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert fingerprint_data(config, ["open-webui"]) == before
    conn = sqlite3.connect(db)
    with conn:  # a row written by a new image (kept in the -wal while the connection is open)
        conn.execute("INSERT INTO chat (title) VALUES ('two')")
    after = fingerprint_data(config, ["open-webui"])
    conn.close()
    assert after != before
    (db.parent / "uploads" / "b.txt").write_text("b")  # a new upload
    assert fingerprint_data(config, ["open-webui"]) not in (before, after)
    assert alembic_revision(db) == "7826ab40b532"
    assert alembic_revision(tmp_path / "missing.db") is None


def _manifest(version: str, data_version: str | None) -> SnapshotManifest:
    return SnapshotManifest(
        id="20261207T120000Z-00000abc",
        created_at=NOW,
        finished_at=NOW,
        host="box",
        sbx_version="0",
        box={"services": {"open-webui": {"version": version, "data_version": data_version}}},
        parts=[PartRecord(name="open-webui", method="sqlite-online"), PartRecord(name="notes",
               method="copy")],
    )  # fmt: skip


def test_data_into_an_older_image_is_named_with_both_versions(tmp_path: Path) -> None:
    config = SbxConfig(stack_dir=tmp_path)
    assert version_key("0.5.4-standin") == (0, 5, 4)
    assert version_key("v1.12.4") == (1, 12, 4)
    assert version_key("dev") is None
    newer = _manifest("0.5.4-standin", "3781e22d8b01")
    problems = older_images(newer, None, config, {"open-webui": "0.3.35-standin"})
    assert list(problems) == ["open-webui"]
    assert "open-webui 0.5.4-standin, data version 3781e22d8b01" in problems["open-webui"]
    assert "now runs 0.3.35-standin" in problems["open-webui"]
    # same or newer image, a part not restored, or a version nobody can read: no objection
    assert older_images(newer, None, config, {"open-webui": "0.5.4"}) == {}
    assert older_images(newer, None, config, {"open-webui": "0.6.0"}) == {}
    assert older_images(newer, ["notes"], config, {"open-webui": "0.3.35"}) == {}
    assert older_images(newer, None, config, {"open-webui": None}) == {}


def test_a_volume_of_newer_data_into_the_older_image_is_named_too(tmp_path: Path) -> None:
    """The stock Open WebUI compose file keeps webui.db in a named volume: the part is the
    compose-filled ``volumes``, with no configured service; its sources name who mounts it."""
    config = SbxConfig(stack_dir=tmp_path)
    source = {"from": "box_open-webui", "stored_as": "volumes/box_open-webui",
              "status": "captured", "kind": "volume", "services": ["open-webui"]}  # fmt: skip
    other = {**source, "from": "box_notes", "services": ["notes"]}
    newer = SnapshotManifest(
        id="20261207T120000Z-00000abc", created_at=NOW, finished_at=NOW, host="box",
        sbx_version="0", box={"services": {"open-webui": {"version": "0.5.4-standin"}}},
        parts=[PartRecord(name="volumes", method="docker-volume",
                          detail={"sources": [source, other]})],
    )  # fmt: skip
    problems = older_images(newer, ["volumes"], config, {"open-webui": "0.3.35-standin"})
    assert problems == {
        "volumes": "part 'volumes' was written by open-webui 0.5.4-standin; open-webui now "
        "runs 0.3.35-standin, an older image"
    }
    assert older_images(newer, None, config, {"open-webui": "0.5.4"}) == {}
    gone = {**source, "status": "missing"}
    elsewhere = newer.model_copy(update={"parts": [newer.parts[0].model_copy(
        update={"detail": {"sources": [gone, other]}})]})  # fmt: skip
    assert older_images(elsewhere, None, config, {"open-webui": "0.3.35"}) == {}
