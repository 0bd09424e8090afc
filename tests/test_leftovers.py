"""The door (sbx/cli/runner.py) finishes a killed run's leftovers before any command (issue #6).

The repair itself (a killed upgrade rolled back by a later `sbx status`) is tested end to end in
tests/upgrade/test_upgrade.py; here: when the door repairs and which commands it leaves alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sbx.cli import app
from sbx.cli import runner as door
from tasks import leftovers
from tasks.upgrade.journal import JournalEntry, Release, save_open

RELEASE = Release(images={}, compose_files={}, env_fingerprints={}, models={})


def _open_entry(stack: Path, pid: int) -> None:
    save_open(stack, JournalEntry(action="upgrade", services=["worker"], before=RELEASE, pid=pid))


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_nothing_left_behind_costs_nothing(tmp_path: Path) -> None:
    assert not leftovers.left_behind(tmp_path)


def test_a_stop_marker_a_swap_journal_or_a_dead_writers_entry_is_left_behind(
    tmp_path: Path,
) -> None:
    markers = tmp_path / ".sbx" / "stopped"
    markers.mkdir(parents=True)
    (markers / "qdrant.json").write_text("{}")
    assert leftovers.left_behind(tmp_path)
    (markers / "qdrant.json").unlink()
    (tmp_path / ".sbx" / "swap.json").write_text("{}")  # a swap a kill cut short
    assert leftovers.left_behind(tmp_path)
    (tmp_path / ".sbx" / "swap.json").unlink()
    _open_entry(tmp_path, _dead_pid())
    assert leftovers.left_behind(tmp_path)


def test_an_entry_whose_run_still_goes_is_not_touched(tmp_path: Path) -> None:
    _open_entry(tmp_path, os.getpid())
    assert not leftovers.left_behind(tmp_path)


class _AtTheApi(Exception):
    """Raised where the door would start the Prefect API: the command went through the door."""


def _stop_at_the_api() -> str:
    raise _AtTheApi


def test_evidence_and_upgrade_commands_see_the_stack_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _open_entry(tmp_path, _dead_pid())
    repaired: list[Path] = []
    monkeypatch.setattr(door, "_finish_leftovers", lambda box: repaired.append(box.stack))
    monkeypatch.setattr("sbx.local_server.ensure_api", _stop_at_the_api)
    runner = CliRunner()
    for args in (["incident", "preserve"], ["incident", "freeze"], ["upgrade"], ["rollback"]):
        result = runner.invoke(app, [*args, "--stack", str(tmp_path)])
        assert isinstance(result.exception, _AtTheApi), (args, result.output)
    assert repaired == []
    assert leftovers.left_behind(tmp_path)  # still there for the next command to finish
    # any other command goes through the repair first
    result = runner.invoke(app, ["health", "--stack", str(tmp_path)])
    assert isinstance(result.exception, _AtTheApi), result.output
    assert repaired == [tmp_path]


def test_a_killed_drills_marker_is_left_behind_a_running_drills_is_not(tmp_path: Path) -> None:
    from tasks.drill.marker import marker_path, record_drill

    record_drill(tmp_path, "d1", "sbx-drill-d1", tmp_path / ".sbx" / "drills" / "d1")
    assert not leftovers.left_behind(tmp_path)  # this process wrote it: the drill still runs
    marker = marker_path(tmp_path, "d1")
    marker.write_text(marker.read_text().replace(f'"pid":{os.getpid()}', f'"pid":{_dead_pid()}'))
    assert leftovers.left_behind(tmp_path)
