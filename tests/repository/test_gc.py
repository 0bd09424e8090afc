"""Crashes mid-write, prune and garbage collection (and their dry run)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from blocks.config import RetentionPolicy
from repository.helpers import backup, object_files
from sbx.errors import ManifestInvalid, PolicyRefused, RepositoryLocked, StorageError
from sbx.repository import Repository
from sbx.repository.format import snapshot_key
from sbx.repository.lock import boot_id
from sbx.repository.retention import PrunePlan
from sbx.repository.storage.memory import MemoryStorage


def _referenced(repo: Repository) -> set[str]:
    return {o for i in repo.list_snapshots() for o in repo.load_snapshot(i).object_ids()}


def test_crash_mid_write_leaves_the_snapshot_list_alone(
    repo: Repository, repo_dir: Path, src: Path
) -> None:
    first = backup(repo, src)
    (src / "data/new.bin").write_bytes(os.urandom(300_000))
    with pytest.raises(RuntimeError, match="killed"), repo.writer(command="crashing") as writer:
        writer.begin_snapshot(previous=first)
        with writer.part("data", "copy") as part:
            part.add_tree(src / "data", "data")
        raise RuntimeError("killed")
    assert repo.list_snapshots() == [first.id]
    assert list((repo_dir / "tmp").iterdir()) == []
    assert list(repo.storage.list("locks/")) == []
    assert repo.verify().ok
    orphans = {p.name for p in object_files(repo_dir)} - _referenced(repo)
    assert orphans  # the new file's chunks were stored before the crash
    report = repo.collect_garbage()
    assert report.objects_deleted == len(orphans) and report.bytes_freed > 0
    assert {p.name for p in object_files(repo_dir)} == _referenced(repo)
    assert repo.verify().ok


def test_storage_failure_mid_write_commits_nothing(src: Path) -> None:
    storage = MemoryStorage()
    repo = Repository.open_or_init(storage, chunk_size=64 * 1024, small_file_limit=16 * 1024)
    storage.fail_after = storage.puts + 5  # the lock and a few objects, then failures
    with pytest.raises(StorageError) as caught:
        backup(repo, src)
    assert caught.value.retryable
    storage.fail_after = None
    assert repo.list_snapshots() == []
    assert not storage.exists("locks/writer.json")
    assert repo.collect_garbage().objects_deleted > 0
    assert list(storage.list("objects/")) == []


def test_prune_dry_run_reports_what_prune_does(repo: Repository, repo_dir: Path, src: Path) -> None:
    ids = []
    for round_ in range(3):
        (src / "data/changing.bin").write_bytes(os.urandom(100_000 + round_))
        ids.append(backup(repo, src).id)
    plan = PrunePlan(policy={"keep_last": 1}, keep={ids[2]: ["last 1"]}, remove=ids[:2])
    before = object_files(repo_dir)
    dry = repo.prune(plan, dry_run=True)
    assert object_files(repo_dir) == before and repo.list_snapshots() == ids
    real = repo.prune(plan)
    assert dry.dry_run and not real.dry_run
    same = {"removed", "kept", "manifest_bytes_freed"}
    assert dry.model_dump(include=same) == real.model_dump(include=same)
    gc_numbers = {"snapshots", "objects_total", "objects_deleted", "bytes_freed", "tmp_deleted"}
    assert dry.gc.model_dump(include=gc_numbers) == real.gc.model_dump(include=gc_numbers)
    assert real.removed == ids[:2] and real.gc.objects_deleted >= 2
    assert repo.list_snapshots() == [ids[2]]
    assert {p.name for p in object_files(repo_dir)} == _referenced(repo)
    assert repo.verify().ok


def test_prune_through_the_policy_keeps_the_newest(repo: Repository, src: Path) -> None:
    first = backup(repo, src)
    second = backup(repo, src, previous=first)
    plan = repo.plan_prune(RetentionPolicy(keep_last=1, keep_daily=0))
    assert plan.remove == [first.id] and list(plan.keep) == [second.id]
    assert repo.prune(plan).removed == [first.id]
    assert repo.list_snapshots() == [second.id]


def test_prune_refuses_to_delete_every_or_the_newest_snapshot(repo: Repository, src: Path) -> None:
    first = backup(repo, src)
    second = backup(repo, src, previous=first)
    everything = PrunePlan(policy={}, keep={}, remove=[first.id, second.id])
    with pytest.raises(PolicyRefused, match="every snapshot"):
        repo.prune(everything)
    newest = PrunePlan(policy={}, keep={first.id: ["x"]}, remove=[second.id])
    with pytest.raises(PolicyRefused, match="newest snapshot"):
        repo.prune(newest)
    assert repo.list_snapshots() == [first.id, second.id]


def test_gc_deletes_nothing_while_a_manifest_is_unreadable(
    repo: Repository, repo_dir: Path, src: Path
) -> None:
    backup(repo, src)
    before = object_files(repo_dir)
    repo.storage.put(snapshot_key("20260101T000000Z-00000000"), b'{"schema_version": 1')
    with pytest.raises(ManifestInvalid):
        repo.collect_garbage()
    assert object_files(repo_dir) == before


def test_gc_removes_stale_in_flight_writes(repo: Repository, repo_dir: Path) -> None:
    leftover = repo_dir / "tmp" / "999-killed"
    leftover.write_bytes(b"x" * 1000)
    past = time.time() - 2 * 3600
    os.utime(leftover, (past, past))
    assert repo.collect_garbage(dry_run=True).tmp_bytes_freed == 1000
    assert leftover.exists()
    report = repo.collect_garbage()
    assert (report.tmp_deleted, report.tmp_bytes_freed) == (1, 1000)
    assert not leftover.exists()


def test_gc_waits_for_the_writer_lock(repo: Repository) -> None:
    with repo.writer(command="sbx backup"), pytest.raises(RepositoryLocked):
        repo.collect_garbage()


def test_a_backup_killed_with_sigkill_leaves_a_usable_repository(
    repo: Repository, repo_dir: Path, src: Path
) -> None:
    first = backup(repo, src)
    (src / "data/new.bin").write_bytes(os.urandom(300_000))
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from sbx.repository import Repository
        repo = Repository.open({str(repo_dir)!r})
        with repo.writer(command="doomed backup") as writer:
            writer.begin_snapshot()
            with writer.part("data", "copy") as part:
                part.add_tree(Path({str(src / "data")!r}), "data")
            print("parts stored", flush=True)
            time.sleep(60)
    """)
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"parts stored\n"
    child.kill()
    child.wait()
    child.stdout.close()
    assert repo.list_snapshots() == [first.id]
    assert repo.storage.exists("locks/writer.json")  # left behind by the killed process
    if boot_id():  # same host and boot, dead pid: taken over at once
        report = repo.collect_garbage()
        assert report.objects_deleted > 0
        assert {p.name for p in object_files(repo_dir)} == _referenced(repo)
    assert repo.verify().ok
