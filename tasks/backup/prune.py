"""Pruning as tasks: the plan (a pure function of the snapshot list and the policy,
sbx/repository/retention.py) and its application under the repository's lock.

Pre-upgrade snapshots (taken by ``sbx upgrade`` and ``sbx model swap`` before they change a
service, tagged ``trigger=pre-upgrade``) are what a rollback returns the data from: they are
protected while their upgrade's journal entry is open, and for ``[upgrade]
keep_pre_upgrade_days`` after they were taken, whatever the policy says.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig
from sbx.repository import (
    PrunePlan,
    PruneReport,
    Repository,
    RetentionPolicy,
    SnapshotSummary,
    UnreadableSnapshot,
)
from tasks.upgrade.journal import read_open

PRE_UPGRADE = "pre-upgrade"


def pre_upgrade_kept(
    summaries: Iterable[SnapshotSummary | UnreadableSnapshot],
    open_entry: str | None,
    keep_days: int,
    now: datetime,
) -> list[str]:
    """Ids of the pre-upgrade snapshots to keep: their entry is open, or they are recent."""
    kept = []
    for listed in summaries:
        if isinstance(listed, UnreadableSnapshot) or listed.tags.get("trigger") != PRE_UPGRADE:
            continue
        created = listed.created_at
        created = created.replace(tzinfo=UTC) if created.tzinfo is None else created
        is_open = open_entry is not None and listed.tags.get(PRE_UPGRADE) == open_entry
        if is_open or now - created < timedelta(days=keep_days):
            kept.append(listed.id)
    return kept


@task(name="plan-prune", cache_policy=NO_CACHE)
def plan_prune(
    repository: Repository, policy: RetentionPolicy, config: SbxConfig | None = None
) -> PrunePlan:
    """Which snapshots the policy keeps, per part; the engine's planner always keeps the newest
    drill-passed one (invariant 6); with ``config``, pre-upgrade snapshots are protected too."""
    protected: list[str] = []
    if config is not None:
        entry = read_open(config.stack_dir)
        protected = pre_upgrade_kept(
            repository.snapshot_summaries(),
            entry.id if entry else None,
            config.upgrade.keep_pre_upgrade_days,
            datetime.now(UTC),
        )
    return repository.plan_prune(policy, protected)


@task(name="prune-snapshots", cache_policy=NO_CACHE)
def prune_snapshots(repository: Repository, plan: PrunePlan, *, dry_run: bool) -> PruneReport:
    """Forget the snapshots the plan drops, then collect their unreferenced objects."""
    return repository.prune(plan, dry_run=dry_run)
