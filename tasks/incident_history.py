"""What happened since an incident opened, read from its sources for ``sbx incident report``.

Three sources besides the incident's own actions: the stack's change log (entries since the
incident opened), the Prefect API's flow runs since then (every sbx command is one, so the run
history shows what ran, also what recorded no action), and ``blast-radius.json`` when the
blast-radius step saved one. The Prefect API may be unreachable during an incident (the box
is frozen, the server was stopped): then the report says so and is still written.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.changelog import ChangeEntry, read_changes
from tasks.incident_record import incident_dir
from tasks.incident_report import BlastRadius, FlowRunLine, FlowRunsRead, parse_blast_radius

RUNS_LIMIT = 200  # a report is for a person: the newest runs of a long incident are enough


def changes_since(stack_dir: Path, since: datetime) -> list[ChangeEntry]:
    """Change-log entries made at or after ``since`` (the log keeps seconds)."""
    floor = since.astimezone(UTC).replace(microsecond=0)
    return [c for c in read_changes(stack_dir) if datetime.fromisoformat(c.time) >= floor]


def read_blast_radius(stack_dir: Path, incident_id: str) -> BlastRadius | None:
    path = incident_dir(stack_dir, incident_id) / "blast-radius.json"
    try:
        return parse_blast_radius(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # a damaged file is shown as such, not fatal
        return BlastRadius(flagged_keys=[f"(blast-radius.json unreadable: {exc})"])


@task(name="read-flow-runs", cache_policy=NO_CACHE)
def read_flow_runs(since: datetime, exclude: str | None = None) -> FlowRunsRead:
    """Flow runs that started at or after ``since``, oldest first (never raises)."""
    try:
        return FlowRunsRead(available=True, runs=_query_runs(since, exclude))
    except Exception as exc:  # an unreachable or failing API: the report says so
        return FlowRunsRead(available=False, error=f"{type(exc).__name__}: {exc}"[:300])


def _query_runs(since: datetime, exclude: str | None) -> list[FlowRunLine]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterId,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
            sort=FlowRunSort.START_TIME_ASC,
            limit=RUNS_LIMIT,
        )
        flow_ids = sorted({r.flow_id for r in runs}, key=str)
        flows = (
            client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=flow_ids)))
            if flow_ids
            else []
        )
    names = {f.id: f.name for f in flows}
    return [
        FlowRunLine(
            id=str(r.id),
            name=r.name,
            flow=names.get(r.flow_id, "?"),
            state=r.state_name or (r.state.name if r.state else "?"),
            start=r.start_time,
            end=r.end_time,
        )
        for r in runs
        if str(r.id) != exclude
    ]
