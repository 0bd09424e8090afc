"""Deleting old reading runs (health, GPU) from the Prefect server's run history.

Prefect's own vacuum has one retention period for every run (docs/fleet.md); this keeps the
frequent readings shorter than the runs that changed something. On a fleet's box only the box's
own runs (tagged ``box:<box>``) are touched; runs that have not ended, and subflow runs (they go
with their parent), never are.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

#: one page of runs read and deleted at a time
PAGE = 200


@task(name="delete-old-runs", cache_policy=NO_CACHE)
def delete_old_runs(
    flows: list[str], older_than_days: float, box: str | None, *, dry_run: bool = False
) -> int:
    """Delete the ended runs of ``flows`` older than ``older_than_days``; how many went (or,
    with ``dry_run``, would go)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterEndTime,
        FlowRunFilterParentTaskRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType

    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    final = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
    runs_filter = FlowRunFilter(
        end_time=FlowRunFilterEndTime(before_=cutoff),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=final)),
        parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True),
        tags=FlowRunFilterTags(all_=[f"box:{box}"]) if box else None,
    )
    flow_filter = FlowFilter(name=FlowFilterName(any_=flows))
    deleted = 0
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(
                flow_filter=flow_filter, flow_run_filter=runs_filter, limit=PAGE,
                offset=deleted if dry_run else 0,
            )  # fmt: skip
            if not page:
                return deleted
            for run in page:
                if not dry_run:
                    client.delete_flow_run(run.id)
                deleted += 1
