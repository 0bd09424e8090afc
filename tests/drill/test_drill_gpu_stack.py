"""Drill on one GPU, end to end (#19 deliverable 6): with the worker and watchdog marked as GPU
services, a drill on the example stack starts neither a second time, checks their models by
sha256 and the live ones read-only, counts Qdrant's points, and its report says so."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from bed import RunningStack
from bed.qdrant_seed import seed_qdrant
from drill_helpers import DRILL_LABEL, drill_containers, live_containers

from flows.backup import backup_stack
from flows.drill import drill_restore

if TYPE_CHECKING:
    from docker import DockerClient


@contextlib.contextmanager
def containers_created(docker: DockerClient) -> Iterator[list[dict[str, str]]]:
    """The labels of every drill container created meanwhile, streamed from Docker's events
    as they happen (the daemon keeps only its last 256 events, which a shared machine's
    healthchecks overrun in seconds; the scratch project is gone once the drill returns)."""
    stream = docker.events(
        decode=True, filters={"type": "container", "event": "create", "label": DRILL_LABEL}
    )
    created: list[dict[str, str]] = []

    def collect() -> None:
        with contextlib.suppress(Exception):  # ends when the stream is closed
            for event in stream:
                created.append(event["Actor"]["Attributes"])

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        yield created
    finally:
        stream.close()
        reader.join(timeout=10)


def test_a_drill_on_one_gpu_leaves_the_gpu_services_to_the_live_stack(
    running_stack: RunningStack,
    docker_engine: DockerClient,
    prefect_server: str,
    tmp_path: Path,
) -> None:
    stack = running_stack.path
    seed_qdrant(running_stack.url("qdrant"), {"docs": 30}, running_stack.api_key("qdrant"))
    repo = str(tmp_path / "repo")
    backup_stack(stack=str(stack), repo=repo)
    (stack / "sbx.toml").write_text('[drill]\ngpu_services = ["worker", "watchdog"]\n')
    before = live_containers(docker_engine, running_stack.project)
    (live_worker,) = [name for name in before if "-worker-" in name]
    relayed_before = _from_elsewhere(docker_engine, live_worker)

    with containers_created(docker_engine) as events:
        report = drill_restore(stack=str(stack), repo=repo)

    assert report.passed, report.failed
    # neither GPU service had a container in the scratch project; a relay stood in for each
    created = {e["com.docker.compose.service"] for e in events if e[DRILL_LABEL] == report.drill_id}
    assert not {"worker", "watchdog"} & created, created
    assert {"sbx-live-worker", "sbx-live-watchdog", "qdrant", "open-webui"} <= created
    states = {c.id: c.state for c in report.checks}
    assert not any(
        k.endswith((":worker", ":watchdog")) and k.startswith(("service", "container"))
        for k in states
    )
    # checked instead: their files by sha256, the live ones read-only
    assert states["data:gpu-files:data/models"] == "ok"
    assert states["live:worker"] == "ok" and states["live:watchdog"] == "ok"
    live = next(c for c in report.checks if c.id == "live:worker")
    assert "/v1/models lists Qwen/Qwen2.5-7B-Instruct-AWQ" in live.observed
    # the relays were healthy, which means they reached the live services: the live worker
    # saw requests from an address that is not the host's loopback (the relay's)
    assert states["container:sbx-live-worker"] == "ok"
    assert _from_elsewhere(docker_engine, live_worker) > relayed_before
    # Qdrant's points were counted though no worker ran in the scratch project
    assert states["data:qdrant:docs"] == "ok"
    # the report and its artifact say what was not started, why, and what stood in
    assert [(n.service, n.relay) for n in report.not_started] == [
        ("watchdog", "sbx-live-watchdog"),
        ("worker", "sbx-live-worker"),
    ]
    worker = report.not_started[1]
    assert worker.reason == "[drill] gpu_services names it"
    assert worker.checked_instead == ["data:gpu-files:data/models", "live:worker"]
    assert worker.consumers == ["open-webui", "proxy"]
    artifact = _artifact(prefect_server, report.drill_id)
    assert "## Not started in the scratch project" in artifact
    assert "**worker**: [drill] gpu_services names it" in artifact
    # the live stack kept its containers; nothing of the drill is left
    assert live_containers(docker_engine, running_stack.project) == before
    assert drill_containers(docker_engine) == []


def _from_elsewhere(docker: DockerClient, container: str) -> int:
    """Requests in the live worker's access log that came from another container."""
    lines = docker.containers.get(container).logs().decode().splitlines()
    return sum(1 for line in lines if '"GET ' in line and not line.startswith("127.0.0.1"))


def _artifact(api: str, drill_id: str) -> str:
    found = httpx.post(
        f"{api}/artifacts/filter", json={"limit": 50, "sort": "CREATED_DESC"}, timeout=30
    ).json()
    texts = [str(a["data"]) for a in found if a["type"] == "markdown"]
    return next(t for t in texts if drill_id in t)
