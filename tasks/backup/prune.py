"""Pruning as tasks: the plan (a pure function of the snapshot list and the policy,
sbx/repository/retention.py) and its application under the repository's lock."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from sbx.repository import PrunePlan, PruneReport, Repository, RetentionPolicy
from sbx.repository.drills import newest_drill_passed


@task(name="plan-prune", cache_policy=NO_CACHE)
def plan_prune(repository: Repository, policy: RetentionPolicy) -> PrunePlan:
    """Which snapshots the policy keeps; the newest drill-passed one is always kept."""
    # invariant 6: the newest snapshot that passed a restore drill is never pruned
    drilled = newest_drill_passed(repository.storage, repository.list_snapshots())
    return repository.plan_prune(policy, protected=[drilled] if drilled else [])


@task(name="prune-snapshots", cache_policy=NO_CACHE)
def prune_snapshots(repository: Repository, plan: PrunePlan, *, dry_run: bool) -> PruneReport:
    """Forget the snapshots the plan drops, then collect their unreferenced objects."""
    return repository.prune(plan, dry_run=dry_run)
