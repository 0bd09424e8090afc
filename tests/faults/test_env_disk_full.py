"""The repository's disk fills up during a backup (a 64 MiB tmpfs as the repository's disk).

Expected: the backup fails (exit 1) with an error naming the repository and saying to free
space; no new snapshot is listed; what the failed run wrote is removed again, so the disk is as
full as before, not fuller; after space is freed the next backup works and verifies.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sbx.errors import StorageError
from sbx.repository import Repository
from sbx.repository.storage.local import LocalStorage

from .env_helpers import files_stack, fill, run_cli, tmpfs, used_bytes
from .figures import FaultFigures

MiB = 1 << 20


@pytest.mark.prefect
def test_disk_full_during_backup(
    prefect_server: str, tmp_path: Path, run_id: str, fault_figures: FaultFigures
) -> None:
    stack = files_stack(tmp_path / f"diskfull-{run_id}")
    with tmpfs(tmp_path / "disk", 64) as disk:
        repo = disk / "repo"
        first = run_cli(prefect_server, "backup", "--stack", str(stack), "--repo", str(repo))
        assert first.returncode == 0, first.stderr[-3000:]
        before_ids = Repository.open(repo).list_snapshots()

        # incompressible data the disk cannot hold, in two files (chunks in flight at once)
        (stack / "notes" / "big-1.bin").write_bytes(os.urandom(12 * MiB))
        (stack / "notes" / "big-2.bin").write_bytes(os.urandom(12 * MiB))
        ballast = disk / "ballast"
        fill(ballast, leave_free=10 * MiB)
        used_before = used_bytes(disk)

        failed = run_cli(prefect_server, "backup", "--stack", str(stack), "--repo", str(repo))
        out = failed.stdout + failed.stderr
        assert failed.returncode == 1, out[-3000:]
        assert str(repo) in failed.stderr, failed.stderr[-3000:]
        assert "free space" in failed.stderr.lower(), failed.stderr[-3000:]
        last = failed.stderr.strip().splitlines()[-1]
        assert last.startswith("error: Could not store"), failed.stderr[-3000:]

        after = Repository.open(repo)
        assert after.list_snapshots() == before_ids  # no partial snapshot
        assert list((repo / "tmp").iterdir()) == []  # no in-flight writes left behind
        assert not (repo / "locks" / "writer.json").exists()
        freed = used_bytes(disk) - used_before
        # what the failed run stored was removed: the disk is not fuller than before
        assert freed <= 256 << 10, f"{freed} bytes still used by the failed backup"

        ballast.unlink()
        again = run_cli(prefect_server, "backup", "--stack", str(stack), "--repo", str(repo))
        assert again.returncode == 0, again.stderr[-3000:]
        ids = Repository.open(repo).list_snapshots()
        assert len(ids) == len(before_ids) + 1
        report = Repository.open(repo).verify(ids[-1])
        assert report.ok, report
    fault_figures.add(
        "test_disk_full_during_backup",
        trials_run=1,
        partial_snapshots=len(ids) - len(before_ids) - 1,
    )


def test_disk_full_removes_only_the_failed_snapshots_objects(
    tmp_path: Path, fault_figures: FaultFigures
) -> None:
    """Engine level, two snapshots through one writer: the first is committed, the second fills
    the disk; only the second's objects are removed, the first still verifies."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "first.bin").write_bytes(os.urandom(2 * MiB))
    with tmpfs(tmp_path / "disk", 16) as disk:
        repo = Repository.open_or_init(LocalStorage(disk / "repo"))
        with pytest.raises(StorageError, match="Free space") as caught, repo.writer() as writer:
            writer.begin_snapshot()
            with writer.part("data", "copy") as part:
                part.add_tree(src, "data")
            first = writer.commit()
            used_before = used_bytes(disk)
            (src / "second.bin").write_bytes(os.urandom(24 * MiB))
            writer.begin_snapshot(previous=first)
            with writer.part("data", "copy") as part:
                part.add_tree(src, "data")
            writer.commit()
        assert str(disk / "repo") in str(caught.value)
        assert used_bytes(disk) - used_before <= 256 << 10
        assert Repository.open(disk / "repo").list_snapshots() == [first.id]
        assert Repository.open(disk / "repo").verify(first.id).ok
    fault_figures.add("test_disk_full_removes_only_the_failed_snapshots_objects", trials_run=1)
