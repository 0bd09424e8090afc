"""Finishing what a killed sbx run left behind: the one place that does it.

A SIGKILL runs no ``finally``, so three things can be left half done:

- a swap of restored data (``.sbx/swap.json``, tasks/restore/swap_journal.py): undone first,
  also without Docker, so services start on their previous data, whole;
- containers a cold copy stopped (markers under ``.sbx/stopped/``, tasks/services.py): started
  again when the marker's process is gone;
- an upgrade or rollback journal entry left open (``.sbx/upgrade/open.json``): finished by
  returning to its recorded release, health-gated (tasks/upgrade/steps.py).

Mutating flows call :func:`observe_stack` as their first task; every other command that names a
stack runs the ``reconcile-stack`` flow first when :func:`left_behind` says there is something
to finish (sbx/cli/runner.py). Either way the repair is a task run in the run history.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig
from sbx.errors import DockerUnavailable
from tasks.clients.docker_engine import connect
from tasks.restore.swap_journal import recover_interrupted_swap
from tasks.services import restart_left_stopped
from tasks.status import StackStatus, read_stack_status
from tasks.upgrade.journal import JournalEntry, read_open
from tasks.upgrade.steps import reconcile_open_entry

STOP_MARKERS = Path(".sbx") / "stopped"
SWAP_JOURNAL = Path(".sbx") / "swap.json"


class Leftovers(BaseModel):
    """What was finished: containers started again, the journal entry closed (if any)."""

    model_config = ConfigDict(frozen=True)

    restarted: list[str]
    entry: JournalEntry | None


def left_behind(stack_dir: Path) -> bool:
    """True when a killed run may have left a stopped container, a half-done swap of restored
    data or an open upgrade journal entry (three ``stat`` calls when nothing was left)."""
    markers = stack_dir / STOP_MARKERS
    if markers.is_dir() and any(markers.glob("*.json")):
        return True
    if (stack_dir / SWAP_JOURNAL).exists():
        return True
    try:
        entry = read_open(stack_dir)
    except ValueError:  # a torn open.json: reconcile_open_entry knows what to do with it
        return True
    return entry is not None and not entry.writer_alive()


def _finish(config: SbxConfig) -> Leftovers:
    """Undo a half-done swap, start what was left stopped, finish an open upgrade entry.

    :class:`DockerUnavailable` propagates after the swap is undone: the caller decides whether
    the run goes on with files only.
    """
    recover_interrupted_swap(config.stack_dir)
    with connect() as engine:
        restarted = restart_left_stopped(engine, config.stack_dir)
    return Leftovers(restarted=restarted, entry=reconcile_open_entry(config))


@task(name="finish-leftovers", cache_policy=NO_CACHE)
def finish_leftovers(config: SbxConfig) -> Leftovers:
    """Finish what a killed sbx run left behind (a swap, stopped containers, an open upgrade)."""
    try:
        return _finish(config)
    except DockerUnavailable:
        # the journal entry is still finished (or its failure reported) without a Docker answer
        return Leftovers(restarted=[], entry=reconcile_open_entry(config))


@task(name="observe-stack", cache_policy=NO_CACHE)
def observe_stack(config: SbxConfig) -> tuple[StackStatus | None, list[str]]:
    """Finish what a killed sbx run left behind, then read the stack's status.

    Without Docker the status is None: flows then work on files only and say so.
    """
    try:
        leftovers = _finish(config)
    except DockerUnavailable:
        return None, []
    return read_stack_status(config), leftovers.restarted
