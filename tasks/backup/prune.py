"""Pruning as tasks: the plan (a pure function of the snapshot list and the policy,
sbx/repository/retention.py) and its application under the repository's lock."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from sbx.repository import PrunePlan, PruneReport, Repository, RetentionPolicy


@task(name="plan-prune", cache_policy=NO_CACHE)
def plan_prune(repository: Repository, policy: RetentionPolicy) -> PrunePlan:
    """Which snapshots the policy keeps, per part; the engine's planner always keeps the newest
    drill-passed one (invariant 6), so nothing is added here."""
    return repository.plan_prune(policy)


@task(name="prune-snapshots", cache_policy=NO_CACHE)
def prune_snapshots(repository: Repository, plan: PrunePlan, *, dry_run: bool) -> PruneReport:
    """Forget the snapshots the plan drops, then collect their unreferenced objects."""
    return repository.prune(plan, dry_run=dry_run)
