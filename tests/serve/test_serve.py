"""`sbx serve` as a real process: its own local Prefect server in a temporary SBX_HOME, every
deployment of prefect.yaml registered with its schedules, a manual run picked up by its process
worker, a clean stop on SIGTERM, and a restart that leaves unchanged deployments alone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from bed.local_prefect import PrefectApi, SbxHome, copy_files_stack, sbx_home
from bed.services import log_tail, wait_until

from deployments.serve import PROJECT_ROOT, read_prefect_yaml, stack_slug
from tasks.schedules import scheduled_backup

SBX = [sys.executable, "-m", "sbx"]


@pytest.fixture
def home(tmp_path: Path) -> Any:
    # a worker that polls every 2 s instead of 10: the manual run starts sooner
    with sbx_home(tmp_path / "sbx-home", {"PREFECT_WORKER_QUERY_SECONDS": "2"}) as home:
        yield home


def start_serve(home: SbxHome, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*SBX, "serve"], stdout=out, stderr=subprocess.STDOUT, env=home.env, cwd=log.parent
        )


def declared() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    return list(data["deployments"])


def test_serve_refuses_a_stack_it_cannot_find(home: SbxHome, tmp_path: Path) -> None:
    done = subprocess.run([*SBX, "serve", "--register-only", "--stack", str(tmp_path / "none")],
                          capture_output=True, text=True, env=home.env, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "holds no compose file" in done.stderr and "sbx init --stack" in done.stderr
    assert PrefectApi(home.api_url).deployments() == []  # nothing registered


def test_serve_registers_runs_and_stops_cleanly(home: SbxHome, tmp_path: Path) -> None:
    # the box is named once; every schedule then acts on it (#20 deliverable 1)
    stack = copy_files_stack(tmp_path / "stack")
    named = subprocess.run([*SBX, "init", "--stack", str(stack), "--repo", str(tmp_path / "repo")],
                           capture_output=True, text=True, env=home.env, timeout=120)  # fmt: skip
    assert named.returncode == 0, named.stdout + named.stderr
    log = tmp_path / "serve.log"
    proc = start_serve(home, log)
    api = PrefectApi(home.api_url)
    try:
        started = wait_until(
            lambda: "started!" in log.read_text() or proc.poll() is not None, timeout=240
        )
        assert started and proc.poll() is None, log_tail(log, 40)
        text = log.read_text()
        assert f"Prefect UI: {home.ui_url}/runs" in text, text
        assert f"every schedule acts on the stack {stack}" in text, text
        # recorded beside the stack: health then knows a backup is scheduled
        assert scheduled_backup(stack) == "backup-stack/stack-backup-nightly"

        # every prefect.yaml deployment, with its schedules, parameters and limits
        flows = api.flows_by_id()
        registered = {f"{flows[d['flow_id']]}/{d['name']}": d for d in api.deployments()}
        specs = declared()
        assert len(registered) == len(specs), sorted(registered)
        by_entry = {(d["entrypoint"], d["name"]): d for d in registered.values()}
        for spec in specs:
            # named for the stack it acts on: <stack>-<verb>-<schedule>
            dep = by_entry[(spec["entrypoint"], f"stack-{spec['name']}")]
            crons = sorted(
                (s["schedule"]["cron"], s["schedule"]["timezone"]) for s in dep["schedules"]
            )
            want = sorted((s["cron"], s["timezone"]) for s in spec.get("schedules", []))
            assert crons == want, (spec["name"], crons)
            assert all(s["active"] for s in dep["schedules"])
            assert dep["paused"] is False
            assert dep["work_pool_name"] == "sbx-box"
            assert dep["parameters"] == {"stack": str(stack), **(spec.get("parameters") or {})}
            assert sorted(dep["tags"]) == sorted(spec.get("tags", []))
            limit = spec.get("concurrency_limit")
            if limit:
                assert dep["global_concurrency_limit"]["limit"] == limit["limit"]
                assert (
                    dep["concurrency_options"]["collision_strategy"] == limit["collision_strategy"]
                )
            else:
                assert dep["global_concurrency_limit"] is None
        nightly = registered["backup-stack/stack-backup-nightly"]
        assert nightly["schedules"][0]["schedule"]["cron"] == "0 2 * * *"

        # a manual trigger, as the UI's "Run" button makes it: the worker picks it up, and
        # the run acts on the named stack with its configured repository
        run = api.post(f"/deployments/{nightly['id']}/create_flow_run", {"parameters": {}})
        final = api.wait_final(run["id"], timeout=300)
        assert final["state_type"] == "COMPLETED", (final["state"], log_tail(log, 60))
        assert final["name"].startswith(f"backup-{tmp_path.name}-stack-"), final["name"]
        assert (tmp_path / "repo").is_dir()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_tail(log, 40)
        assert "stopped (SIGTERM)" in log.read_text()

        # the deployments outlive the worker (not paused, as serve() would leave them) ...
        after = {d["id"]: d for d in api.deployments()}
        assert all(not d["paused"] for d in after.values())
        # a deployment an older sbx registered under the old scheme (no stack in its name or
        # parameters): its schedule would keep running beside the new one, so it is retired
        flow_id = next(i for i, name in flows.items() if name == "backup-stack")
        old = {"name": "nightly", "flow_id": flow_id, "work_pool_name": "sbx-box"}
        legacy = api.post("/deployments/", {**old, "version": "sbx-0"})
        # ... and a second start leaves unchanged ones alone: an upsert would delete their
        # scheduled runs, late ones included; --json prints the table as JSON and only that
        again = subprocess.run(
            [*SBX, "serve", "--register-only", "--json"],
            capture_output=True,
            text=True,
            env=home.env,
            timeout=240,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        outcomes = {d["full_name"]: d["outcome"] for d in json.loads(again.stdout)}
        assert outcomes.pop("backup-stack/nightly") == "retired", outcomes
        assert set(outcomes.values()) == {"unchanged"} and len(outcomes) == len(specs), outcomes
        assert "Prefect UI:" in again.stderr
        assert legacy["id"] not in {d["id"] for d in api.deployments()}
        for dep in api.deployments():
            assert dep["updated"] == after[dep["id"]]["updated"], dep["name"]

        # one box of a fleet on the same server: its own deployments and pool, ours untouched
        fleet = subprocess.run(
            [*SBX, "serve", "--register-only", "--box", "edge-1"],
            capture_output=True,
            text=True,
            env=home.env,
            timeout=240,
        )
        assert fleet.returncode == 0, fleet.stdout + fleet.stderr
        boxed = [d for d in api.deployments() if d["id"] not in after]
        want = sorted(f"stack-{s['name']}-edge-1" for s in specs)
        assert sorted(d["name"] for d in boxed) == want
        assert {d["work_pool_name"] for d in boxed} == {"sbx-box-edge-1"}
        assert all("box:edge-1" in d["tags"] for d in boxed)
        assert api.get("/work_pools/sbx-box-edge-1")["type"] == "process"
        for dep in api.deployments():
            if dep["id"] in after:
                assert dep["updated"] == after[dep["id"]]["updated"], dep["name"]
    finally:
        api.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_every_declared_deployment_is_understood() -> None:
    specs = read_prefect_yaml(PROJECT_ROOT / "prefect.yaml")
    assert [(s.entrypoint, s.name) for s in specs] == [
        (d["entrypoint"], d["name"]) for d in declared()
    ]
    # the fingerprint changes with the definition, and only with it
    first = specs[0]
    assert first.fingerprint(PROJECT_ROOT) == first.fingerprint(PROJECT_ROOT)
    changed = first.model_copy(update={"parameters": {"trigger": "other"}})
    assert changed.fingerprint(PROJECT_ROOT) != first.fingerprint(PROJECT_ROOT)


def test_unknown_keys_in_prefect_yaml_are_refused_naming_the_entry(tmp_path: Path) -> None:
    from sbx.errors import ConfigError

    path = tmp_path / "prefect.yaml"
    path.write_text(
        "deployments:\n  - name: nightly\n    entrypoint: flows/backup.py:backup_stack\n"
        "    schedules:\n      - interval: 60\n"
    )
    with pytest.raises(ConfigError, match=r"deployment #1 \(nightly\), key 'schedules\.0\.cron'"):
        read_prefect_yaml(path)


def test_a_box_name_must_fit_in_deployment_names() -> None:
    from sbx.errors import ConfigError

    spec = read_prefect_yaml(PROJECT_ROOT / "prefect.yaml")[0]
    assert spec.for_box("edge-1").work_pool.name == "sbx-box-edge-1"
    assert spec.for_box("edge-1").name == "backup-nightly-edge-1"
    with pytest.raises(ConfigError, match="lowercase letters, digits and dashes"):
        spec.for_box("Edge 1/x")


@pytest.mark.parametrize(
    ("stack", "slug"),
    [
        ("/home/op/sealed-box-ai/stack", "stack"),
        ("/srv/Edge Box&Co<1>/", "edge-box-co-1"),
        ("/srv/100%_ready", "100-ready"),
        ("/", "stack"),
    ],
)
def test_deployment_names_carry_the_stack_as_prefect_allows(stack: str, slug: str) -> None:
    from prefect.client.schemas.actions import DeploymentCreate

    assert stack_slug(stack) == slug
    name = f"{stack_slug(stack)}-{read_prefect_yaml(PROJECT_ROOT / 'prefect.yaml')[0].name}"
    assert name == f"{slug}-backup-nightly"
    DeploymentCreate(name=name, flow_id="00000000-0000-0000-0000-000000000000")  # no banned char
