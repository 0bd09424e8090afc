"""The restore's long steps as tasks: writing a snapshot's files (staged, every byte verified,
then moved into place: sbx/repository/restore.py) and waiting for the stack to be healthy again.

Neither is retried: a restore that failed left its target untouched and says why; a wait that
timed out is the answer the in-place restore acts on (it swaps the old data back).
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig
from sbx.repository import Repository, RestoreReport, SnapshotManifest
from tasks.clients.compose import ComposeCli
from tasks.status import read_stack_status

HEALTH_POLL_S = 2.0


@task(name="restore-files", cache_policy=NO_CACHE)
def restore_files(
    repository: Repository,
    manifest: SnapshotManifest,
    target: Path,
    parts: list[str] | None = None,
    *,
    force: bool = False,
) -> RestoreReport:
    """Write the snapshot's files (all parts, or ``parts``) into ``target``, verified."""
    return repository.restore(manifest, target, parts, force=force)


@task(name="wait-healthy", cache_policy=NO_CACHE)
def wait_healthy(config: SbxConfig, timeout_s: float) -> float | None:
    """Seconds until every required service runs and answers, or None after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if read_stack_status(config).ok:
            return time.monotonic() - started
        time.sleep(HEALTH_POLL_S)
    return None


@task(name="start-services", cache_policy=NO_CACHE)
def start_services(config: SbxConfig, project: str) -> None:
    """``docker compose up`` after restored configuration files were swapped in (without
    waiting: :func:`wait_healthy` is the wait, with its own timeout)."""
    ComposeCli(config.stack_dir, project=project).up(wait=False)
