"""``sbx prune`` and ``sbx snapshots`` in process (issue 18): a negative keep-* is a usage error
naming the flag, never a prune; a damaged manifest is a row of the listing, not an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faults.input_helpers import invoke

from repository.helpers import backup
from sbx.repository import Repository
from sbx.repository.format import snapshot_key


@pytest.mark.parametrize("flag", ["--keep-last", "--keep-daily", "--keep-weekly", "--keep-monthly"])
def test_a_negative_keep_is_exit_2_naming_the_flag(
    flag: str, repo: Repository, repo_dir: Path, src: Path
) -> None:
    first = backup(repo, src)
    second = backup(repo, src, previous=first)
    done = invoke(["prune", flag, "-1", "--repo", str(repo_dir), "--stack", str(src)])
    assert done.exception is None, done.exception
    assert done.exit_code == 2, done.stderr
    text = " ".join(done.stderr.split())  # rich wraps the usage panel
    assert "Invalid value" in text and flag in text and "greater than or equal to 0" in text, text
    assert repo.list_snapshots() == [first.id, second.id]


def test_snapshots_lists_a_damaged_manifest_as_a_row(
    repo: Repository, repo_dir: Path, src: Path
) -> None:
    first = backup(repo, src)
    second = backup(repo, src, previous=first)
    raw = repo.storage.get(snapshot_key(second.id))
    (repo_dir / "snapshots" / f"{second.id}.json").write_bytes(raw[:100])
    args = ["snapshots", "--repo", str(repo_dir), "--stack", str(src)]
    done = invoke(args)
    assert done.exception is None and done.exit_code == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "damaged" in lines[second.id] and "damaged" not in lines[first.id]
    assert f"{second.id[:4]}-{second.id[4:6]}-{second.id[6:8]}" in lines[second.id]
    assert second.id in done.stderr and "truncated" in done.stderr
    listed = json.loads(invoke([*args, "--json"]).stdout)
    assert [row["id"] for row in listed] == [first.id, second.id]
    assert listed[0]["damaged"] is None and listed[0]["parts"]
    assert "truncated" in listed[1]["damaged"]


def test_snapshots_says_which_parts_are_incomplete(
    repo: Repository, repo_dir: Path, src: Path
) -> None:
    """A part whose directory vanished mid-walk is stored but not complete: the listing says so."""
    with repo.writer(command="pytest") as writer:
        writer.begin_snapshot()
        with writer.part("data", "copy") as part:
            part.add_tree(src / "data", "data")
            part.incomplete.append("data/gone")  # as the walk records a vanished directory
        incomplete = writer.commit()
    args = ["snapshots", "--repo", str(repo_dir), "--stack", str(src)]
    done = invoke(args)
    assert done.exception is None and done.exit_code == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if incomplete.id in line)
    assert "incomplete: data" in line
    listed = json.loads(invoke([*args, "--json"]).stdout)
    assert listed[0]["incomplete_parts"] == ["data"]
