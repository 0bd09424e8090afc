"""Damaged repositories: verify names part, path and object; restore writes nothing."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import pytest

from repository.helpers import backup, object_files, put_manifest
from sbx.errors import IntegrityError
from sbx.repository import Repository, SnapshotManifest
from sbx.repository.format import object_key
from sbx.repository.storage.memory import MemoryStorage

BIG = "data/models/m1/big.bin"


def _object_of(manifest: SnapshotManifest, path: str, index: int = 0) -> str:
    entry = next(e for p in manifest.parts for e in p.entries if e.path == path)
    return entry.extents[index].object


def _flip_byte(repo_dir: Path, object_id: str, at: int = -1) -> None:
    path = repo_dir / object_key(object_id)
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_byte_is_reported_by_verify_and_blocks_restore(
    repo: Repository, repo_dir: Path, src: Path, tmp_path: Path
) -> None:
    manifest = backup(repo, src)
    assert repo.verify().ok
    damaged_id = _object_of(manifest, BIG, 1)
    _flip_byte(repo_dir, damaged_id)
    report = repo.verify(manifest.id)
    assert not report.ok
    assert [(d.snapshot_id, d.part, d.path, d.object) for d in report.damaged] == [
        (manifest.id, "data", BIG, damaged_id)
    ]
    assert "hashes to" in report.damaged[0].reason
    assert report.objects_checked == report.objects_referenced == len(object_files(repo_dir))
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError) as caught:
        repo.restore(manifest.id, target)
    message = str(caught.value)
    assert "'data'" in message and BIG in message and damaged_id in message
    assert not caught.value.retryable
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "src"]  # no staging left


def test_damaged_pack_names_every_file_in_it(repo: Repository, repo_dir: Path, src: Path) -> None:
    manifest = backup(repo, src)
    pack = _object_of(manifest, "data/small/f000")
    users = sorted(
        e.path
        for p in manifest.parts
        for e in p.entries
        if any(extent.object == pack for extent in e.extents)
    )
    assert len(users) > 3
    _flip_byte(repo_dir, pack, at=40)
    report = repo.verify()
    assert sorted(d.path or "" for d in report.damaged) == users
    assert {d.object for d in report.damaged} == {pack}


def test_missing_object_is_damage_in_every_snapshot_using_it(
    repo: Repository, repo_dir: Path, src: Path
) -> None:
    first = backup(repo, src)
    second = backup(repo, src, previous=first)
    gone = _object_of(first, BIG, 0)
    (repo_dir / object_key(gone)).unlink()
    report = repo.verify()
    assert report.snapshots == [first.id, second.id]
    assert [(d.snapshot_id, d.path, d.reason) for d in report.damaged] == [
        (first.id, BIG, "object missing"),
        (second.id, BIG, "object missing"),
    ]


def test_verify_reads_each_object_once(src: Path) -> None:
    class CountingStorage(MemoryStorage):
        def __init__(self) -> None:
            super().__init__()
            self.gets: Counter[str] = Counter()

        def get(self, key: str) -> bytes:
            self.gets[key] += 1
            return super().get(key)

    storage = CountingStorage()
    repo = Repository.open_or_init(storage, chunk_size=64 * 1024, small_file_limit=16 * 1024)
    first = backup(repo, src)
    backup(repo, src, previous=first)
    (src / "data/models/m1/copy.bin").write_bytes((src / "data/models/m1/big.bin").read_bytes())
    backup(repo, src)
    storage.gets.clear()
    report = repo.verify()
    assert report.ok and len(report.snapshots) == 3
    object_gets = {k: n for k, n in storage.gets.items() if k.startswith("objects/")}
    assert set(object_gets.values()) == {1}
    assert len(object_gets) == report.objects_referenced == report.objects_checked


def test_sampled_verify_reads_a_share_of_the_objects(repo: Repository, src: Path) -> None:
    backup(repo, src)
    full = repo.verify()
    sampled = repo.verify(sample=0.5, rng=random.Random(7))
    assert sampled.ok
    assert 0 < sampled.objects_checked < full.objects_checked
    assert sampled.objects_checked == -(-full.objects_referenced // 2)


def test_reordered_chunks_of_a_file_are_caught_by_its_extents_hash(
    repo: Repository, src: Path, tmp_path: Path
) -> None:
    # every object is intact and every extent in bounds: only the file's hash (which covers
    # its extents, in order) can tell that its chunks were put back in the wrong order
    manifest = backup(repo, src)
    raw = manifest.model_dump(mode="json", exclude_none=True)
    raw["id"] = manifest.id[:-1] + ("0" if manifest.id[-1] != "0" else "1")
    for part in raw["parts"]:
        for entry in part["entries"]:
            if entry["path"] == BIG:
                entry["extents"][0], entry["extents"][1] = entry["extents"][1], entry["extents"][0]
    tampered = put_manifest(repo, raw)
    report = repo.verify(tampered)
    assert [(d.path, d.object) for d in report.damaged] == [(BIG, None)]
    assert "hashes to" in report.damaged[0].reason
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError, match="extents hash to"):
        repo.restore(tampered, target)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "src"]


def test_verify_all_holds_one_manifest_at_a_time(src: Path) -> None:
    """Manifests are read one after another and dropped; a second read, only to name the users
    of damage, happens only when something is damaged."""

    class ManifestReads(MemoryStorage):
        def __init__(self) -> None:
            super().__init__()
            self.reads: list[str] = []

        def open(self, key: str) -> BinaryIO:
            if key.startswith("snapshots/"):
                self.reads.append(key)
            return super().open(key)

    storage = ManifestReads()
    repo = Repository.open_or_init(storage, chunk_size=64 * 1024, small_file_limit=16 * 1024)
    first = backup(repo, src)
    second = backup(repo, src, previous=first)
    storage.reads.clear()
    assert repo.verify().ok
    assert len(storage.reads) == 2 and len(set(storage.reads)) == 2
    storage.reads.clear()
    storage.delete(object_key(_object_of(first, BIG, 0)))
    report = repo.verify()
    assert len(storage.reads) == 4  # again, to find every (snapshot, part, path) that uses it
    assert [(d.snapshot_id, d.path) for d in report.damaged] == [(first.id, BIG), (second.id, BIG)]
