"""Two boxes, one server (#22 deliverable 2): two copies of the example stack on this machine,
each with its own `sbx serve --box` worker and repository, against the PostgreSQL-backed server.
A box's deployment runs only on its own worker and lands in its own repository; one box's worker
gone leaves the other's runs going, and its own run waits (Late) and starts when it returns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bed import FleetServer
from bed.fleet import FleetBox, make_box, trimmed_prefect_yaml
from bed.local_prefect import PrefectApi
from bed.services import log_tail, wait_until

from sbx.repository import Repository

# only what the runs check: the box's notes (its name) and configs, not its model files
PARTS = {"parts": ["notes", "configs"]}


@pytest.fixture
def boxes(fleet_server: FleetServer, tmp_path: Path) -> Iterator[tuple[FleetBox, FleetBox]]:
    a = make_box(tmp_path / "a", "box-a", fleet_server.api_url)
    b = make_box(tmp_path / "b", "box-b", fleet_server.api_url)
    try:
        yield a, b
    finally:
        for box in (a, b):
            box.stop_worker()


def deployment(api: PrefectApi, name: str) -> dict[str, Any]:
    found = [d for d in api.deployments() if d["name"] == name]
    assert len(found) == 1, sorted(d["name"] for d in api.deployments())
    return found[0]


def run(api: PrefectApi, dep: dict[str, Any], **parameters: Any) -> str:
    """A manual run of ``dep``, as the UI's Run button (or a schedule) creates one."""
    created = api.post(f"/deployments/{dep['id']}/create_flow_run", {"parameters": parameters})
    return str(created["id"])


def snapshots(box: FleetBox) -> list[str]:
    return Repository.open(str(box.repo)).list_snapshots() if box.repo.exists() else []


def test_each_box_runs_only_its_own_flows_on_one_postgresql_server(
    fleet_server: FleetServer, boxes: tuple[FleetBox, FleetBox], tmp_path: Path
) -> None:
    a, b = boxes
    served = trimmed_prefect_yaml(
        tmp_path / "prefect.yaml", {"backup-nightly": PARTS, "restore-on-demand": {}}
    )
    a.start_worker(served)
    a.wait_worker()
    b.start_worker(served)  # after A: the first start also registers sbx's block types
    b.wait_worker()
    api = PrefectApi(fleet_server.api_url)
    try:
        backup_a = deployment(api, "stack-backup-nightly-box-a")
        backup_b = deployment(api, "stack-backup-nightly-box-b")
        restore_b = deployment(api, "stack-restore-on-demand-box-b")
        assert backup_a["work_pool_name"] == "sbx-box-box-a"
        assert backup_b["parameters"]["stack"] == str(b.stack)

        # both boxes back up at once; each run on its own worker, into its own repository
        ran_a, ran_b = run(api, backup_a), run(api, backup_b)
        for flow_run, box in ((ran_a, a), (ran_b, b)):
            final = api.wait_final(flow_run, timeout=300)
            assert final["state_type"] == "COMPLETED", (final["state"], log_tail(box.log, 60))
        assert len(snapshots(a)) == 1 and len(snapshots(b)) == 1
        assert ran_a in a.log.read_text() and ran_a not in b.log.read_text()
        assert ran_b in b.log.read_text() and ran_b not in a.log.read_text()

        # a manual restore for B, from the API: B's snapshot, restored by B's worker
        restored = tmp_path / "restored-b"
        ran = run(api, restore_b, to=str(restored))
        final = api.wait_final(ran, timeout=300)
        assert final["state_type"] == "COMPLETED", (final["state"], log_tail(b.log, 60))
        assert (restored / "notes" / "box.txt").read_text() == "box box-b\n"
        assert ran in b.log.read_text() and ran not in a.log.read_text()

        # A's worker dies: B's runs go on; A's run waits, marked Late, ...
        a.kill_worker()
        late_a, next_b = run(api, backup_a), run(api, backup_b)
        final = api.wait_final(next_b, timeout=300)
        assert final["state_type"] == "COMPLETED", (final["state"], log_tail(b.log, 60))
        assert len(snapshots(b)) == 2
        assert wait_until(
            lambda: api.get(f"/flow_runs/{late_a}")["state_name"] == "Late", timeout=120
        )
        assert len(snapshots(a)) == 1 and late_a not in b.log.read_text()
        # ... and starts when A's worker is back
        a.start_worker(served)
        final = api.wait_final(late_a, timeout=300)
        assert final["state_type"] == "COMPLETED", (final["state"], log_tail(a.log, 60))
        assert len(snapshots(a)) == 2

        # the fleet view finds both boxes' newest backups by their deployments' box tags
        view = b.sbx("fleet", "--json")
        assert view.returncode == 0, view.stderr
        rows = {row["box"]: row for row in json.loads(view.stdout)["boxes"]}
        assert rows["box-a"]["backup"]["url"].endswith(late_a), rows["box-a"]
        assert rows["box-b"]["backup"]["url"].endswith(next_b), rows["box-b"]
    finally:
        api.close()
