"""Where an in-place restore keeps the data it replaced, and how that goes again (issue 20 item 5):
under <stack>/.sbx/restores/<UTC time>/ (beside the part, in .sbx-restores/, on another file
system), removed by age by `sbx restore cleanup` and the restore's own retention cleanup."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from faults.input_helpers import invoke

from blocks.config import SbxConfig, load_config
from sbx.errors import ConfigError, RestoreRefused
from sbx.repository import SnapshotManifest
from tasks.restore.in_place import check_swappable
from tasks.restore.kept import (
    OTHER_FS,
    RESTORES,
    aside_path,
    cleanup_restores,
    holds_sbx_state,
    new_stamp,
    parse_span,
    remove_if_empty,
)
from tasks.restore.swap_journal import (
    JOURNAL,
    SwapJournal,
    recover_interrupted_swap,
    swap_paths,
)

NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)


def _config(stack: Path, toml: str = "") -> SbxConfig:
    stack.mkdir(parents=True, exist_ok=True)
    (stack / "sbx.toml").write_text(toml)
    return load_config(stack)


def _kept(stack: Path, stamp: str, size: int = 1000) -> Path:
    home = stack / RESTORES / stamp
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "old.md").write_bytes(b"x" * size)
    return home


def test_the_swap_moves_old_data_under_the_restores_dir_not_beside_the_stack(
    tmp_path: Path,
) -> None:
    """The renames swap_in makes: nothing lands beside the parts nor in the stack's parent, and
    a killed swap is still undone whole."""
    stack = tmp_path / "stack"
    staging = stack / ".sbx" / "restore-x"
    for rel in ("notes", "data/qdrant", "env", ".sbx/journal"):
        (stack / rel).mkdir(parents=True)
        (stack / rel / "old").write_text(f"old {rel}")
        (staging / rel).mkdir(parents=True)
        (staging / rel / "new").write_text(f"new {rel}")
    stamp = new_stamp(stack, NOW)
    assert stamp == "20261220T120000Z"
    before_parent = sorted(p.name for p in tmp_path.iterdir())
    moves = []
    for rel in ("notes", "data/qdrant", "env", ".sbx/journal"):
        moves += [(stack / rel, aside_path(stack, rel, stamp)), (staging / rel, stack / rel)]
    swap_paths(stack, moves, "test", discard=[staging])
    home = stack / RESTORES / stamp
    for rel in ("notes", "data/qdrant", "env", ".sbx/journal"):
        assert (stack / rel / "new").read_text() == f"new {rel}"
        assert (home / rel / "old").read_text() == f"old {rel}"
    assert sorted(p.name for p in tmp_path.iterdir()) == before_parent  # the parent: untouched
    assert not [p for p in stack.rglob("*") if "pre-restore" in p.name]
    assert sorted(p.name for p in stack.iterdir()) == [".sbx", "data", "env", "notes"]
    # a journal left by a killed run: undone into the old data, whole, from the nested dirs too
    undo = [(str(src), str(dst)) for src, dst in moves]
    journal = SwapJournal(what="t", pid=1, boot_id="gone", started_at=0, moves=undo, discard=[])
    (stack / JOURNAL).write_text(journal.model_dump_json())
    assert recover_interrupted_swap(stack) is not None
    for rel in ("notes", "data/qdrant", "env", ".sbx/journal"):
        assert (stack / rel / "old").read_text() == f"old {rel}"


def test_a_second_restore_in_the_same_second_gets_its_own_directory(tmp_path: Path) -> None:
    assert new_stamp(tmp_path, NOW) == "20261220T120000Z"
    assert new_stamp(tmp_path, NOW) == "20261220T120000Z-2"
    assert (tmp_path / RESTORES).stat().st_mode & 0o077 == 0  # old env files hold secrets


@pytest.fixture
def other_fs() -> Iterator[Path]:
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm")
    place = Path(tempfile.mkdtemp(dir="/dev/shm"))
    yield place
    shutil.rmtree(place, ignore_errors=True)


def test_a_part_on_another_file_system_keeps_its_old_data_beside_itself(
    tmp_path: Path, other_fs: Path
) -> None:
    stack = tmp_path / "stack"
    (other_fs / "models").mkdir()
    (stack / ".sbx").mkdir(parents=True)
    (stack / "data").symlink_to(other_fs)  # data/ lives on another file system
    if (stack / "data" / "models").lstat().st_dev == stack.stat().st_dev:
        pytest.skip("/dev/shm is on the same file system here")
    stamp = new_stamp(stack, NOW)
    aside = aside_path(stack, "data/models", stamp)
    assert aside == stack / "data" / OTHER_FS / stamp / "models"  # never a copy across devices
    swap_paths(stack, [(stack / "data/models", aside)], "test", discard=[])
    assert (other_fs / OTHER_FS / stamp / "models").is_dir()
    config = _config(stack)
    report = cleanup_restores(config, timedelta(days=1), now=NOW + timedelta(days=2))
    assert sorted(item.path for item in report.removed) == sorted(
        [f"data/{OTHER_FS}/{stamp}", f".sbx/restores/{stamp}"]
    )
    assert not (other_fs / OTHER_FS).exists()


def test_cleanup_removes_kept_restores_by_age_and_says_how_much(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    config = _config(stack)
    old = _kept(stack, "20261201T000000Z", 3000)
    mid = _kept(stack, "20261215T000000Z", 500)
    new = _kept(stack, "20261220T110000Z", 100)
    (stack / RESTORES / "not-a-restore").mkdir()  # not ours: left alone

    dry = cleanup_restores(config, timedelta(days=7), dry_run=True, now=NOW)
    assert [item.path for item in dry.removed] == [".sbx/restores/20261201T000000Z"]
    assert dry.freed_bytes == 3000 and old.exists()

    done = cleanup_restores(config, timedelta(days=7), now=NOW)
    assert done.freed_bytes == 3000 and not old.exists() and mid.exists() and new.exists()
    assert [item.path for item in done.kept] == [
        ".sbx/restores/20261215T000000Z",
        ".sbx/restores/20261220T110000Z",
    ]
    # the one an in-place restore just made is spared, however short the span
    spared = cleanup_restores(config, timedelta(0), spare=new.name, now=NOW)
    assert not mid.exists() and new.exists() and spared.freed_bytes == 500
    assert (stack / RESTORES / "not-a-restore").is_dir()


def test_cleanup_is_refused_while_a_swap_journal_is_open(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    config = _config(stack)
    old = _kept(stack, "20261201T000000Z")
    (stack / JOURNAL).write_text("{}")
    with pytest.raises(RestoreRefused, match=r"swap\.json is open") as refused:
        cleanup_restores(config, timedelta(days=1), now=NOW)
    assert refused.value.exit_code == 2 and old.exists()


def test_parts_holding_sbx_state_are_refused_before_anything_is_staged(tmp_path: Path) -> None:
    assert holds_sbx_state(".") and holds_sbx_state("./") and holds_sbx_state(".sbx")
    assert holds_sbx_state(".sbx/restores/x") and holds_sbx_state(".sbx/restores")
    assert not holds_sbx_state(".sbx/journal") and not holds_sbx_state("notes")
    stack = tmp_path / "stack"
    config = _config(stack, '[parts.everything]\npaths = ["."]\nmethod = "copy"\n')
    manifest = SnapshotManifest.model_validate(
        {
            "id": "20261220T120000Z-abcdef12",
            "created_at": NOW.isoformat(),
            "finished_at": NOW.isoformat(),
            "host": "h",
            "stack_dir": str(stack),
            "sbx_version": "0",
            "parts": [{"name": "everything", "method": "copy", "status": "captured"}],
        }
    )
    with pytest.raises(RestoreRefused, match=r"holds sbx.s own \.sbx directory"):
        check_swappable(manifest, ["everything"], config)


@pytest.mark.parametrize("span", ["7x", "", "-1d", "7 days", "1.5d"])
def test_a_bad_span_is_exit_2_in_one_line(span: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        parse_span(span)
    done = invoke(["restore", "cleanup", "--older-than", span, "--stack", str(tmp_path)])
    assert done.exit_code == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: --older-than") and "Nothing was removed" in line
    assert parse_span("12h") == timedelta(hours=12) and parse_span("2w") == timedelta(days=14)


def test_the_cli_cleanup_removes_by_age_and_reports_space(
    tmp_path: Path, prefect_server: str
) -> None:
    stack = tmp_path / "stack"
    _config(stack, "[restore]\nkeep_days = 30\n")
    now = datetime.now(UTC)
    old = _kept(stack, (now - timedelta(days=10)).strftime("%Y%m%dT%H%M%SZ"), 2048)
    new = _kept(stack, (now - timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ"), 10)
    env = {"PREFECT_API_URL": prefect_server}
    kept = invoke(["restore", "cleanup", "--stack", str(stack)], env)  # keep_days 30: none
    assert kept.exit_code == 0, kept.stderr
    assert old.exists() and "removed 0 kept restore(s) older than 30d" in kept.stderr
    done = invoke(["restore", "cleanup", "--older-than", "7d", "--stack", str(stack)], env)
    assert done.exit_code == 0, done.stderr
    assert done.stdout.strip() == f"removed .sbx/restores/{old.name} (2.0 KiB)"
    assert "removed 1 kept restore(s) older than 7d, 2.0 KiB; 1 newer kept" in done.stderr
    assert not old.exists() and new.exists()
    assert os.listdir(stack / RESTORES) == [new.name]


def test_a_restore_that_moved_nothing_leaves_no_directory(tmp_path: Path) -> None:
    stamp = new_stamp(tmp_path, NOW)
    (tmp_path / RESTORES / stamp / "data").mkdir()  # made by a swap that was then undone
    remove_if_empty(tmp_path, stamp)
    assert not (tmp_path / ".sbx" / "restores").exists()
    kept = _kept(tmp_path, new_stamp(tmp_path, NOW))
    remove_if_empty(tmp_path, kept.name)
    assert (kept / "notes" / "old.md").is_file()


def test_the_restore_output_lists_every_kept_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `sbx restore --in-place` prints: each moved part, the logs copy, Qdrant's collections,
    how long they stay and what the retention cleanup removed (before: 7 of 8 paths)."""
    import io

    from rich.console import Console

    import sbx.cli.restore as restore_cli
    from flows.restore import RestoreOutcome
    from sbx.repository.restore import RestoreReport
    from tasks.restore.in_place import Swapped
    from tasks.restore.kept import CleanupReport, KeptRestore

    home = ".sbx/restores/20261220T120000Z"
    swapped = Swapped(
        moved=[("notes", f"{home}/notes"), ("agents", None), (".sbx/changelog.jsonl", "x")],
        side=[f"{home}/logs.restored"],
        qdrant_aside={"docs": str(tmp_path / home / "qdrant-collections" / "docs.snapshot")},
        stamp="20261220T120000Z",
    )
    kept = [f"{home}/notes", f"{home}/logs.restored", f"{home}/qdrant-collections"]
    assert [p for p in swapped.kept_paths(tmp_path) if p != "x"] == kept
    old = KeptRestore(path=".sbx/restores/20261101T000000Z", made_at=NOW, bytes=5)
    counts = dict.fromkeys(("files", "dirs", "symlinks", "hardlinks", "bytes"), 1)
    report = RestoreReport(snapshot_id="s", target="t", parts=["notes"], duration_s=0.1, **counts)
    outcome = RestoreOutcome(
        snapshot_id="s",
        target=str(tmp_path),
        in_place=True,
        restored=report,
        swapped=swapped,
        kept=kept,
        cleaned=CleanupReport(dry_run=False, older_than_s=1.0, removed=[old], kept=[]),
    )
    buffer = io.StringIO()
    monkeypatch.setattr(restore_cli, "err", Console(file=buffer, width=80, highlight=False))
    restore_cli._print_kept(outcome, 14)
    lines = buffer.getvalue().splitlines()
    assert lines == [
        f"  notes: previous data kept as {home}/notes",
        "  agents: (none before)",
        "  .sbx/changelog.jsonl: the live one kept in place",
        f"  kept {home}/logs.restored",
        f"  kept {home}/qdrant-collections",
        "kept 14 days ([restore] keep_days); 'sbx restore cleanup' removes them sooner",
        "removed kept restores older than 14 days: .sbx/restores/20261101T000000Z",
    ]
