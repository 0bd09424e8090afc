"""The capture methods' own files: SHA256SUMS of models, live SQLite databases by exact path."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from blocks.config import ConsistencyMethod, PartConfig, SbxConfig
from sbx.repository import PartRecord, Repository
from sbx.repository.storage.local import LocalStorage
from tasks.backup.capture import CaptureContext
from tasks.backup.methods import METHODS


def capture(tmp_path: Path, stack: Path, paths: list[str], method: ConsistencyMethod) -> PartRecord:
    repo = Repository.open_or_init(LocalStorage(tmp_path / "repo"))
    ctx = CaptureContext(SbxConfig(stack_dir=stack), status=None)
    part = PartConfig(paths=paths, method=method)
    with repo.writer() as writer:
        writer.begin_snapshot(stack_dir=stack)
        with writer.part("p", method.value) as out:
            METHODS[method](out, paths, part, ctx)
        record = out.close()
        writer.commit()
    return record


def test_sha256sums_symlink_is_never_written_through(tmp_path: Path) -> None:
    stack, outside = tmp_path / "stack", tmp_path / "outside"
    model = stack / "data/models/m1"
    model.mkdir(parents=True)
    outside.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 100)
    (model / "SHA256SUMS").symlink_to(outside / "out")
    record = capture(tmp_path, stack, ["data/models"], ConsistencyMethod.IMMUTABLE)
    assert not (outside / "out").exists()
    assert (model / "SHA256SUMS").is_symlink()
    assert any("SHA256SUMS is a symlink" in w for w in record.warnings)


def test_sha256sums_escapes_names_as_coreutils_does(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    model = stack / "data/models/m1"
    model.mkdir(parents=True)
    (model / "evil\nd41d8cd98f00b204e9800998ecf8427e  injected").write_bytes(b"x")
    (model / "back\\slash").write_bytes(b"y")
    (model / "plain").write_bytes(b"z")
    capture(tmp_path, stack, ["data/models"], ConsistencyMethod.IMMUTABLE)
    lines = (model / "SHA256SUMS").read_text().split("\n")
    x, y, z = (hashlib.sha256(data).hexdigest() for data in (b"x", b"y", b"z"))
    assert lines == [
        f"\\{y}  back\\\\slash",
        f"\\{x}  evil\\nd41d8cd98f00b204e9800998ecf8427e  injected",
        f"{z}  plain",
        "",
    ]
    assert not [p for p in os.listdir(model) if p.startswith(".SHA256SUMS")]  # no temp left


def test_sha256sums_escaped_lines_are_checked(tmp_path: Path) -> None:
    """A name written escaped is read back unescaped: a damaged file is still found."""
    stack = tmp_path / "stack"
    model = stack / "data/models/m1"
    model.mkdir(parents=True)
    (model / "a\nb").write_bytes(b"x")
    (model / "SHA256SUMS").write_text("\\" + "0" * 64 + "  a\\nb\n")  # as sha256sum writes it
    record = capture(tmp_path, stack, ["data/models"], ConsistencyMethod.IMMUTABLE)
    assert any("sha256 differs" in w for w in record.warnings), record.warnings


def _db(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("create table t (x)")
        conn.execute("insert into t values (1)")
    conn.close()


@pytest.mark.parametrize("db_name", ["webui.db", "web[ui].db", "w*.db"])
def test_sqlite_exclusions_are_exact_paths(tmp_path: Path, db_name: str) -> None:
    """Only the live databases themselves are left to the online backup: an upload with the
    same name, or another ``*.db`` file, is copied like any file, and names with glob
    characters work."""
    stack = tmp_path / "stack"
    webui = stack / "data/open-webui"
    _db(webui / db_name)
    (webui / "uploads").mkdir()
    (webui / "uploads" / db_name).write_bytes(b"an upload, not a database")
    (webui / "notes.db").write_bytes(b"not sqlite either")
    (webui / "wx.db").write_bytes(b"glob bait")
    record = capture(tmp_path, stack, ["data/open-webui"], ConsistencyMethod.SQLITE_ONLINE)
    assert record.status == "captured", record.reason
    paths = {e.path for e in record.entries if e.type == "file"}
    assert paths == {
        f"data/open-webui/{db_name}",
        f"data/open-webui/uploads/{db_name}",
        "data/open-webui/notes.db",
        "data/open-webui/wx.db",
    }


def test_drill_reads_escaped_sha256sums_lines(tmp_path: Path) -> None:
    """The drill checks a restored model directory by the same rules sbx wrote it with."""
    from tasks.drill.data import _sums

    stack = tmp_path / "stack"
    model = stack / "data/models/m1"
    model.mkdir(parents=True)
    (model / "a\nb").write_bytes(b"x")
    (model / "c\\d").write_bytes(b"y")
    capture(tmp_path, stack, ["data/models"], ConsistencyMethod.IMMUTABLE)
    outcome = _sums(stack, "data/models/m1/SHA256SUMS")
    assert "2 files match" in str(outcome), outcome


def test_sha256sums_new_file_is_world_readable_and_atomic(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    model = stack / "data/models/m1"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w")
    capture(tmp_path, stack, ["data/models"], ConsistencyMethod.IMMUTABLE)
    sums = model / "SHA256SUMS"
    assert sums.stat().st_mode & 0o777 == 0o644
    assert sums.read_text() == f"{hashlib.sha256(b'w').hexdigest()}  weights.bin\n"
