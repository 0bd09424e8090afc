"""Files that vanish, grow, lose read permission or are rotated while a backup reads the tree.

Each trial is a child process (``env_race_child.py``): a second thread acts on a file after the
walk listed it and while the backup reads the file before it — a real race, no hook in sbx.
What docs/repository.md and the code promise:

- vanished: recorded as vanished (a warning, counted as skipped), not a failure;
- grown: the bytes read are kept, ``read_size`` recorded, no stat key (read again next time);
- unreadable: the part fails with ``SourceUnreadable`` naming the file and the next step (the
  other parts of a backup are still stored; the flow then exits 1);
- log rotated (renamed, new file created): the open file's bytes are kept under the old name,
  the new file is picked up by the next backup, nothing fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sbx.repository import Repository

from .figures import FaultFigures

CHILD = Path(__file__).resolve().parent / "env_race_child.py"
# root reads a chmod 000 file anyway: the unreadable trial runs without those capabilities
NO_DAC = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


def race(scenario: str, tmp_path: Path, *, drop_dac: bool = False) -> dict[str, Any]:
    work = tmp_path / "work"
    prefix: list[str] = []
    if drop_dac:
        if shutil.which("setpriv") is None:
            pytest.fail("setpriv (util-linux) is needed to read as root without CAP_DAC_*")
        prefix = NO_DAC
    result: dict[str, Any] = {}
    for attempt in range(3):  # a thread starved of the GIL may miss the window: try again
        if attempt:
            shutil.rmtree(work)
        done = subprocess.run(
            [*prefix, sys.executable, str(CHILD), scenario, str(work)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result["acted_while_open"]:
            return result
    raise AssertionError(f"{scenario}: the race was not hit in 3 tries; {result}")


def restored(result: dict[str, Any], work: Path) -> Path:
    target = work.parent / f"{work.name}-restored"
    Repository.open(result["repo"]).restore(result["snapshot"], target)
    return target


def test_a_file_vanishes_between_walk_and_read(tmp_path: Path, fault_figures: FaultFigures) -> None:
    result = race("vanish", tmp_path)
    assert result["status"] == "captured", result
    assert "notes/victim.txt" not in result["entries"]
    assert result["skipped"] == 1
    assert any("notes/victim.txt vanished" in w for w in result["warnings"]), result
    assert "notes/z-after.txt" in result["entries"]  # the walk went on
    fault_figures.add("test_a_file_vanishes_between_walk_and_read", trials_run=1)


def test_a_file_grows_while_read(tmp_path: Path, fault_figures: FaultFigures) -> None:
    result = race("grow", tmp_path)
    assert result["status"] == "captured", result
    entry = result["entries"]["logs/a-big.bin"]
    assert not entry["keyed"], entry  # read again by the next backup
    assert any("logs/a-big.bin changed while being read" in w for w in result["warnings"])
    read = entry["read_size"] if entry["read_size"] is not None else entry["size"]
    now = (tmp_path / "work" / "stack" / "logs" / "a-big.bin").read_bytes()
    assert read >= entry["size"]  # appended only: what was read is a prefix of the file now
    back = (restored(result, tmp_path / "work") / "logs" / "a-big.bin").read_bytes()
    assert back == now[:read]
    fault_figures.add("test_a_file_grows_while_read", trials_run=1)


def test_a_file_loses_read_permission(tmp_path: Path, fault_figures: FaultFigures) -> None:
    result = race("unreadable", tmp_path, drop_dac=True)
    assert result["status"] == "failed", result
    reason = result["reason"]
    assert str(tmp_path / "work" / "stack" / "notes" / "victim.txt") in reason, reason
    assert "Permission denied" in reason and "Fix its permissions" in reason, reason
    assert "exclude it from the part" in reason, reason
    assert result["entries"] == {}  # a failed part keeps no entries: nothing half-recorded
    fault_figures.add("test_a_file_loses_read_permission", trials_run=1)


def test_a_log_is_rotated_during_the_backup(tmp_path: Path, fault_figures: FaultFigures) -> None:
    result = race("rotate", tmp_path)
    assert result["status"] == "captured", result
    # the walk listed app.log before the rotation; the open() finds the new file by that name
    assert "logs/app.log" in result["entries"]
    assert "logs/app.log.1" not in result["entries"]  # appeared after the listing
    back = restored(result, tmp_path / "work") / "logs"
    assert (back / "app.log").read_bytes() == b"new line\n"
    assert (back / "z-after.txt").exists()
    fault_figures.add("test_a_log_is_rotated_during_the_backup", trials_run=1)
