"""dockerd "restarts" in the middle of a cold copy of Qdrant (the container is stopped).

The shared daemon is never restarted (other tests and sessions use it): sbx talks to it through
a unix-socket proxy (``env_docker_proxy.py``) that cuts every connection and refuses new ones
for a few seconds once the Qdrant container is stopped — what docker-py and compose see while
dockerd restarts. Chosen over a private dockerd because the outage then lands at a known moment
(while sbx must start Qdrant again) and costs no image load into a second daemon; what it does
not show is a real restart's effect on running containers (they would be stopped without
live-restore), which is the "left stopped" path the crash tests cover with the stop markers.

Expected: sbx retries starting Qdrant through the outage and the backup succeeds with the part
copied cold (or, should the outage cut a call sbx does not retry, the part fails naming
Docker); either way Qdrant runs again at the end with no marker left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bed import RunningStack
from bed.engine import LABEL
from docker import DockerClient

from sbx.repository import Repository

from .env_docker_proxy import DockerOutageProxy
from .figures import FaultFigures

pytestmark = [pytest.mark.docker, pytest.mark.prefect]

OUTAGE_S = 5.0


def qdrant_state(stack: RunningStack) -> str:
    done = stack.compose("ps", "-a", "--format", "json", "qdrant")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return str(rows[0]["State"]) if rows else "missing"


def test_dockerd_restart_during_a_cold_copy(
    running_stack: RunningStack,
    prefect_server: str,
    docker_engine: DockerClient,
    tmp_path: Path,
    fault_figures: FaultFigures,
) -> None:
    stack = running_stack.path
    (stack / "sbx.toml").write_text('[parts.qdrant]\nmethod = "stop-copy"\n')
    # a copy that takes a moment, so the outage starts while the container is stopped
    (stack / "data" / "qdrant" / "storage" / "ballast.bin").write_bytes(os.urandom(96 << 20))
    repo = tmp_path / "repo"
    qdrant_id = running_stack.compose("ps", "-q", "qdrant").stdout.strip()
    qdrant = docker_engine.containers.get(qdrant_id)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    with DockerOutageProxy(tmp_path / "docker.sock") as proxy:
        env.update(PREFECT_API_URL=prefect_server, DOCKER_HOST=proxy.docker_host, COLUMNS="200")
        backup = subprocess.Popen(
            [sys.executable, "-m", "sbx", "backup", "--stack", str(stack), "--repo", str(repo)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 240
        while backup.poll() is None and time.monotonic() < deadline:
            qdrant.reload()
            if qdrant.status != "running":
                time.sleep(0.2)  # let sbx's stop call return: the outage hits the copy
                proxy.outage(OUTAGE_S)
                break
            time.sleep(0.01)
        _, stderr = backup.communicate(timeout=300)
        refused = proxy.refused
    assert refused > 0, f"the outage did not hit sbx; {stderr[-2000:]}"
    latest = Repository.open(repo).latest_snapshot()
    assert latest is not None, stderr[-3000:]
    part = latest.part("qdrant")
    assert part is not None, stderr[-3000:]
    if backup.returncode == 0:  # retried through the outage (the usual outcome)
        assert part.status == "captured", part
        assert part.detail["mode"] == "stop-copy-start"
    else:  # or failed clearly: the outage cut a call that is not retried (the stop's answer)
        assert backup.returncode == 1, stderr[-3000:]
        assert part.status == "failed" and "Docker" in (part.reason or ""), part
    left_stopped = int(qdrant_state(running_stack) != "running")
    assert not left_stopped
    assert not list((stack / ".sbx" / "stopped").glob("*.json"))
    fault_figures.add(
        "test_dockerd_restart_during_a_cold_copy",
        trials_run=1,
        services_left_stopped=left_stopped,
    )


def test_a_stopped_container_is_started_through_an_outage(
    docker_engine: DockerClient,
    standin_images: dict[str, str],
    run_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault_figures: FaultFigures,
) -> None:
    """The task layer alone (no stack, no Prefect): stop, outage during the copy, start again."""
    from tasks.clients.docker_engine import connect
    from tasks.services import stopped_service

    project = f"sbxt-{run_id}-outage"
    container = docker_engine.containers.run(
        standin_images["base"],
        ["python3", "-c", "import time; time.sleep(3600)"],
        labels={
            LABEL: run_id,
            "com.docker.compose.project": project,
            "com.docker.compose.service": "qdrant",
        },
        detach=True,
    )
    try:
        with DockerOutageProxy(tmp_path / "docker.sock") as proxy:
            monkeypatch.setenv("DOCKER_HOST", proxy.docker_host)
            with (
                connect(timeout_s=30) as engine,
                stopped_service(
                    engine, tmp_path, project, "qdrant", "outage test", timeout_s=1
                ) as was_running,
            ):
                assert was_running
                container.reload()
                assert container.status != "running"
                proxy.outage(OUTAGE_S)  # "dockerd restarts" while the copy runs
            refused = proxy.refused
        container.reload()
        left_stopped = int(container.status != "running")
    finally:
        container.remove(force=True)
    assert refused > 0
    assert not left_stopped
    assert not list((tmp_path / ".sbx" / "stopped").glob("*.json"))
    fault_figures.add(
        "test_a_stopped_container_is_started_through_an_outage",
        trials_run=1,
        services_left_stopped=left_stopped,
    )
