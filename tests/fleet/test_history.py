"""Run-history retention (#22 deliverable 5): the daily prune-history run deletes a box's ended
health and GPU runs older than [history] health_days from the shared server, and nothing else:
not the box's backup runs, not another box's readings, not a run still going."""

from __future__ import annotations

from pathlib import Path

import pytest
from bed import FleetServer
from bed.local_prefect import PrefectApi


def seed(api: PrefectApi, flow: str, box: str, *states: str) -> str:
    flow_id = api.post("/flows/", {"name": flow})["id"]
    run = api.post("/flow_runs/", {"flow_id": flow_id, "tags": [f"box:{box}"],
                                   "state": {"type": "PENDING"}})  # fmt: skip
    for state in states:
        api.post(f"/flow_runs/{run['id']}/set_state", {"state": {"type": state}, "force": True})
    return str(run["id"])


def test_old_readings_go_and_every_other_run_stays(
    fleet_server: FleetServer,
    on_fleet_server: str,
    run_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.history import prune_history

    mine, other = f"{run_id}-h", f"{run_id}-o"
    api = PrefectApi(fleet_server.api_url)
    try:
        health = seed(api, "health-check", mine, "RUNNING", "FAILED")
        gpu = seed(api, "inspect-gpus", mine, "RUNNING", "COMPLETED")
        running = seed(api, "health-check", mine, "RUNNING")
        backup = seed(api, "backup-stack", mine, "RUNNING", "COMPLETED")
        theirs = seed(api, "health-check", other, "RUNNING", "COMPLETED")
        stack = tmp_path / "stack"
        stack.mkdir()
        (stack / "sbx.toml").write_text("[history]\nhealth_days = 0\n")  # all that ended
        monkeypatch.setenv("SBX_BOX", mine)
        assert prune_history(dry_run=True, stack=str(stack)) == 2
        assert api.get(f"/flow_runs/{health}")["id"] == health  # a dry run deletes nothing
        assert prune_history(stack=str(stack)) == 2
        for gone in (health, gpu):
            assert api.http.get(f"/flow_runs/{gone}").status_code == 404
        for kept in (running, backup, theirs):
            assert api.get(f"/flow_runs/{kept}")["id"] == kept
    finally:
        api.close()
