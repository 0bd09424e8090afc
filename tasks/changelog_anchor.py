"""Verifying the change log against its anchor: the head hash kept in a Prefect Variable, off the
stack's disk, so a rewrite of the whole file is caught too (docs/changelog.md)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable

from tasks.changelog import ChangeLogReport, anchor_variable_name, verify_changes


@task(name="verify-changelog", cache_policy=NO_CACHE)
def verify_with_anchor(stack_dir: str) -> ChangeLogReport:
    """Verify the chain against the head copy kept in a Prefect Variable (else the head file)."""
    stack = Path(stack_dir)
    anchor = Variable.get(anchor_variable_name(stack), default=None)
    return verify_changes(stack, anchor=str(anchor) if anchor else None)
