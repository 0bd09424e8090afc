"""An in-place restore appends a change-log entry and keeps the live log (history is not state)."""

from __future__ import annotations

from pathlib import Path

from bed import RunningStack

from flows.backup import backup_stack
from flows.restore import restore_snapshot
from tasks.changelog import append_change, log_path, read_changes, verify_changes


def test_in_place_restore_is_logged_and_keeps_later_entries(
    running_stack: RunningStack, prefect_server: str, tmp_path: Path
) -> None:
    stack = running_stack.path
    append_change(stack, action="model-swap", target="worker", before="a", after="b")
    repo = str(tmp_path / "repo")
    snapshot = backup_stack(stack=str(stack), repo=repo).snapshot_id  # holds a 1-entry log
    append_change(stack, action="model-swap", target="worker", before="b", after="c")

    restore_snapshot(
        snapshot=snapshot, in_place=True, repo=repo, stack=str(stack), parts=["configs"]
    )

    entries = read_changes(stack)
    assert [e.action for e in entries] == ["model-swap", "model-swap", "restore"]
    assert entries[2].after == {"snapshot": snapshot, "parts": ["configs"]}
    assert entries[2].flow_run_id
    report = verify_changes(stack)
    assert report.intact, report.describe()
    # the snapshot's (older) copy of the log is kept beside it, not lost
    [older] = log_path(stack).parent.glob("changelog.jsonl.from-*")
    assert len(older.read_bytes().splitlines()) == 1
