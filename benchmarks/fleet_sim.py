"""Simulated boxes of a fleet against one PostgreSQL-backed Prefect server (#22, docs/fleet.md).

Starts a throw-away PostgreSQL cluster and a Prefect server on it (the test bed's,
tests/bed/postgres.py), then for ``--boxes`` boxes makes the API calls their workers and runs
make, over plain HTTP:

- every box's process worker: ``get_scheduled_flow_runs`` on its work pool every 10 s (Prefect's
  ``PREFECT_WORKER_QUERY_SECONDS``) and a heartbeat every 30 s;
- every box's health run, ``--speedup`` times as often as the real 5 minutes: the run created,
  PENDING → RUNNING, one task run per check (``--checks``, each PENDING → RUNNING → COMPLETED),
  its log lines in one batch, its table artifact, COMPLETED.

Prints the latency of each kind of call (median, 95th percentile, max), the runs made, and the
database's growth per run, from which the growth per day of a real fleet follows (health and
GPU runs every 5 minutes per box, plus the daily and weekly runbooks).

    uv run python benchmarks/fleet_sim.py --boxes 50 --seconds 120 --speedup 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
# the test bed's server and its plain-HTTP client (benchmarks import no SDK themselves)
from bed.local_prefect import PrefectApi
from bed.postgres import postgres_cluster, prefect_on_postgres

RUNS_PER_BOX_PER_DAY = 2 * 288 + 6  # health and GPU every 5 minutes; logs, backup, prune, …


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)

    def call(self, http: PrefectApi, kind: str, path: str, body: Any) -> Any:
        """One POST, timed; no retry (a 503 or a timeout counts as an error, as it costs a
        worker or a run its call)."""
        t0 = time.perf_counter()
        try:
            response = http.http.post(path, json=body)
        except Exception:  # a timeout or a dropped connection: counted, the simulation goes on
            with self.lock:
                self.errors[kind] += 1
            return None
        elapsed = time.perf_counter() - t0
        with self.lock:
            if response.status_code >= 400:
                self.errors[kind] += 1
                return None
            self.times[kind].append(elapsed)
        return response.json() if response.content else {}


def worker(api: str, pool: str, stop: threading.Event, rec: Recorder) -> None:
    http = PrefectApi(api)
    try:
        beat = 0.0
        while not stop.is_set():
            rec.call(http, "worker poll", f"/work_pools/{pool}/get_scheduled_flow_runs", {})
            if time.monotonic() - beat >= 30:
                body = {"name": f"{pool}-worker", "heartbeat_interval_seconds": 30}
                rec.call(http, "worker heartbeat", f"/work_pools/{pool}/workers/heartbeat", body)
                beat = time.monotonic()
            stop.wait(10)
    finally:
        http.close()


def health_runs(
    api: str, box: int, boxes: int, flow_id: str, every: float, checks: int, stop: threading.Event,
    rec: Recorder, done: list[int],
) -> None:  # fmt: skip
    http = PrefectApi(api)
    try:
        stop.wait(every * box / boxes)  # spread the boxes over the interval
        while not stop.is_set():
            t0 = time.monotonic()
            run = rec.call(http, "run create", "/flow_runs/", {
                "flow_id": flow_id, "name": f"health-box-{box}-{t0:.0f}",
                "tags": [f"box:box-{box}", "health"], "state": {"type": "PENDING"},
            })  # fmt: skip
            if run:
                rid = run["id"]
                rec.call(http, "run state", f"/flow_runs/{rid}/set_state",
                         {"state": {"type": "RUNNING"}})  # fmt: skip
                for check in range(checks):
                    task = rec.call(http, "task create", "/task_runs/", {
                        "flow_run_id": rid, "task_key": f"check-{check}",
                        "dynamic_key": "0", "name": f"check-{check}",
                        "state": {"type": "PENDING"},
                    })  # fmt: skip
                    if task:
                        for state in ("RUNNING", "COMPLETED"):
                            rec.call(http, "task state", f"/task_runs/{task['id']}/set_state",
                                     {"state": {"type": state}})  # fmt: skip
                logs = [{"name": "prefect.flow_runs", "level": 20, "message": f"check {i}: ok",
                         "timestamp": "2026-12-07T00:00:00Z", "flow_run_id": rid}
                        for i in range(checks + 4)]  # fmt: skip
                rec.call(http, "logs", "/logs/", logs)
                rec.call(http, "artifact", "/artifacts/", {
                    "key": f"health-box-{box}", "type": "table", "flow_run_id": rid,
                    "data": [{"check": f"check-{i}", "state": "ok"} for i in range(checks)],
                })  # fmt: skip
                rec.call(http, "run state", f"/flow_runs/{rid}/set_state",
                         {"state": {"type": "COMPLETED"}})  # fmt: skip
                with rec.lock:
                    done[0] += 1
            stop.wait(max(0.0, every - (time.monotonic() - t0)))
    finally:
        http.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--speedup", type=float, default=30, help="health runs this much faster")
    parser.add_argument("--checks", type=int, default=12, help="task runs per health run")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    with postgres_cluster() as db, prefect_on_postgres(db, Path(tempfile.mkdtemp())) as server:
        api = server.api_url
        setup = PrefectApi(api)
        flow_id = setup.post("/flows/", {"name": "health-check"})["id"]
        for box in range(args.boxes):
            setup.post("/work_pools/", {"name": f"sbx-box-box-{box}", "type": "process"})
        setup.close()
        size = "select pg_database_size('prefect')"
        before = int(db.query(size)[0])
        rec, stop, done = Recorder(), threading.Event(), [0]
        every = 300 / args.speedup
        threads = [
            threading.Thread(target=worker, args=(api, f"sbx-box-box-{b}", stop, rec))
            for b in range(args.boxes)
        ] + [
            threading.Thread(
                target=health_runs,
                args=(api, b, args.boxes, flow_id, every, args.checks, stop, rec, done),
            )
            for b in range(args.boxes)
        ]
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        db.query("checkpoint")
        after = int(db.query(size)[0])
        tables = db.query(
            "select relname || ' ' || pg_total_relation_size(relid) from pg_statio_user_tables "
            "order by pg_total_relation_size(relid) desc limit 6"
        )
    per_run = (after - before) / max(1, done[0])
    figures = {
        "boxes": args.boxes,
        "seconds": args.seconds,
        "speedup": args.speedup,
        "health_runs": done[0],
        "runs_per_second": round(done[0] / args.seconds, 2),
        "latency_ms": {
            kind: {
                "calls": len(ts),
                "p50": round(statistics.median(ts) * 1000, 1),
                "p95": round(statistics.quantiles(ts, n=20)[-1] * 1000, 1) if len(ts) > 1 else None,
                "max": round(max(ts) * 1000, 1),
            }
            for kind, ts in sorted(rec.times.items())
        },
        "errors": dict(rec.errors),
        "db_growth_bytes": after - before,
        "bytes_per_run": round(per_run),
        "growth_per_day_mib": round(per_run * RUNS_PER_BOX_PER_DAY * args.boxes / 2**20),
        "largest_tables": tables,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
