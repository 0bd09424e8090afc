"""The writer is a container: it keeps its bind-mounted log open while the host rotates it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from bed.engine import LABEL
from log_helpers import WRITER, check_every_line_once, read_all

from blocks.config import LogsConfig
from tasks.logs.directory import rotate_directory

if TYPE_CHECKING:
    from docker import DockerClient


def test_no_line_lost_from_a_container_appending_1000_lines_per_second(
    docker_engine: DockerClient, standin_images: dict[str, str], run_id: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "worker.log"
    container = docker_engine.containers.run(
        standin_images["base"],
        ["python3", "/w/writer.py", "/logs/worker.log", "1000", "5"],
        volumes={
            str(WRITER.parent): {"bind": "/w", "mode": "ro"},
            str(logs): {"bind": "/logs", "mode": "rw"},
        },
        labels={LABEL: run_id},
        detach=True,
    )
    try:
        rotations = 0
        settings = LogsConfig(max_size=8192, keep=10_000)
        while container.status in ("created", "running"):
            time.sleep(0.15)
            container.reload()
            if live.exists():
                report = rotate_directory(tmp_path, logs, [live], settings)
                rotations += sum(f.action == "rotated" for f in report.files)
        assert container.wait(timeout=60)["StatusCode"] == 0
        written = int(container.logs(stdout=True, stderr=False).decode().strip())
    finally:
        container.remove(force=True)
    assert rotations >= 3, f"only {rotations} rotations while the container wrote"
    lines, padding = read_all(live)
    check_every_line_once(lines, written)
    assert written == 5000 and len(padding) <= 1
