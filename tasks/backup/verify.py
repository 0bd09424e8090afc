"""Verifying a repository as a task: every object re-read and re-hashed, every file's hash
checked (sbx/repository/verify.py). Not retried: damage is an answer, not a transient error."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from sbx.repository import Repository, VerifyReport


@task(name="verify-snapshots", cache_policy=NO_CACHE)
def verify_snapshots(
    repository: Repository, snapshot: str | None, sample: float | None = None
) -> VerifyReport:
    """Verify ``snapshot`` (an id or 'latest'; None: every snapshot), or a sample of objects."""
    return repository.verify(snapshot, sample=sample)
