"""Every box of a fleet at a glance, read from the shared Prefect server (no box needed).

A box of a fleet is a work pool ``sbx-box-<box>`` (``sbx serve --box``); its runs carry the tag
``box:<box>``: the deployment's tag for scheduled and manual runs, and :func:`box_tags` for the
runs a flow starts inside one (the nightly backup's off-box copy). Per box: the newest run that
started of the backup, the off-box copy, the restore drill (with its RTO, from the drill's
artifact) and the health check, and the incident that is open — the newest incident run that
started after the last ``incident-report`` run that closed one — each with its UI address.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun

POOL_PREFIX = "sbx-box-"
#: what each column reads: the flow whose newest started run it shows
FLOWS = {
    "backup": "backup-stack",
    "offbox": "copy-offbox",
    "drill": "drill-restore",
    "health": "health-check",
}
#: "Restore drill of <id>: passed, RTO 12.3 s" (the drill artifact's description)
RTO = re.compile(r"RTO (\d+(?:\.\d+)?) s")


def box_tags(config: SbxConfig) -> list[str]:
    """``["box:<box>"]`` on a fleet's box, else nothing: what a flow tags the runs it starts."""
    return [f"box:{config.box}"] if config.box else []


class RunRef(BaseModel):
    """One flow run as the fleet view shows it."""

    model_config = ConfigDict(frozen=True)

    name: str
    state: str  # the state's name: Completed, Failed, Running, Crashed, …
    ok: bool
    started: datetime | None
    url: str


class BoxRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    box: str
    backup: RunRef | None = None
    offbox: RunRef | None = None
    drill: RunRef | None = None
    rto_s: float | None = None
    health: RunRef | None = None
    incident: RunRef | None = None  # the newest run of the open incident; None: none open


class FleetView(BaseModel):
    """What ``sbx fleet --json`` prints and the fleet artifact shows."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    api_url: str
    ui_url: str
    read_at: datetime
    boxes: list[BoxRow]


def read_fleet(client: SyncPrefectClient, api_url: str, ui_url: str) -> FleetView:
    """Every box with a work pool on the server, and its newest runs."""
    pools = client.read_work_pools()
    boxes = sorted(
        p.name.removeprefix(POOL_PREFIX) for p in pools if p.name.startswith(POOL_PREFIX)
    )
    rows = []
    for box in boxes:
        refs = {
            column: _ref(newest[0], ui_url) if (newest := _newest(client, box, [flow])) else None
            for column, flow in FLOWS.items()
        }
        rto = _rto(client, refs["drill"]) if refs["drill"] else None
        incident = _open_incident(client, box, ui_url)
        rows.append(BoxRow(box=box, rto_s=rto, incident=incident, **refs))
    return FleetView(api_url=api_url, ui_url=ui_url, read_at=datetime.now(UTC), boxes=rows)


HEAD = ("box", "backup", "off-box", "drill", "RTO", "health", "incident")
#: the run columns of HEAD, in order (RTO is the drill's)
RUN_COLUMNS = ("backup", "offbox", "drill", "health", "incident")


def cells(row: BoxRow, now: datetime) -> tuple[str, ...]:
    """One row of the fleet table: each run as ``ok 3h`` or its state and age (``Failed 20m``),
    ``—`` where none ran; an open incident as ``open 2d``."""

    def cell(ref: RunRef | None, ok_word: str = "ok") -> str:
        if ref is None:
            return "—"
        word = ok_word if ref.ok or ok_word == "open" else ref.state
        return f"{word} {_age(ref.started, now)}"

    rto = f"{row.rto_s:.0f} s" if row.rto_s is not None else "—"
    return (
        row.box,
        cell(row.backup),
        cell(row.offbox),
        cell(row.drill),
        rto,
        cell(row.health),
        cell(row.incident, "open"),
    )


def _age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "?"
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def fleet_markdown(view: FleetView) -> str:
    """The fleet table as markdown, each run linked to its page in the UI."""
    lines = [
        f"# Fleet on {view.api_url}",
        "",
        f"{len(view.boxes)} boxes, read {view.read_at:%Y-%m-%d %H:%M} UTC; ages are since each "
        "run started.",
        "",
        "| " + " | ".join(HEAD) + " |",
        "|" + "---|" * len(HEAD),
    ]
    for row in view.boxes:
        text = list(cells(row, view.read_at))
        refs = [getattr(row, name) for name in RUN_COLUMNS]
        for index, ref in zip((1, 2, 3, 5, 6), refs, strict=True):
            if ref is not None:
                text[index] = f"[{text[index]}]({ref.url})"
        lines.append("| " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


@task(name="read-fleet", cache_policy=NO_CACHE)
def read_fleet_task(api_url: str, ui_url: str) -> FleetView:
    """The fleet view, inside the flow that publishes it."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return read_fleet(client, api_url, ui_url)


def _newest(client: SyncPrefectClient, box: str, flows: list[str]) -> list[FlowRun]:
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    return client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=flows)),
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"box:{box}"]),
            start_time=FlowRunFilterStartTime(is_null_=False),  # started, not merely scheduled
        ),
        sort=FlowRunSort.START_TIME_DESC,
        limit=1,
    )


def _ref(run: FlowRun, ui_url: str) -> RunRef:
    state = run.state
    return RunRef(
        name=run.name,
        state=state.name if state else "Unknown",
        ok=bool(state and state.is_completed()),
        started=run.start_time,
        url=f"{ui_url}/runs/flow-run/{run.id}",
    )


def _rto(client: SyncPrefectClient, drill: RunRef) -> float | None:
    """The RTO the drill's artifact states (None when it failed or published none)."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id = drill.url.rsplit("/", 1)[1]
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    )
    for artifact in artifacts:
        found = RTO.search(artifact.description or "")
        if found:
            return float(found.group(1))
    return None


def _open_incident(client: SyncPrefectClient, box: str, ui_url: str) -> RunRef | None:
    """The newest incident run, unless it is the report that closed the incident."""
    newest = _newest(client, box, INCIDENT_FLOWS)
    if not newest or _closes(newest[0], client):
        return None
    return _ref(newest[0], ui_url)


INCIDENT_FLOWS = [
    "incident-freeze",
    "incident-unfreeze",
    "incident-preserve",
    "incident-verify-evidence",
    "incident-blast-radius",
    "incident-contain",
    "incident-recover",
    "incident-report",
]


def _closes(run: FlowRun, client: SyncPrefectClient) -> bool:
    """A completed ``incident-report`` run with ``close`` set: the incident is closed."""
    if not (run.parameters or {}).get("close"):
        return False
    completed = bool(run.state and run.state.is_completed())
    return completed and client.read_flow(run.flow_id).name == "incident-report"
