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
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import resolve_stack_dir
from tasks.changelog import ChangeEntry, read_changes
from tasks.incident.record import incident_dir
from tasks.incident.report import BlastRadius, FlowRunLine, FlowRunsRead, parse_blast_radius

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
def read_flow_runs(since: datetime, stack_dir: Path | None = None) -> FlowRunsRead:
    """Flow runs of the stack that started at or after ``since``, oldest first (never raises).

    A fleet's server holds other boxes' runs too: with ``stack_dir``, runs whose ``stack``
    parameter names another stack are left out (no ``stack`` parameter: box-wide, kept; None:
    the default stack of this host).
    """
    try:
        found = _query_runs(since)
    except Exception as exc:  # an unreachable or failing API: the report says so
        return FlowRunsRead(available=False, error=f"{type(exc).__name__}: {exc}"[:300])
    runs = [r for r, params in found if stack_dir is None or _same_stack(params, stack_dir)]
    return FlowRunsRead(available=True, runs=runs)


def _same_stack(params: dict[str, Any], stack_dir: Path) -> bool:
    if "stack" not in params:
        return True
    named = params["stack"]
    ours = stack_dir.resolve()
    return resolve_stack_dir(Path(named) if named else None).resolve() == ours


def _query_runs(since: datetime) -> list[tuple[FlowRunLine, dict[str, Any]]]:
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
        (
            FlowRunLine(
                id=str(r.id),
                name=r.name,
                flow=names.get(r.flow_id, "?"),
                state=r.state_name or (r.state.name if r.state else "?"),
                start=r.start_time,
                end=r.end_time,
            ),
            r.parameters or {},
        )
        for r in runs
    ]
