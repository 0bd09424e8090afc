"""The --stack hook that finishes a killed run's leftovers before any command (issue #6).

The repair itself (a killed upgrade rolled back by a later `sbx status`) is tested end to end in
tests/upgrade/test_upgrade.py; here: when the hook fires and which commands it leaves alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from typer.testing import CliRunner

from sbx.cli import leftovers
from sbx.cli.options import StackOption
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


def _app(ran: list[str]) -> typer.Typer:
    app = typer.Typer()
    incident = typer.Typer()

    @app.command()
    def status(stack: StackOption = None) -> None:
        ran.append("status")

    @app.command()
    def upgrade(stack: StackOption = None) -> None:
        ran.append("upgrade")

    @incident.command()
    def preserve(stack: StackOption = None) -> None:
        ran.append("preserve")

    app.add_typer(incident, name="incident")
    return app


def test_evidence_and_upgrade_commands_see_the_stack_as_it_is(tmp_path: Path) -> None:
    _open_entry(tmp_path, _dead_pid())
    ran: list[str] = []
    app = _app(ran)
    runner = CliRunner()
    for args in (["incident", "preserve"], ["upgrade"]):
        result = runner.invoke(app, [*args, "--stack", str(tmp_path)])
        assert result.exit_code == 0, result.output
    assert ran == ["preserve", "upgrade"]
    assert leftovers.left_behind(tmp_path)  # still there for the next command to finish
