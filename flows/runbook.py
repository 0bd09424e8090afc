"""Steps every flow that acts on a stack starts with, and run names that say what ran."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from blocks.config import SbxConfig, load_config, resolve_stack_dir
from sbx.errors import DockerUnavailable
from sbx.repository import Repository
from tasks.backup.offbox import open_encrypted
from tasks.clients.docker_engine import connect
from tasks.restore.swap_journal import recover_interrupted_swap
from tasks.services import restart_left_stopped
from tasks.status import StackStatus, read_stack_status
from tasks.upgrade.steps import reconcile_open_entry


def run_name(action: str) -> str:
    """e.g. ``backup-examples-stack-2026-11-26T0200``: action, stack, local time.

    The stack is its directory's name, with its parent's in front when the directory is just
    called ``stack`` (the default layout ``~/sealed-box-ai/stack``), so the run list tells boxes
    and stacks apart.
    """
    params = flow_run.parameters or {}
    return f"{action}-{stack_label(params.get('stack'))}-{datetime.now():%Y-%m-%dT%H%M}"


def stack_label(stack: object) -> str:
    path = Path(str(stack)) if stack else resolve_stack_dir(None)
    if path.name == "stack" and path.parent.name:
        return f"{path.parent.name}-{path.name}"
    return path.name


@task(name="observe-stack", cache_policy=NO_CACHE)
def observe_stack(config: SbxConfig) -> tuple[StackStatus | None, list[str]]:
    """Restart what a killed sbx run left stopped, finish an upgrade a killed run left open (its
    journal entry), then read the stack's status.

    Without Docker the status is None: flows then work on files only and say so.
    """
    # a swap a killed in-place restore left half done is undone first, also without Docker
    recover_interrupted_swap(config.stack_dir)
    try:
        with connect() as engine:
            restarted = restart_left_stopped(engine, config.stack_dir)
        reconcile_open_entry(config)  # one stat when no upgrade entry is open
    except DockerUnavailable:
        return None, []
    return read_stack_status(config), restarted


def flow_config(stack: str | None, config_file: str | None) -> SbxConfig:
    """The configuration a flow's (JSON) parameters name."""
    return load_config(Path(stack) if stack else None, Path(config_file) if config_file else None)


def open_repository(config: SbxConfig, repo: str | None, *, create: bool = False) -> Repository:
    """The repository named by ``repo``, else by the stack's configuration."""
    location = repo or config.repository.location
    if not location.startswith("s3://"):
        location = str(Path(location).expanduser())
    # S3 endpoint, credentials and upload options come from the configuration (open_storage);
    # an off-box copy (encrypted; docs/repository.md) opens with the age identity, transparently
    storage = open_encrypted(config, location)
    opener = Repository.open_or_init if create else Repository.open
    return opener(storage, lock_stale_after_s=config.repository.lock_stale_after_s)
