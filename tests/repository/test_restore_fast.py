"""Restore's kernel-copy path (sbx/repository/fastcopy.py) on a local repository: same bytes,
holes and hard links as the general path, and damage still refuses the whole restore."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from repository.helpers import CHUNK, backup
from sbx.errors import IntegrityError
from sbx.repository import Repository
from sbx.repository.format import object_key

BIG = "data/models/m2/shard.bin"


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the bytes each os.copy_file_range call moved (proof the fast path ran)."""
    seen: list[int] = []
    real: Callable[..., int] = os.copy_file_range

    def counting(*args: int) -> int:
        moved = real(*args)
        seen.append(moved)
        return moved

    monkeypatch.setattr(os, "copy_file_range", counting)
    return seen


def _sparse_shard(src: Path) -> bytes:
    """Random chunks with all-zero chunks between and after them, and a short random tail."""
    rng = random.Random(5)
    zero = bytes(CHUNK)
    content = rng.randbytes(CHUNK) + zero + zero + rng.randbytes(CHUNK) + zero + rng.randbytes(99)
    path = src / BIG
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    os.link(path, path.with_name("shard-link.bin"))
    return content


def test_large_raw_files_are_copied_by_the_kernel_with_holes_and_links(
    repo: Repository, tmp_path: Path, copies: list[int]
) -> None:
    src = tmp_path / "src"
    content = _sparse_shard(src)
    manifest = backup(repo, src, parts={"data": ["data"]})
    target = tmp_path / "out"
    report = repo.restore(manifest.id, target)
    restored = target / BIG
    assert restored.read_bytes() == content
    assert report.bytes == len(content)
    # three random chunks went through copy_file_range, the three zero chunks did not
    assert sum(copies) == 2 * CHUNK + 99
    assert restored.stat().st_blocks * 512 < 4 * CHUNK
    link = restored.with_name("shard-link.bin")  # stored first, as the file; BIG links to it
    assert link.stat().st_ino == restored.stat().st_ino
    assert restored.stat().st_mtime_ns == (src / BIG).stat().st_mtime_ns
    assert restored.stat().st_mode == (src / BIG).stat().st_mode


def test_a_damaged_raw_object_refuses_the_restore_and_names_the_file(
    repo: Repository, repo_dir: Path, tmp_path: Path, copies: list[int]
) -> None:
    src = tmp_path / "src"
    _sparse_shard(src)
    manifest = backup(repo, src, parts={"data": ["data"]})
    entry = next(e for p in manifest.parts for e in p.entries if e.type == "file")
    damaged = entry.extents[3].object
    stored = repo_dir / object_key(damaged)
    data = bytearray(stored.read_bytes())
    data[CHUNK // 2] ^= 0x40  # same size, same header: only the hash check can see it
    stored.write_bytes(bytes(data))
    target = tmp_path / "out"
    with pytest.raises(IntegrityError) as caught:
        repo.restore(manifest.id, target)
    assert copies, "the damaged object should have gone the kernel-copy way"
    message = str(caught.value)
    assert entry.path in message and damaged in message and "'data'" in message
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "src"]  # no staging left


def test_a_missing_object_is_named_like_on_the_general_path(
    repo: Repository, repo_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _sparse_shard(src)
    manifest = backup(repo, src, parts={"data": ["data"]})
    entry = next(e for p in manifest.parts for e in p.entries if e.type == "file")
    (repo_dir / object_key(entry.extents[0].object)).unlink()
    with pytest.raises(IntegrityError) as caught:
        repo.restore(manifest.id, tmp_path / "out")
    assert entry.path in str(caught.value)
    assert not (tmp_path / "out").exists()
