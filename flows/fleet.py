"""The fleet view as a Prefect artifact: every box of the shared server at a glance."""

from __future__ import annotations

import os

from prefect import flow, get_run_logger
from prefect.settings import PREFECT_API_URL

from tasks.fleet import FleetView, fleet_markdown, read_fleet_task
from tasks.reports import publish_markdown

ARTIFACT_KEY = "fleet"


@flow(name="fleet-view", log_prints=False)
def publish_fleet() -> FleetView:
    """Read every box's newest backup, off-box copy, drill (RTO), health run and open incident
    from this server and publish them as the `fleet` artifact, each run linked."""
    api = str(PREFECT_API_URL.value() or "").rstrip("/")
    ui = os.environ.get("PREFECT_UI_URL") or api.removesuffix("/api")
    view = read_fleet_task(api, ui)
    publish_markdown(ARTIFACT_KEY, fleet_markdown(view), f"{len(view.boxes)} boxes")
    get_run_logger().info("fleet view of %d boxes published", len(view.boxes))
    return view
