"""A damaged object is not reused: the next backup stores it again (as a deleted one is), and
verify names the objects it will replace."""

from __future__ import annotations

from pathlib import Path

import pytest

from repository.helpers import backup
from sbx.repository import Repository, SnapshotManifest
from sbx.repository.format import object_key

BIG = "data/models/m1/big.bin"  # random: its chunks are stored raw
TEXT = "data/compressible.txt"  # chunked and compressible: zstd objects
SMALL_FILE = "data/small/f000"  # lives in a pack


def _extent(manifest: SnapshotManifest, path: str, index: int = 0) -> tuple[str, int]:
    entry = next(e for p in manifest.parts for e in p.entries if e.path == path)
    return entry.extents[index].object, entry.extents[index].length


@pytest.mark.parametrize(
    ("path", "damage"),
    [
        (BIG, lambda data: data[: len(data) // 2]),  # truncated raw chunk
        (TEXT, lambda data: data[:-3]),  # truncated zstd object
        (SMALL_FILE, lambda data: data[: len(data) - 100]),  # truncated pack
        (BIG, lambda data: b"\0" + data[1:]),  # wrong header byte
    ],
    ids=["raw-truncated", "zstd-truncated", "pack-truncated", "bad-magic"],
)
def test_damaged_object_is_rewritten_by_the_next_backup(
    repo: Repository, repo_dir: Path, src: Path, path: str, damage: object
) -> None:
    first = backup(repo, src)
    object_id, _ = _extent(first, path)
    stored = repo_dir / object_key(object_id)
    good = stored.read_bytes()
    stored.write_bytes(damage(good))  # type: ignore[operator]

    report = repo.verify(first.id)
    assert not report.ok
    assert object_id in report.replaced_by_next_backup

    second = backup(Repository.open(repo.storage), src, previous=first)
    assert second.stats.new_objects >= 1
    assert repo.verify(second.id).ok  # the new snapshot references sound objects only
    if path != SMALL_FILE:  # a chunk has one possible content: it is stored again, whole
        assert stored.read_bytes() == good


def test_sound_objects_are_reused_without_being_rewritten(
    repo: Repository, repo_dir: Path, src: Path
) -> None:
    first = backup(repo, src)
    second = backup(Repository.open(repo.storage), src, previous=first)
    assert second.stats.new_objects == 0
    assert second.stats.files_read == 0


def test_verify_does_not_promise_to_replace_a_flipped_byte(
    repo: Repository, repo_dir: Path, src: Path
) -> None:
    """Same size, sound header: the backup's look cannot tell, so verify must not promise."""
    first = backup(repo, src)
    object_id, _ = _extent(first, BIG)
    stored = repo_dir / object_key(object_id)
    data = bytearray(stored.read_bytes())
    data[-1] ^= 1
    stored.write_bytes(bytes(data))
    report = repo.verify(first.id)
    assert not report.ok
    assert report.replaced_by_next_backup == []
