"""SIGKILL and SIGTERM at random moments of a backup: no partial snapshot, none left stopped."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

from bed import RunningStack
from docker import DockerClient
from helpers import SBX, cli_env

from sbx.repository import Repository

TRIALS = 12
SEED = 20261126


def qdrant_state(stack: RunningStack) -> str:
    done = stack.compose("ps", "-a", "--format", "json", "qdrant")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return str(rows[0]["State"]) if rows else "missing"


def test_kill_9_during_backups(
    running_stack: RunningStack,
    prefect_server: str,
    tmp_path: Path,
    docker_engine: DockerClient,
) -> None:
    stack = running_stack.path
    # a cold copy of qdrant (stop, copy, start) so that kills land while it is stopped
    (stack / "sbx.toml").write_text('[parts.qdrant]\nmethod = "stop-copy"\n')
    (stack / "data" / "qdrant" / "storage" / "ballast.bin").write_bytes(os.urandom(150 << 20))
    markers = stack / ".sbx" / "stopped"
    repo = tmp_path / "repo"
    env = cli_env(prefect_server)
    rng = random.Random(SEED)
    killed_while_stopped = terminated = 0
    first = subprocess.run(
        [*SBX, "backup", "--stack", str(stack), "--repo", str(repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    ballast = stack / "data" / "qdrant" / "storage" / "ballast.bin"
    for trial in range(TRIALS):
        ballast.touch()  # changed since the last snapshot: the cold copy reads it again
        backup = subprocess.Popen(
            [*SBX, "backup", "--stack", str(stack), "--repo", str(repo)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if trial % 2 == 0:  # right after sbx decided to stop qdrant (its marker is on disk)
            deadline = time.monotonic() + 60
            while not list(markers.glob("*.json")) and time.monotonic() < deadline:
                if backup.poll() is not None:
                    break
                time.sleep(0.005)
            # then until dockerd has stopped it: the cold copy is under way (docker-py is quick
            # enough to see the ~1 s window that compose ps would miss on a loaded machine)
            qdrant = docker_engine.containers.get(
                running_stack.compose("ps", "-a", "-q", "qdrant").stdout.strip()
            )
            while backup.poll() is None and time.monotonic() < deadline:
                qdrant.reload()
                if qdrant.status != "running":
                    break
                time.sleep(0.01)
        else:  # any moment: start-up, capture, commit
            time.sleep(rng.uniform(0.5, 10.0))
        if trial % 4 == 0:  # SIGTERM (docker stop, systemd): sbx itself starts qdrant again
            backup.send_signal(signal.SIGTERM)
            backup.wait()
            assert qdrant_state(running_stack) == "running", f"trial {trial}: left stopped"
            terminated += 1
        else:
            backup.send_signal(signal.SIGKILL)
            backup.wait()
            time.sleep(1)  # a stop request already sent still completes in dockerd
            if qdrant_state(running_stack) != "running":
                killed_while_stopped += 1

        repository = Repository.open(repo)
        for snapshot_id in repository.list_snapshots():  # only complete ones are listed
            assert repository.load_snapshot(snapshot_id).id == snapshot_id
        report = repository.verify(None)
        assert report.ok, [d.describe() for d in report.damaged]

        status = subprocess.run(
            [*SBX, "status", "--stack", str(stack)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert qdrant_state(running_stack) == "running", (trial, status.stderr)
        assert not list(markers.glob("*.json"))

    assert killed_while_stopped >= 1  # the restart-after-crash path was exercised
    listed = subprocess.run(
        [*SBX, "snapshots", "--repo", str(repo), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    verified = subprocess.run(
        [*SBX, "verify", "--all", "--repo", str(repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verified.returncode == 0, verified.stderr[-2000:]
    print(
        f"{TRIALS} trials: {terminated} SIGTERM (qdrant running right after each), "
        f"{TRIALS - terminated} SIGKILL ({killed_while_stopped} while qdrant was stopped), "
        f"{len(json.loads(listed.stdout))} complete snapshots, none partial"
    )
