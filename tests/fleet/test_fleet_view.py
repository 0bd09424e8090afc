"""The fleet view (#22 deliverable 4): `sbx fleet [--json]` and the `fleet` artifact read every
box's newest backup, off-box copy, drill (RTO), health run and open incident from the shared
server alone, each with its page in the UI. The runs are seeded through the server's API, as the
boxes' workers would leave them (tagged `box:<box>`, in the box's work pool)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from bed import FleetServer
from bed.local_prefect import PrefectApi

SBX = [sys.executable, "-m", "sbx"]


class Seeder:
    def __init__(self, api: PrefectApi) -> None:
        self.api = api

    def pool(self, box: str) -> None:
        self.api.post("/work_pools/", {"name": f"sbx-box-{box}", "type": "process"})

    def run(self, flow: str, box: str, final: str, **parameters: Any) -> str:
        """A flow run of ``flow`` on ``box`` that started and ended in state ``final``."""
        flow_id = self.api.post("/flows/", {"name": flow})["id"]
        created = self.api.post(
            "/flow_runs/",
            {"flow_id": flow_id, "tags": [f"box:{box}"], "parameters": parameters,
             "state": {"type": "PENDING"}},
        )  # fmt: skip
        for state in ("RUNNING", final):
            path = f"/flow_runs/{created['id']}/set_state"
            self.api.post(path, {"state": {"type": state}, "force": True})
        return str(created["id"])


@pytest.fixture(scope="module")
def seeded(fleet_server: FleetServer, run_id: str) -> Iterator[dict[str, str]]:
    """Box ``<id>-x``: backup ok, copy failed, drill passed (RTO 42.5 s), health failing, an
    incident open. Box ``<id>-y``: a backup, an incident closed by its report, nothing else."""
    api = PrefectApi(fleet_server.api_url)
    seed = Seeder(api)
    x, y = f"{run_id}-x", f"{run_id}-y"
    runs: dict[str, str] = {"x": x, "y": y}
    try:
        seed.pool(x)
        seed.pool(y)
        runs["x-backup"] = seed.run("backup-stack", x, "COMPLETED")
        runs["x-offbox"] = seed.run("copy-offbox", x, "FAILED")
        runs["x-drill"] = seed.run("drill-restore", x, "COMPLETED")
        api.post("/artifacts/", {
            "key": f"drill-{x}", "type": "markdown", "data": "# Drill", "flow_run_id":
            runs["x-drill"], "description": "Restore drill of 0123abcd: passed, RTO 42.5 s",
        })  # fmt: skip
        seed.run("health-check", x, "COMPLETED")
        runs["x-health"] = seed.run("health-check", x, "FAILED")  # the newest one counts
        runs["x-incident"] = seed.run("incident-freeze", x, "COMPLETED")
        runs["y-backup"] = seed.run("backup-stack", y, "COMPLETED")
        seed.run("incident-freeze", y, "COMPLETED")
        seed.run("incident-report", y, "COMPLETED", close=True)
        seed.run("backup-stack", "someone-else", "FAILED")  # another box's tag: not x's
        yield runs
    finally:
        api.close()


def sbx_fleet(fleet_server: FleetServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SBX_"))}
    env |= {"PREFECT_API_URL": fleet_server.api_url, "COLUMNS": "80",
            "PREFECT_HOME": os.environ["PREFECT_HOME"]}  # fmt: skip
    return subprocess.run(
        [*SBX, "fleet", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_the_fleet_view_reads_each_box_from_the_server(
    fleet_server: FleetServer, seeded: dict[str, str]
) -> None:
    ui = fleet_server.ui_url
    done = sbx_fleet(fleet_server, "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["box"]: row for row in json.loads(done.stdout)["boxes"]}
    x, y = rows[seeded["x"]], rows[seeded["y"]]
    assert x["backup"]["ok"] and x["backup"]["url"] == f"{ui}/runs/flow-run/{seeded['x-backup']}"
    assert x["offbox"]["state"] == "Failed" and not x["offbox"]["ok"]
    assert x["drill"]["ok"] and x["rto_s"] == 42.5
    assert x["health"]["state"] == "Failed"
    assert x["health"]["url"].endswith(seeded["x-health"])
    assert x["incident"]["url"].endswith(seeded["x-incident"])
    assert y["backup"]["url"].endswith(seeded["y-backup"])
    assert y["incident"] is None  # closed by its report
    assert y["drill"] is None and y["rto_s"] is None and y["health"] is None

    table = sbx_fleet(fleet_server)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["box", "backup", "off-box", "drill", "RTO", "health", "incident"]
    row = next(line for line in lines if line.startswith(seeded["x"]))
    words = row.split()  # each run: its word and its age; the RTO: "42 s"
    assert [words[1], words[3], words[5], *words[7:10], words[11]] == [
        "ok", "Failed", "ok", "42", "s", "Failed", "open"
    ], row  # fmt: skip
    assert all(len(line) <= 80 for line in lines if "http" not in line), table.stdout
    assert f"  {seeded['x']} backup: {ui}/runs/flow-run/{seeded['x-backup']}" in lines


def test_the_fleet_flow_publishes_the_view_as_an_artifact(
    fleet_server: FleetServer, on_fleet_server: str, seeded: dict[str, str]
) -> None:
    from bed.prefect_runs import newest_artifact

    from flows.fleet import publish_fleet

    view = publish_fleet()
    artifact = newest_artifact("fleet")
    assert seeded["x"] in {row.box for row in view.boxes}
    assert artifact is not None
    kind, markdown = artifact
    assert kind == "markdown"
    row = next(line for line in markdown.splitlines() if line.startswith(f"| {seeded['x']} "))
    assert f"]({fleet_server.ui_url}/runs/flow-run/{seeded['x-backup']})" in row, row
    assert "| 42 s |" in row, row


def test_the_fleet_view_deployment_loads_and_is_scheduled() -> None:
    from prefect.flows import load_flow_from_entrypoint

    from deployments.serve import FLEET_VIEW

    assert load_flow_from_entrypoint(FLEET_VIEW.entrypoint).name == "fleet-view"
    box = FLEET_VIEW.for_box("edge-1")
    assert box.name == "fleet-view-every-15-minutes-edge-1"
    assert box.work_pool.name == "sbx-box-edge-1"
    assert [s.cron for s in box.schedules] == ["*/15 * * * *"]


def test_the_rto_is_read_from_what_the_drill_publishes() -> None:
    from datetime import UTC, datetime
    from pathlib import Path

    from tasks.drill.report import DrillReport, drill_summary
    from tasks.fleet import RTO

    fields: dict[str, Any] = {
        "drill_id": "d1", "snapshot_id": "0123abcd", "repository": "/r", "scratch_project": "p",
        "stack_dir": Path("/s"), "started_at": datetime.now(UTC), "phases": {}, "checks": [],
    }  # fmt: skip
    passed = drill_summary(DrillReport(passed=True, rto_s=41.26, **fields))
    assert passed == "Restore drill of 0123abcd: passed, RTO 41.3 s"
    found = RTO.search(passed)
    assert found and float(found.group(1)) == 41.3
    failed = drill_summary(DrillReport(passed=False, rto_s=None, **fields))
    assert failed == "Restore drill of 0123abcd: FAILED" and not RTO.search(failed)
