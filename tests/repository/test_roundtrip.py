"""Backup then restore: byte-identical trees, the stat cache, packs, chunks and odd files."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from repository.helpers import CHUNK, PARTS, backup, describe, object_files
from sbx.errors import ConfigError
from sbx.repository import Repository
from sbx.repository import content as content_module
from sbx.repository.format import extents_hash

NAMES = [path for paths in PARTS.values() for path in paths]


def test_round_trip_is_byte_identical(repo: Repository, src: Path, tmp_path: Path) -> None:
    manifest = backup(repo, src)
    assert repo.list_snapshots() == [manifest.id]
    report = repo.restore(manifest.id, tmp_path / "restored")
    assert describe(tmp_path / "restored", NAMES) == describe(src, NAMES)
    assert report.parts == ["configs", "data", "notes"]
    assert report.hardlinks == 1 and report.symlinks == 2
    assert report.bytes == manifest.stats.bytes
    # nothing but the target appeared beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "restored", "src"]


def test_round_trip_through_memory_storage(
    memory_repo: Repository, src: Path, tmp_path: Path
) -> None:
    manifest = backup(memory_repo, src)
    memory_repo.restore("latest", tmp_path / "restored")
    assert describe(tmp_path / "restored", NAMES) == describe(src, NAMES)
    assert memory_repo.verify(manifest.id).ok


def test_holes_stay_holes(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    sparse = src / "data/sparse.img"
    with sparse.open("wb") as handle:
        handle.write(b"head")
        handle.truncate(6 * CHUNK)
    manifest = backup(repo, src, parts={"data": ["data"]})
    assert manifest.stats.new_objects == 2  # the head chunk and one all-zero chunk, used 5 times
    repo.restore(manifest.id, tmp_path / "out")
    restored = tmp_path / "out/data/sparse.img"
    assert restored.read_bytes() == sparse.read_bytes()
    assert restored.stat().st_blocks * 512 < 2 * CHUNK


def test_restore_of_some_parts_into_an_existing_empty_dir(
    repo: Repository, src: Path, tmp_path: Path
) -> None:
    manifest = backup(repo, src)
    target = tmp_path / "restored"
    target.mkdir()
    repo.restore(manifest.id, target, parts=["configs"])
    assert sorted(p.name for p in target.iterdir()) == ["docker-compose.yml", "env"]
    names = PARTS["configs"]
    assert describe(target, names) == describe(src, names)


def test_manifest_records_every_kind_of_entry(repo: Repository, src: Path) -> None:
    manifest = backup(repo, src)
    assert repo.load_snapshot(manifest.id) == manifest
    assert repo.load_snapshot("latest") == manifest
    data = manifest.part("data")
    assert data is not None and data.status == "captured"
    by_path = {entry.path: entry for entry in data.entries}
    assert data.entries[0].path == "data"  # pre-order: a directory before its children
    big = by_path["data/models/m1/big.bin"]
    assert [extent.length for extent in big.extents] == [CHUNK, CHUNK, CHUNK, 123]
    # a chunked file's hash covers its extents; each object id is blake3 of its chunk
    assert big.hash == extents_hash(big.extents)
    content = (src / "data/models/m1/big.bin").read_bytes()
    chunks = [content[start : start + CHUNK] for start in range(0, len(content), CHUNK)]
    assert [extent.object for extent in big.extents] == [blake3(c).hexdigest() for c in chunks]
    small = by_path["data/models/m1/config.json"]
    assert small.hash == blake3((src / "data/models/m1/config.json").read_bytes()).hexdigest()
    assert big.stat_key is not None and big.stat_key.size == big.size
    link = by_path["data/hard-b"]
    assert (link.type, link.hardlink_to) == ("hardlink", "data/hard-a")
    assert by_path["data/dangling"].link_target == "missing-file"
    assert by_path["data/link-rel"].link_target == "../docker-compose.yml"
    zero = by_path["data/zero.bin"]
    assert zero.extents == [] and zero.hash == blake3(b"").hexdigest()
    assert by_path["data/empty-dir"].type == "dir"
    assert by_path["data/sticky"].mode == 0o1777
    # small files share pack objects, identical small files share one extent
    small = [e for e in data.entries if e.path.startswith("data/small/f")]
    assert len({e.extents[0].object for e in small}) < len(small) / 4
    assert by_path["data/small/dup-1"].extents == by_path["data/small/dup-2"].extents
    stats = manifest.stats
    assert stats.bytes == stats.new_bytes + stats.reused_bytes
    assert stats.files == sum(e.type == "file" for p in manifest.parts for e in p.entries)
    assert stats.files_read == stats.files
    assert manifest.box == {"compose_sha256": "0" * 64}


def test_compressible_content_is_stored_compressed(repo: Repository, repo_dir: Path) -> None:
    with repo.writer(command="test") as writer:
        writer.begin_snapshot()
        with writer.part("logs", "growing-log") as part:
            part.add_bytes("logs/repetitive.log", b"line\n" * 100_000)
            part.add_bytes("logs/random.bin", os.urandom(100_000))
        manifest = writer.commit()
    assert manifest.stats.stored_bytes < 0.5 * manifest.stats.bytes
    sizes = sorted(path.stat().st_size for path in object_files(repo_dir))
    assert sizes[-1] == CHUNK + 2  # a random chunk stays raw (header only): zstd does not pay


def test_unchanged_second_backup_reads_no_file(
    repo: Repository, repo_dir: Path, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backup(repo, src)
    objects_before = object_files(repo_dir)
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fsdecode(path).startswith(str(src)):
            opened.append(os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    second = backup(repo, src, previous=first)
    assert opened == []
    assert second.stats.files_read == 0
    assert second.stats.new_objects == 0 and second.stats.new_bytes == 0
    assert second.stats.reused_bytes == first.stats.bytes
    assert object_files(repo_dir) == objects_before
    assert [p.entries for p in second.parts] == [p.entries for p in first.parts]


def test_changed_big_file_stores_only_its_changed_chunk(
    repo: Repository, src: Path, tmp_path: Path
) -> None:
    first = backup(repo, src)
    big = src / "data/models/m1/big.bin"
    with big.open("r+b") as handle:
        handle.seek(2 * CHUNK + 10)
        handle.write(b"changed")
    second = backup(repo, src, previous=first)
    assert second.stats.files_read == 1
    assert second.stats.new_objects == 1 and second.stats.new_bytes == CHUNK
    repo.restore(second.id, tmp_path / "restored")
    assert describe(tmp_path / "restored", NAMES) == describe(src, NAMES)


def test_touched_small_file_is_read_but_not_stored_again(repo: Repository, src: Path) -> None:
    first = backup(repo, src)
    os.utime(src / "data/small/f007")
    second = backup(repo, src, previous=first)
    assert second.stats.files_read == 1
    assert second.stats.new_bytes == 0 and second.stats.new_objects == 0


def test_file_that_grows_while_read_keeps_what_was_read(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "src/logs/app.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"a" * (2 * CHUNK))
    real_read = content_module.read_exact
    calls = 0

    def read_and_grow(source: Any, size: int) -> bytes:
        nonlocal calls
        calls += 1
        block = real_read(source, size)
        if calls == 1:
            with log.open("ab") as handle:
                handle.write(b"b" * 1000)
        return block

    monkeypatch.setattr(content_module, "read_exact", read_and_grow)
    manifest = backup(repo, tmp_path / "src", parts={"logs": ["logs"]})
    part = manifest.part("logs")
    assert part is not None
    entry = next(e for e in part.entries if e.path == "logs/app.log")
    assert entry.size == 2 * CHUNK and entry.read_size == 2 * CHUNK + 1000
    assert entry.stat_key is None  # never trusted by the cache
    assert any("changed while being read" in warning for warning in part.warnings)
    monkeypatch.undo()
    repo.restore(manifest.id, tmp_path / "restored")
    assert (tmp_path / "restored/logs/app.log").read_bytes() == log.read_bytes()
    again = backup(repo, tmp_path / "src", previous=manifest, parts={"logs": ["logs"]})
    assert again.stats.files_read == 1


def test_captured_artefacts_keep_the_given_path_mode_and_mtime(
    repo: Repository, tmp_path: Path
) -> None:
    copy = tmp_path / "webui.db.backup"
    copy.write_bytes(b"SQLite format 3\0" + b"x" * 40_000)
    with repo.writer(command="test") as writer:
        writer.begin_snapshot(tags={"trigger": "manual"})
        with writer.part("open-webui", "sqlite-online") as part:
            part.add_file("data/open-webui/webui.db", copy, mode=0o640, mtime_ns=1234567890123)
            part.add_bytes("data/qdrant/c.snapshot", b"snap", mode=0o600, mtime_ns=42)
            part.detail["integrity_check"] = "ok"
        manifest = writer.commit()
    assert manifest.tags == {"trigger": "manual"}
    assert manifest.parts[0].detail == {"integrity_check": "ok"}
    repo.restore(manifest.id, tmp_path / "out")
    db = tmp_path / "out/data/open-webui/webui.db"
    assert db.read_bytes() == copy.read_bytes()
    assert (db.stat().st_mode & 0o7777, db.stat().st_mtime_ns) == (0o640, 1234567890123)
    snap = tmp_path / "out/data/qdrant/c.snapshot"
    assert (snap.read_bytes(), snap.stat().st_mtime_ns) == (b"snap", 42)


def test_sha256_recorded_when_asked_and_cached(repo: Repository, src: Path) -> None:
    def models(previous: Any = None) -> Any:
        with repo.writer(command="test") as writer:
            writer.begin_snapshot(previous=previous)
            with writer.part("models", "immutable") as part:
                part.add_tree(src / "data/models", "data/models", sha256=True)
            return writer.commit()

    first = models()
    entry = next(e for e in first.parts[0].entries if e.path.endswith("big.bin"))
    expected = hashlib.sha256((src / "data/models/m1/big.bin").read_bytes()).hexdigest()
    assert entry.sha256 == expected
    assert models(first).stats.files_read == 0
    plain = backup(repo, src, parts={"data": ["data"]})  # no sha256 recorded
    assert models(plain).stats.files_read == 2  # must read to compute sha256


def test_include_and_exclude(repo: Repository, src: Path) -> None:
    with repo.writer(command="test") as writer:
        writer.begin_snapshot()
        with writer.part("data", "copy") as part:
            part.add_tree(src / "data", "data", exclude=["small", "*.sh"], include=["*.bin"])
        manifest = writer.commit()
    paths = {e.path for e in manifest.parts[0].entries}
    assert "data/models/m1/big.bin" in paths and "data/zero.bin" in paths
    assert "data/models/m1/config.json" not in paths and "data/tool.sh" not in paths
    assert not any(p.startswith("data/small") for p in paths)
    assert "data/empty-dir" in paths  # directories are kept


def test_sockets_and_fifos_are_skipped_with_a_warning(repo: Repository, tmp_path: Path) -> None:
    root = tmp_path / "run"
    root.mkdir()
    os.mkfifo(root / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock"))
    try:
        manifest = backup(repo, tmp_path, parts={"run": ["run"]})
    finally:
        server.close()
    part = manifest.parts[0]
    assert [e.path for e in part.entries] == ["run"]
    assert part.stats.skipped == 2
    assert sorted(part.warnings) == [
        "run/fifo skipped: a fifo (not backed up)",
        "run/sock skipped: a socket (not backed up)",
    ]


def test_missing_root_adds_nothing_and_overlaps_are_refused(repo: Repository, src: Path) -> None:
    with repo.writer(command="test") as writer:
        writer.begin_snapshot()
        with writer.part("configs", "copy") as part:
            assert part.add_tree(src / "compose.yaml", "compose.yaml") == 0
            assert part.add_tree(src / "env", "env") == 2
        with pytest.raises(ConfigError, match="backed up twice"), writer.part("more", "copy") as p:
            p.add_tree(src / "env", "env")
        with pytest.raises(ConfigError, match=r"'\.\.' part"):
            writer.part("bad", "copy").add_tree(src / "env", "../env")


def test_skipped_and_failed_parts_are_recorded(repo: Repository, src: Path) -> None:
    with repo.writer(command="test") as writer:
        writer.begin_snapshot()
        with writer.part("qdrant", "qdrant-snapshot") as part:
            part.skip("data/qdrant is not present")
        with writer.part("notes", "copy") as part:
            part.add_tree(src / "notes", "notes")
            part.fail("disk error")
        manifest = writer.commit()
    assert [(p.name, p.status, p.reason, p.entries) for p in manifest.parts] == [
        ("qdrant", "skipped", "data/qdrant is not present", []),
        ("notes", "failed", "disk error", []),
    ]


def test_a_part_that_raises_is_recorded_failed_and_the_snapshot_goes_on(
    repo: Repository, tmp_path: Path
) -> None:
    with repo.writer(command="test") as writer:
        writer.begin_snapshot()
        with pytest.raises(RuntimeError), writer.part("qdrant", "qdrant-snapshot") as part:
            part.add_bytes("data/qdrant/a.snapshot", b"shared small content")
            raise RuntimeError("snapshot API answered 500")
        with writer.part("notes", "copy") as part:
            part.add_bytes("notes/b.md", b"shared small content")  # was in the dropped pack
        manifest = writer.commit()
    failed, _notes = manifest.parts
    assert (failed.status, failed.reason) == ("failed", "RuntimeError: snapshot API answered 500")
    assert repo.verify().ok
    repo.restore(manifest.id, tmp_path / "out")
    assert (tmp_path / "out/notes/b.md").read_bytes() == b"shared small content"
    assert not (tmp_path / "out/data").exists()


def test_a_linked_part_root_is_captured_through_and_links_restore_verbatim(
    repo: Repository, tmp_path: Path
) -> None:
    real = tmp_path / "big-disk/models"
    real.mkdir(parents=True)
    (real / "weights.bin").write_bytes(b"w" * 100)
    stack = tmp_path / "stack"
    (stack / "data").mkdir(parents=True)
    (stack / "data/models").symlink_to(real)
    (stack / "data/localtime").symlink_to("/etc/localtime")
    manifest = backup(repo, stack, parts={"data": ["data/models", "data/localtime"]})
    part = manifest.parts[0]
    assert [(e.path, e.type) for e in part.entries] == [
        ("data/models", "dir"),
        ("data/models/weights.bin", "file"),
        ("data/localtime", "symlink"),
    ]
    assert part.detail["root_links"] == {"data/models": str(real)}
    assert not part.warnings
    assert repo.verify().ok
    out = tmp_path / "out"
    repo.restore(manifest.id, out)
    assert not (out / "data/models").is_symlink()
    assert (out / "data/models/weights.bin").read_bytes() == b"w" * 100
    assert os.readlink(out / "data/localtime") == "/etc/localtime"
