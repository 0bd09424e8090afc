"""``sbx prune`` and ``sbx snapshots`` in process (issue 18): a negative keep-* is a usage error
naming the flag, never a prune; a damaged manifest is a row of the listing, not an error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import cast

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
    assert f"{second.id[4:6]}-{second.id[6:8]}" in lines[second.id]
    assert second.id in done.stderr and "truncated" in done.stderr
    listed = json.loads(invoke([*args, "--json"]).stdout)
    assert [row["id"] for row in listed] == [first.id, second.id]
    assert listed[0]["damaged"] is None and listed[0]["parts"]
    assert "truncated" in listed[1]["damaged"]


def test_snapshots_says_which_parts_are_incomplete(
    repo: Repository, repo_dir: Path, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part whose directory vanished mid-walk is stored but not complete: the listing says so."""
    with repo.writer(command="pytest") as writer:
        writer.begin_snapshot()
        with writer.part("data", "copy") as part:
            part.add_tree(src / "data", "data")
            part.incomplete.append("data/gone")  # as the walk records a vanished directory
        incomplete = writer.commit()
    args = ["snapshots", "--repo", str(repo_dir), "--stack", str(src)]
    from rich.console import Console

    import sbx.cli.backups as backups_cli

    monkeypatch.setattr(backups_cli, "out", Console(width=80, highlight=False))
    done = invoke(args)
    assert done.exception is None and done.exit_code == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if incomplete.id in line)
    assert "incomplete: data" in line
    # one line per snapshot at 80 columns (#20): the parts column gives way, cut in the middle
    rows = [row for row in done.stdout.splitlines() if not row.startswith("snapshots in ")]
    assert all(len(row) <= 80 for row in rows), done.stdout
    listed = json.loads(invoke([*args, "--json"]).stdout)
    assert listed[0]["incomplete_parts"] == ["data"]


def test_keep_last_on_the_command_line_replaces_the_configured_policy(
    repo: Repository,
    repo_dir: Path,
    src: Path,
    prefect_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """issue 20: `--keep-last 3` prunes by the newest 3 only (sbx.toml's daily 7 would keep all
    five daily snapshots), and says so on one line before acting, in a dry run too."""
    import sbx.repository.writer as writer_module

    today = [datetime(2026, 12, 1, 12, tzinfo=UTC)]

    class OnePerDay(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> OnePerDay:  # type: ignore[override]
            return cast("OnePerDay", today[0])

    monkeypatch.setattr(writer_module, "datetime", OnePerDay)
    made = [backup(repo, src)]
    for day in range(2, 6):
        today[0] = datetime(2026, 12, day, 12, tzinfo=UTC)
        made.append(backup(repo, src, previous=made[-1]))
    monkeypatch.undo()
    (src / "sbx.toml").write_text("[retention]\nkeep_last = 1\nkeep_daily = 7\n")
    args = ["prune", "--keep-last", "3", "--repo", str(repo_dir), "--stack", str(src)]
    env = {"PREFECT_API_URL": prefect_server}
    line = (
        "policy: keep last 3 (from the command line; the configured [retention] is not used); "
        "always kept: the newest snapshot, the newest complete copy of each part, the newest "
        "drill-passed snapshot"
    )

    dry = invoke([*args, "--dry-run"], env)
    assert dry.exception is None and dry.exit_code == 0, dry.stderr
    assert dry.stderr.splitlines()[0] == line
    assert {f"would remove {m.id}" for m in made[:2]} <= set(dry.stdout.splitlines())
    assert not {f"would remove {m.id}" for m in made[2:]} & set(dry.stdout.splitlines())
    assert repo.list_snapshots() == [m.id for m in made]

    done = invoke(args, env)
    assert done.exception is None and done.exit_code == 0, done.stderr
    assert done.stderr.splitlines()[0] == line
    assert {f"removed {m.id}" for m in made[:2]} <= set(done.stdout.splitlines())
    assert Repository.open(str(repo_dir)).list_snapshots() == [m.id for m in made[2:]]

    configured = invoke([*args[:1], *args[3:], "--dry-run"], env)  # no flag: sbx.toml's rules
    assert configured.stderr.splitlines()[0].startswith(
        "policy: keep last 1, daily 7, weekly 4, monthly 6 (the configured [retention]; "
        "--keep-* flags would replace it)"
    ), configured.stderr
    assert not [w for w in configured.stdout.splitlines() if w.startswith("would remove")]
