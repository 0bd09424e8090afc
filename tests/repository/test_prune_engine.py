"""Prune and backup through the engine (issue 18, findings 6 and 7): partial and failed-part
backups never push out the last complete copy of a part, and a manifest that cannot be read is
kept, listed as damaged, and neither blocks backups nor costs another snapshot."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from blocks.config import RetentionPolicy
from repository.helpers import PARTS, backup
from sbx.repository import PartWriter, Repository
from sbx.repository.drills import DrillMark, new_drill_id, write_mark
from sbx.repository.format import snapshot_key
from tasks.reports import prune_markdown


def test_the_engine_keeps_the_only_full_backup_among_partial_ones(
    repo: Repository, src: Path
) -> None:
    full = backup(repo, src)
    partial = [backup(repo, src, parts={"notes": PARTS["notes"]}).id for _ in range(7)]
    plan = repo.plan_prune(RetentionPolicy())
    assert full.id in plan.keep and plan.remove == []
    report = repo.prune(plan)
    assert repo.list_snapshots() == [full.id, *partial] and report.removed == []
    assert repo.verify(full.id).ok


def test_the_engine_does_not_count_a_failed_part(repo: Repository, src: Path) -> None:
    _the_full_copy_outlives_a_newer_broken_one(repo, src, lambda part: part.fail("unreadable"))


def _truncate(repo: Repository, snapshot_id: str) -> None:
    key = snapshot_key(snapshot_id)
    raw = repo.storage.get(key)
    repo.storage.delete(key)
    repo.storage.put(key, raw[: len(raw) // 2])


def test_prune_keeps_the_good_snapshot_when_the_newest_manifest_is_damaged(
    repo: Repository, src: Path
) -> None:
    older = backup(repo, src)
    newest = backup(repo, src, previous=older)
    _truncate(repo, newest.id)
    policy = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    plan = repo.plan_prune(policy)
    assert plan.remove == [] and "manifest unreadable" in plan.keep[newest.id]
    report = repo.prune(plan)  # no error: the damage is reported, not raised after deletes
    assert repo.list_snapshots() == [older.id, newest.id]
    assert report.gc.objects_deleted == 0 and report.gc.skipped is not None
    assert newest.id in report.gc.skipped and "sbx verify --all" in report.gc.skipped
    assert report.gc.skipped in prune_markdown(report)  # the Prefect artifact says it too
    assert repo.verify(older.id).ok


def test_a_damaged_newest_manifest_neither_blocks_backups_nor_hides_the_list(
    repo: Repository, src: Path
) -> None:
    older = backup(repo, src)
    newest = backup(repo, src, previous=older)
    _truncate(repo, newest.id)
    base = repo.latest_snapshot()
    assert base is not None and base.id == older.id
    third = backup(repo, src, previous=base)
    listed = repo.snapshot_summaries()
    assert [s.id for s in listed] == [older.id, newest.id, third.id]
    assert [type(s).__name__ for s in listed] == [
        "SnapshotSummary", "UnreadableSnapshot", "SnapshotSummary"
    ]  # fmt: skip
    assert "unusable" in getattr(listed[1], "reason", "")
    assert third.stats.files_read == 0  # the older base still spares re-reading


def test_the_engine_keeps_the_newest_drill_passed_snapshot(repo: Repository, src: Path) -> None:
    drilled = backup(repo, src)
    others = [backup(repo, src, previous=drilled).id for _ in range(2)]
    now = datetime.now(UTC)
    write_mark(
        repo.storage,
        DrillMark(drill_id=new_drill_id(now), snapshot_id=drilled.id, passed=True,
                  started_at=now, finished_at=now),
    )  # fmt: skip
    policy = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    plan = repo.plan_prune(policy)  # not only the prune flow: whoever plans through the engine
    assert plan.remove == [others[0]] and plan.keep[drilled.id] == ["protected"]


def test_the_engine_does_not_count_an_incomplete_part(repo: Repository, src: Path) -> None:
    """A part whose directory vanished mid-walk (h-capture's `incomplete`) is no full copy."""
    # as the walk records a directory that vanished while it was read
    _the_full_copy_outlives_a_newer_broken_one(repo, src, lambda part: part.incomplete.append("x"))


def _the_full_copy_outlives_a_newer_broken_one(
    repo: Repository, src: Path, spoil: Callable[[PartWriter], object]
) -> None:
    """A full backup, then one whose part 'data' is spoiled; keep-last 1 keeps both."""
    good = backup(repo, src)
    with repo.writer(command="pytest") as writer:
        writer.begin_snapshot()
        for name, paths in PARTS.items():
            with writer.part(name, "copy") as part:
                for rel in paths:
                    part.add_tree(src / rel, rel)
                if name == "data":
                    spoil(part)
        spoiled = writer.commit()
    policy = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    repo.prune(repo.plan_prune(policy))
    assert repo.list_snapshots() == [good.id, spoiled.id]
