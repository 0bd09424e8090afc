"""A killed drill's scratch project is torn down by the next sbx command (#23 finding 9).

A SIGKILLed ``sbx drill`` runs no ``finally``: its scratch compose project and directory used
to stay for good. Starting a real drill to kill it takes minutes; here the scratch project is
made the way a drill makes it (a real compose project named ``sbx-drill-<id>``, its containers
labelled with the drill id, a named volume, the directory under ``.sbx/drills/``) with the
drill's marker beside it, naming a process that is gone (or, the second test, one that runs).
Then a plain ``sbx status`` on the stack.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from bed import RunningStack
from drill_helpers import DRILL_LABEL, Sbx, drill_containers
from faults.env_helpers import files_stack

from tasks.clients.compose import compose_binary
from tasks.drill.marker import marker_path, record_drill

if TYPE_CHECKING:
    from docker import DockerClient

COMPOSE = """services:
  standin:
    image: {image}
    entrypoint: ["sleep", "3600"]
    init: true
    labels:
      {label}: "{drill_id}"
    volumes: ["scratch:/scratch"]
volumes:
  scratch: {{}}
"""


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _compose(project: str, where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose_binary(), "-p", project, *args],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def _project_objects(project: str, where: Path) -> tuple[list[str], list[str]]:
    """(containers, volumes) of the project, in any state."""
    label = f"label=com.docker.compose.project={project}"
    ps = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", label], capture_output=True, text=True, check=True
    )
    vols = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", label],
        capture_output=True,
        text=True,
        check=True,
    )
    return ps.stdout.split(), vols.stdout.split()


@pytest.fixture
def scratch(
    standin_images: dict[str, str], tmp_path: Path, run_id: str
) -> Iterator[tuple[Path, str, str, Path]]:
    """(stack, drill id, project, scratch root): a drill's scratch project, up."""
    stack = files_stack(tmp_path / f"drl-{run_id}")
    drill_id = f"20261207T000000Z-{secrets.token_hex(3)}"
    project = f"sbx-drill-{drill_id.lower()}"
    root = stack / ".sbx" / "drills" / drill_id
    (root / "stack").mkdir(parents=True)
    compose_file = root / "stack" / "docker-compose.yml"
    compose_file.write_text(
        COMPOSE.format(image=standin_images["base"], label=DRILL_LABEL, drill_id=drill_id)
    )
    up = _compose(project, root / "stack", "-f", str(compose_file), "up", "-d")
    assert up.returncode == 0, up.stderr
    try:
        yield stack, drill_id, project, root
    finally:
        _compose(project, tmp_path, "down", "-v", "-t", "1")


def test_a_killed_drills_scratch_project_is_torn_down_by_the_next_command(
    scratch: tuple[Path, str, str, Path], run_sbx: Sbx
) -> None:
    stack, drill_id, project, root = scratch
    record_drill(stack, drill_id, project, root)
    marker = marker_path(stack, drill_id)
    marker.write_text(marker.read_text().replace(f'"pid":{os.getpid()}', f'"pid":{_dead_pid()}'))
    assert _project_objects(project, stack) != ([], [])

    done = run_sbx("status", "--stack", str(stack))

    assert "a killed sbx run left this stack unfinished" in done.stderr, done.stderr[-3000:]
    assert f"torn down: {project}" in done.stderr, done.stderr[-3000:]
    assert _project_objects(project, stack) == ([], []), "containers or volume left"
    assert not root.exists(), "the scratch directory was left"
    assert not marker.exists(), "the marker was left"


def test_a_drill_whose_process_runs_is_never_touched(
    scratch: tuple[Path, str, str, Path], run_sbx: Sbx
) -> None:
    stack, drill_id, project, root = scratch
    record_drill(stack, drill_id, project, root)  # this test's process: alive
    before = _project_objects(project, stack)

    done = run_sbx("status", "--stack", str(stack))

    assert "torn down" not in done.stderr, done.stderr[-3000:]
    assert _project_objects(project, stack) == before
    assert (root / "stack" / "docker-compose.yml").is_file()
    assert marker_path(stack, drill_id).is_file()


def test_a_drill_stopped_by_sigterm_tears_its_scratch_project_down(
    running_stack: RunningStack,
    docker_engine: DockerClient,
    prefect_server: str,
    run_sbx: Sbx,
    tmp_path: Path,
) -> None:
    """#23 deliverable 2 for the drill: SIGTERM once the scratch containers exist; the drill's
    ``finally`` tears them down, the command ends with its one line and 143."""
    stack = running_stack.path
    repo = tmp_path / "repo"
    done = run_sbx("backup", "--stack", str(stack), "--repo", str(repo))
    assert done.returncode == 0, done.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    env.update(PREFECT_API_URL=prefect_server, COLUMNS="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sbx", "drill", "--stack", str(stack), "--repo", str(repo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 300
    while not drill_containers(docker_engine) and proc.poll() is None:
        assert time.monotonic() < deadline, "the drill started no scratch container"
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    took = time.monotonic() - signalled
    # the tear-down stops the scratch containers (compose down -t 5): more than a probe's stop
    assert took < 60, f"exit {took:.1f} s after SIGTERM"
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    line = err.rstrip().splitlines()[-1]
    assert line.startswith("sbx drill: stopped by SIGTERM (exit 143); undone: "), line
    assert "tore down drill project sbx-drill-" in line, line
    assert drill_containers(docker_engine) == []
    assert not any((stack / ".sbx" / "drills").glob("*")), "scratch directory or marker left"
