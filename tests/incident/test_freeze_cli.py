"""The unfreeze refusal needs no service: exit 2 before any flow run or Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_unfreeze_without_yes_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SBX_"))}
    env |= {"COLUMNS": "200", "SBX_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "sbx", "incident", "unfreeze", "--stack", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Unfreeze refused (no --yes on the command line); nothing was started" in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "home").exists()  # no local Prefect server was started for it
    assert not (tmp_path / ".sbx").exists()  # no incident opened, nothing recorded
