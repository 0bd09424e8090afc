"""Where restore writes: across file systems, into mount points, and only the chosen parts'
paths with --force. Mounts are tmpfs (root only; skipped, saying so, otherwise)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from repository.helpers import CHUNK, PACK, SMALL, backup, describe
from sbx.errors import RepositoryError, RestoreRefused
from sbx.repository import Repository
from sbx.repository.storage.local import LocalStorage

Mount = Callable[[Path], Path]


@pytest.fixture
def mount() -> Iterator[Mount]:
    """Mounts a fresh tmpfs at a directory (made if missing); unmounted at the end."""
    mounted: list[Path] = []

    def make(where: Path) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(where)],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"needs root to mount a tmpfs: {done.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield make
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def _stack(root: Path) -> Path:
    """A stack with three parts below data/ and a chunked model file (the fast path)."""
    for name, size in (("models", 3 * CHUNK + 17), ("qdrant", 3000), ("open-webui", 2 * SMALL)):
        part = root / "data" / name
        (part / "sub").mkdir(parents=True)
        (part / "sub" / "blob").write_bytes(os.urandom(size))
        (part / "small.txt").write_text(f"{name}\n")
    (root / "data/models/link-in").symlink_to("sub/blob")
    return root


PARTS = {"models": ["data/models"], "qdrant": ["data/qdrant"], "webui": ["data/open-webui"]}
NAMES = [f"data/{name}" for name in ("models", "qdrant", "open-webui")]  # the parts


def _open(where: Path) -> Repository:
    return Repository.open_or_init(
        LocalStorage(where), chunk_size=CHUNK, small_file_limit=SMALL, pack_size=PACK
    )


@pytest.mark.parametrize("repo_on_tmpfs", [True, False], ids=["repo-tmpfs", "target-tmpfs"])
def test_restore_across_file_systems(mount: Mount, tmp_path: Path, repo_on_tmpfs: bool) -> None:
    src = _stack(tmp_path / "src")
    repo_dir = mount(tmp_path / "m") / "repo" if repo_on_tmpfs else tmp_path / "repo"
    target = tmp_path / "target" if repo_on_tmpfs else mount(tmp_path / "m") / "target"
    repo = _open(repo_dir)
    manifest = backup(repo, src, parts=PARTS)
    repo.restore(manifest.id, target)
    assert describe(target, NAMES) == describe(src, NAMES)


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL])
def test_kernel_copy_refused_falls_back_to_a_plain_copy(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    src = _stack(tmp_path / "src")
    manifest = backup(repo, src, parts=PARTS)
    calls: list[int] = []

    def refuse(*args: object) -> int:
        calls.append(code)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "copy_file_range", refuse)
    repo.restore(manifest.id, tmp_path / "out")
    assert calls  # the fast path ran and was refused
    assert describe(tmp_path / "out", NAMES) == describe(src, NAMES)


@pytest.mark.parametrize("lost_found", [False, True], ids=["bare", "lost+found"])
def test_restore_into_an_empty_mount_point(
    repo: Repository, mount: Mount, tmp_path: Path, lost_found: bool
) -> None:
    src = _stack(tmp_path / "src")
    manifest = backup(repo, src, parts=PARTS)
    target = mount(tmp_path / "disk")
    if lost_found:
        (target / "lost+found").mkdir()  # what a fresh ext4 holds: still empty for a restore
    repo.restore(manifest.id, target)
    assert describe(target, NAMES) == describe(src, NAMES)
    assert os.path.ismount(target)
    assert sorted(p.name for p in target.iterdir()) == ["data", *(["lost+found"] * lost_found)]


def test_force_over_a_mount_point_replaces_only_the_restored_paths(
    repo: Repository, mount: Mount, tmp_path: Path
) -> None:
    src = _stack(tmp_path / "src")
    manifest = backup(repo, src, parts=PARTS)
    target = mount(tmp_path / "disk")
    (target / "data/models").mkdir(parents=True)
    (target / "data/models/stale").write_text("old")
    (target / "data/elsewhere").mkdir()
    (target / "data/elsewhere/keep").write_text("mine")
    repo.restore(manifest.id, target, force=True)
    assert describe(target, NAMES) == describe(src, NAMES)
    assert not (target / "data/models/stale").exists()
    assert (target / "data/elsewhere/keep").read_text() == "mine"
    assert sorted(p.name for p in target.iterdir()) == ["data"]  # no staging left behind


def test_part_force_replaces_exactly_that_parts_paths(repo: Repository, tmp_path: Path) -> None:
    src = _stack(tmp_path / "src")
    manifest = backup(repo, src, parts=PARTS)
    target = tmp_path / "target"
    repo.restore(manifest.id, target)
    (target / "data/qdrant/newer").write_text("written after the backup")
    (target / "data/open-webui/small.txt").write_text("changed")
    (target / "data/models/sub/blob").write_bytes(b"damaged")
    before = describe(target, ["data/qdrant", "data/open-webui"])
    repo.restore(manifest.id, target, ["models"], force=True)
    assert describe(target, ["data/qdrant", "data/open-webui"]) == before
    assert describe(target, ["data/models"]) == describe(src, ["data/models"])


def test_a_failed_move_puts_the_target_back(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _stack(tmp_path / "src")
    manifest = backup(repo, src, parts=PARTS)
    target = tmp_path / "target"
    target.mkdir()
    (target / "data/qdrant").mkdir(parents=True)
    (target / "data/qdrant/old").write_text("old")
    (target / "data/open-webui").mkdir()
    kept = ["data/qdrant", "data/open-webui"]
    before = describe(target, kept)
    real = os.rename
    moved: list[str] = []

    def fail_third(src_name: str, dst_name: str, **fds: int) -> None:
        moved.append(src_name)
        if len(moved) == 4:  # models in; qdrant aside, in; open-webui aside: then the disk fails
            raise OSError(errno.EIO, "Input/output error")
        real(src_name, dst_name, **fds)

    monkeypatch.setattr(os, "rename", fail_third)
    with pytest.raises(RepositoryError, match=r"open-webui into place: .* target is as it was"):
        repo.restore(manifest.id, target, force=True)
    monkeypatch.undo()
    assert describe(target, kept) == before
    assert sorted(p.name for p in (target / "data").iterdir()) == ["open-webui", "qdrant"]
    assert sorted(p.name for p in target.iterdir()) == ["data"]


def test_restore_never_writes_through_a_link_in_the_target(
    repo: Repository, tmp_path: Path
) -> None:
    src = _stack(tmp_path / "src")
    manifest = backup(repo, src, parts=PARTS)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "data").symlink_to(outside)
    with pytest.raises(RestoreRefused, match=r"target/data is a symlink .* never writes through"):
        repo.restore(manifest.id, target, ["models"], force=True)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in target.iterdir()) == ["data"]


@pytest.mark.parametrize("kind", ["mount point", "symlink"])
def test_in_place_refuses_a_live_path_a_rename_cannot_swap(
    repo: Repository, mount: Mount, tmp_path: Path, kind: str
) -> None:
    from blocks.config import SbxConfig
    from tasks.restore.in_place import check_swappable

    stack = _stack(tmp_path / "stack")
    manifest = backup(repo, stack, parts={"models": ["data/models"], "notes": ["data/qdrant"]})
    live = stack / "data/models"
    if kind == "mount point":
        mount(live)
    else:
        live.rename(tmp_path / "disk-models")
        live.symlink_to(tmp_path / "disk-models")
    config = SbxConfig(stack_dir=stack)
    check_swappable(manifest, ["notes"], config)  # the other part swaps as before
    with pytest.raises(RestoreRefused, match=f"data/models .part 'models'. is a {kind}"):
        check_swappable(manifest, None, config)


def test_a_mount_point_inside_the_target_is_refused_and_kept(
    repo: Repository, mount: Mount, tmp_path: Path
) -> None:
    src = _stack(tmp_path / "src")
    manifest = backup(repo, src, parts=PARTS)
    target = tmp_path / "target"
    models = mount(target / "data/models")
    (models / "weights").write_text("live")
    with pytest.raises(RepositoryError, match=r"data/models into place: it is a mount point"):
        repo.restore(manifest.id, target, ["models"], force=True)
    assert os.path.ismount(models)
    assert [p.name for p in models.iterdir()] == ["weights"]
    assert sorted(p.name for p in target.iterdir()) == ["data"]
