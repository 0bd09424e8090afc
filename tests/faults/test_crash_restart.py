"""A run killed while dockerd stops a container for it: the next command must not see the
container still running, drop the marker, and let the stop finish behind its back."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from bed.engine import LABEL

from sbx.processes import boot_id
from tasks.clients.docker_engine import connect
from tasks.services import MARKER_DIR, StopMarker, restart_left_stopped

from .figures import FaultFigures

if TYPE_CHECKING:
    from docker import DockerClient

# stops one second after SIGTERM, like a service that flushes its data first
SLOW_STOP = 'trap "sleep 1; exit 0" TERM; while true; do sleep 0.1; done'


def test_a_stop_still_under_way_after_the_kill_is_waited_for(
    docker_engine: DockerClient,
    standin_images: dict[str, str],
    run_id: str,
    tmp_path: Path,
    fault_figures: FaultFigures,
    request: pytest.FixtureRequest,
) -> None:
    container = docker_engine.containers.run(
        standin_images["base"],
        ["sh", "-c", SLOW_STOP],
        detach=True,
        labels={LABEL: run_id},
        name=f"sbxt-{run_id}-slow-stop",
    )
    try:
        stack = tmp_path / "stack"
        stopped_at = time.time()
        # the killed run: it asked dockerd to stop the container and died before the answer
        stopper = subprocess.Popen(["docker", "stop", "-t", "10", container.id])
        time.sleep(0.3)
        stopper.send_signal(signal.SIGKILL)
        stopper.wait()
        marker = StopMarker(
            container_id=container.id,
            container=container.name,
            service="slow",
            project="p",
            pid=stopper.pid,
            boot_id=boot_id(),
            reason="test",
            stopped_at=stopped_at,
        )
        (stack / MARKER_DIR).mkdir(parents=True)
        (stack / MARKER_DIR / "m.json").write_text(marker.model_dump_json())
        container.reload()
        assert container.status == "running"  # the stop is still under way in dockerd

        with connect() as engine:
            assert restart_left_stopped(engine, stack) == [container.name]
        time.sleep(1.5)  # past the moment the stop would have ended
        container.reload()
        left = container.status != "running"
        fault_figures.add(request.node.name, trials_run=1, services_left_stopped=int(left))
        assert not left, container.status
        assert not list((stack / MARKER_DIR).glob("*.json"))
    finally:
        container.remove(force=True)
