"""The Docker Engine for the session: the running daemon, else one we start, and label cleanup.

Everything a test creates carries the label ``sbx.test-run=<run id>`` (compose projects get it
through an override file, see stack.py); at session end everything with it is removed, images
included, as are containers of compose projects named ``sbxt-<run id>-*`` (in case sbx recreated
one without the label).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
from docker import DockerClient

from .services import log_tail, require_service, stop_process, wait_until

LABEL = "sbx.test-run"
PROJECT_LABEL = "com.docker.compose.project"
DEFAULT_SOCKET = "/var/run/docker.sock"


def _client() -> DockerClient | None:
    """A client for DOCKER_HOST (or the default socket) if the daemon answers, else None."""
    try:
        client = docker.from_env(timeout=120)
    except docker.errors.DockerException:
        return None
    try:
        client.ping()
    except (docker.errors.DockerException, OSError):
        client.close()
        return None
    return client


@contextlib.contextmanager
def docker_engine_session(log_dir: Path) -> Iterator[DockerClient]:
    """Yield a client for a running daemon; start ``dockerd`` if none answers, stop it after."""
    client = _client()
    if client is not None:
        with contextlib.closing(client):
            yield client
        return
    if os.environ.get("DOCKER_HOST"):
        require_service(
            "docker",
            f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer; start that daemon "
            "or unset DOCKER_HOST",
        )
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        require_service(
            "docker",
            f"no Docker Engine answers at {DEFAULT_SOCKET} and dockerd is not installed "
            "(apt-get install -y docker.io)",
        )
    if os.geteuid() != 0:
        require_service(
            "docker",
            f"no Docker Engine answers at {DEFAULT_SOCKET}; starting dockerd needs root "
            "(start it yourself: sudo dockerd &)",
        )
    log_path = log_dir / "dockerd.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [dockerd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    started: list[DockerClient] = []

    def answers() -> bool:
        if proc.poll() is not None:
            return True  # gave up: stop waiting
        got = _client()
        if got is not None:
            started.append(got)
        return got is not None

    try:
        wait_until(answers, timeout=60, interval=0.5)
        if not started:
            require_service(
                "docker",
                f"dockerd did not answer within 60 s (exit {proc.poll()}); its log "
                f"{log_path}:\n{log_tail(log_path)}",
            )
        with contextlib.closing(started[0]):
            yield started[0]
    finally:
        stop_process(proc, timeout=30)


def remove_test_objects(client: DockerClient, run_id: str) -> list[str]:
    """Remove every container, network, volume and image of this test run; say what went."""
    removed: list[str] = []
    label: dict[str, str | list[str] | bool] = {"label": f"{LABEL}={run_id}"}
    prefix = f"sbxt-{run_id}-"
    # ignore_removed: other sessions' containers come and go while the list is inspected
    containers = {
        c.id: c for c in client.containers.list(all=True, filters=label, ignore_removed=True)
    }
    for c in client.containers.list(
        all=True, filters={"label": PROJECT_LABEL}, ignore_removed=True
    ):
        if str(c.labels.get(PROJECT_LABEL, "")).startswith(prefix):
            containers[c.id] = c
    for c in containers.values():
        with contextlib.suppress(docker.errors.NotFound):
            c.remove(force=True, v=True)
            removed.append(f"container {c.name}")
    networks = {n.id: n for n in client.networks.list(filters=label)}
    for n in client.networks.list(filters={"label": PROJECT_LABEL}):
        if str((n.attrs.get("Labels") or {}).get(PROJECT_LABEL, "")).startswith(prefix):
            networks[n.id] = n
    for n in networks.values():
        with contextlib.suppress(docker.errors.NotFound):
            n.remove()
            removed.append(f"network {n.name}")
    for v in client.volumes.list(filters=label):
        with contextlib.suppress(docker.errors.NotFound):
            v.remove(force=True)
            removed.append(f"volume {v.name}")
    for i in client.images.list(filters=label):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.images.remove(str(i.id), force=True)
            removed.append(f"image {i.short_id}")
    return removed
