"""A killed upgrade's maintenance.json is removed by the next command's leftovers step (#23
finding 9); a window whose upgrade still runs is left alone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from blocks.config import SbxConfig
from tasks.upgrade.maintenance import WINDOW_FILE, MaintenanceWindow
from tasks.upgrade.steps import reconcile_open_entry


@pytest.mark.parametrize("alive", [False, True])
def test_the_next_command_removes_a_dead_window_only(tmp_path: Path, alive: bool) -> None:
    if alive:
        pid = os.getpid()
    else:
        gone = subprocess.Popen(["true"])
        gone.wait()
        pid = gone.pid
    window = MaintenanceWindow(
        reason="sbx upgrade", services=["worker"], already_failing=[], pid=pid
    )
    path = tmp_path / WINDOW_FILE
    path.parent.mkdir(parents=True)
    path.write_text(window.model_dump_json())
    assert reconcile_open_entry(SbxConfig(stack_dir=tmp_path)) is None  # no open entry
    assert path.exists() is alive
