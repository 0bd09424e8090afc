"""What a restore could not keep reaches the operator: one escaped warning line per kind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Sbx

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a ramfs")


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "ramfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "sbx-test", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_restore_prints_what_the_target_could_not_hold(
    run_sbx: Sbx, files_stack: Path, tmp_path: Path, ramfs: Path
) -> None:
    notes = files_stack / "notes"
    notes.mkdir(exist_ok=True)
    for name in ("[bold]a", "b", "c"):
        (notes / name).write_text(name)
        os.setxattr(notes / name, "user.origin", b"upload")
    repo = tmp_path / "repo"
    done = run_sbx("backup", "--stack", str(files_stack), "--repo", str(repo))
    assert done.returncode == 0, done.stderr[-3000:]

    target = ramfs / "out"
    restore = run_sbx("restore", "latest", "--to", str(target), "--repo", str(repo))
    assert restore.returncode == 0, restore.stderr[-3000:]
    warnings = [line for line in restore.stderr.splitlines() if "user.* extended" in line]
    assert len(warnings) == 1, restore.stderr  # one line for the kind, not one per file
    assert "warning: user.* extended attributes not kept on 3 entries" in warnings[0]
    assert "(first: notes/[bold]a)" in restore.stderr.replace("\n", "")  # brackets escaped
    assert (target / "notes/[bold]a").read_text() == "[bold]a"
