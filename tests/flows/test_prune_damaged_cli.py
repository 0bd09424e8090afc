"""Issue 18, findings 6 and 7 as an operator meets them: ``sbx prune`` after partial backups and
with the newest manifest truncated, through the CLI and the prune flow."""

from __future__ import annotations

from pathlib import Path

from conftest import Sbx

from sbx.repository import Repository


def _backup(run_sbx: Sbx, stack: Path, repo: Path, *parts: str) -> str:
    extra = [arg for part in parts for arg in ("--part", part)]
    done = run_sbx("backup", "--stack", str(stack), "--repo", str(repo), *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_prune_keeps_the_full_backup_and_survives_a_truncated_manifest(
    run_sbx: Sbx, files_stack: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    full = _backup(run_sbx, files_stack, repo)
    notes = [_backup(run_sbx, files_stack, repo, "notes") for _ in range(2)]
    keep_last_1 = ["--keep-last", "1", "--keep-daily", "0", "--keep-weekly", "0",
                   "--keep-monthly", "0"]  # fmt: skip
    done = run_sbx("prune", *keep_last_1, "--stack", str(files_stack), "--repo", str(repo))
    assert done.returncode == 0, done.stderr[-3000:]
    # the only full backup is the last complete copy of every part but notes
    assert Repository.open(repo).list_snapshots() == [full, notes[1]]

    newest = repo / "snapshots" / f"{notes[1]}.json"
    newest.write_bytes(newest.read_bytes()[:200])
    done = run_sbx("prune", *keep_last_1, "--stack", str(files_stack), "--repo", str(repo))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "No unreferenced object was collected" in " ".join(done.stderr.split())
    assert Repository.open(repo).list_snapshots() == [full, notes[1]]

    listed = run_sbx("snapshots", "--stack", str(files_stack), "--repo", str(repo))
    assert listed.returncode == 0 and "damaged" in listed.stdout, listed.stderr
    after = _backup(run_sbx, files_stack, repo)  # not blocked by the damaged manifest
    assert Repository.open(repo).list_snapshots() == [full, notes[1], after]
