"""Finishing what a killed sbx run left behind: the one place that does it.

A SIGKILL runs no ``finally``, so four things can be left half done:

- a swap of restored data (``.sbx/swap.json``, tasks/restore/swap_journal.py): undone first,
  also without Docker, so services start on their previous data, whole;
- containers a cold copy stopped (markers under ``.sbx/stopped/``, tasks/services.py): started
  again when the marker's process is gone;
- an upgrade or rollback journal entry left open (``.sbx/upgrade/open.json``): finished by
  returning to its recorded release, health-gated (tasks/upgrade/steps.py);
- a restore drill's scratch compose project and directory (markers ``.sbx/drills/<id>.json``,
  tasks/drill/marker.py): torn down (``down -v`` by project name, the directory removed) when
  the marker's process is gone; a drill still running is never touched.

Mutating flows call ``observe_stack`` (``finish.py``) as their first task; every other command
that names a stack runs the ``reconcile-stack`` flow first when :func:`left_behind` says there is
something to finish (sbx/cli/runner.py). Either way the repair is a task run in the run history.
This module only detects (no Prefect, no Docker SDK: commands call it before either loads).
"""

from __future__ import annotations

from pathlib import Path

from tasks.drill.marker import abandoned
from tasks.upgrade.journal import read_open

STOP_MARKERS = Path(".sbx") / "stopped"
SWAP_JOURNAL = Path(".sbx") / "swap.json"


def left_behind(stack_dir: Path) -> bool:
    """True when a killed run may have left a stopped container, a half-done swap of restored
    data, a drill's scratch project or an open upgrade journal entry (four ``stat`` calls when
    nothing was left)."""
    markers = stack_dir / STOP_MARKERS
    if markers.is_dir() and any(markers.glob("*.json")):
        return True
    if (stack_dir / SWAP_JOURNAL).exists():
        return True
    if abandoned(stack_dir):
        return True
    try:
        entry = read_open(stack_dir)
    except ValueError:  # a torn open.json: reconcile_open_entry knows what to do with it
        return True
    return entry is not None and not entry.writer_alive()
