"""The bed's shared server of a fleet: Prefect on a throw-away PostgreSQL cluster
(docs/fleet.md)."""

from __future__ import annotations

from bed import FleetServer
from bed.local_prefect import PrefectApi


def test_the_fleet_server_keeps_its_runs_in_postgresql(
    fleet_server: FleetServer, run_id: str
) -> None:
    api = PrefectApi(fleet_server.api_url)
    try:
        flow = api.post("/flows/", {"name": f"fleet-probe-{run_id}"})
        run = api.post("/flow_runs/", {"flow_id": flow["id"], "name": f"probe-{run_id}"})
    finally:
        api.close()
    database = fleet_server.database
    assert database.query(f"select name from flow where id = '{flow['id']}'") == [flow["name"]]
    assert database.query(f"select name from flow_run where id = '{run['id']}'") == [run["name"]]
    # no SQLite database beside it: everything the server keeps is in PostgreSQL
    assert not list(fleet_server.log.parent.rglob("*.db")), "a SQLite file under the server's home"
