"""Finishing what a killed sbx run left behind, as tasks (see ``tasks/leftovers/__init__.py``)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig
from sbx.errors import DockerUnavailable
from tasks.clients.docker_engine import connect
from tasks.drill.marker import abandoned
from tasks.drill.project import tear_down_abandoned
from tasks.restore.swap_journal import recover_interrupted_swap
from tasks.services import restart_left_stopped
from tasks.status import StackStatus, read_stack_status
from tasks.upgrade.journal import JournalEntry
from tasks.upgrade.steps import reconcile_open_entry


class Leftovers(BaseModel):
    """What was finished: containers started again, the journal entry closed (if any)."""

    model_config = ConfigDict(frozen=True)

    restarted: list[str]
    entry: JournalEntry | None
    drills: list[str] = []  # scratch projects of killed drills torn down


def _finish(config: SbxConfig) -> Leftovers:
    """Undo a half-done swap, start what was left stopped, tear down killed drills' scratch
    projects, finish an open upgrade entry.

    :class:`DockerUnavailable` propagates after the swap is undone: the caller decides whether
    the run goes on with files only.
    """
    recover_interrupted_swap(config.stack_dir)
    with connect() as engine:
        restarted = restart_left_stopped(engine, config.stack_dir)
    drills = [
        marker.project
        for marker in abandoned(config.stack_dir)
        if not tear_down_abandoned(config.stack_dir, marker)
    ]
    return Leftovers(restarted=restarted, entry=reconcile_open_entry(config), drills=drills)


@task(name="finish-leftovers", cache_policy=NO_CACHE)
def finish_leftovers(config: SbxConfig) -> Leftovers:
    """Finish what a killed sbx run left behind (a swap, stopped containers, a drill's scratch
    project, an open upgrade)."""
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
